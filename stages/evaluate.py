"""Stage 4: score the trained model on the official 25k test set.

Scores each of `extra_sets` (your own labelled files) too, under its name in eval.json.
Every figure comes twice: for the served network and for the linear baseline stage's model,
on the full test reviews and on two short views of them (each review's last sentence, its
first 20 words), with accuracy and expected calibration error; the hand-written behaviour probes of
data/probes.csv are scored too (reported, never used to choose). A network with a linear
branch (train.linear_branch) also gets each branch scored alone (``branches``).
Writes metrics/eval.json, DVC plot tables and PNGs under plots/evaluate/, and the most
confidently wrong test reviews and the probe results to data/evaluation/, and the served model
as a TensorFlow SavedModel to exported/sentiment/1 (:mod:`imdb_sentiment.training.export`).
Every score comes from the served network (models/end_to_end.keras, loaded once); checks, on
raw test reviews, that it and the SavedModel give the same probabilities from raw text as its
classifier gives from the encoded arrays.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imdb_sentiment import malloc
from imdb_sentiment.data import archive, dataset, tables, text
from imdb_sentiment.fileio import atomic_directory, atomic_file, write_json
from imdb_sentiment.layout import (
    CACHE_DIR,
    ERRORS_DIR,
    EVAL_METRICS,
    EXPORT_DIR,
    LINEAR_MODEL,
    MODELS_DIR,
    PLOTS_DIR,
    PREPARED_DIR,
    PROBES_FILE,
    RAW_DIR,
)
from imdb_sentiment.network.branches import branches_alone
from imdb_sentiment.params import run_stage
from imdb_sentiment.schema import EvaluateParams
from imdb_sentiment.scoring import evaluation, plotting
from imdb_sentiment.scoring.inference import predict_probabilities, scorer
from imdb_sentiment.serving.predict import ModelError, Predictor
from imdb_sentiment.training import export
from imdb_sentiment.training.linear import LinearModel

PARITY_SAMPLE = 256
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The raw-text model disagrees with the classifier on the same reviews."""


SECTION = "evaluate"
Params = EvaluateParams


def run(
    params: Params,
    raw_dir: Path = RAW_DIR,
    prepared_dir: Path = PREPARED_DIR,
    models_dir: Path = MODELS_DIR,
    metrics_file: Path = EVAL_METRICS,
    plots_dir: Path = PLOTS_DIR,
    errors_dir: Path = ERRORS_DIR,
    cache_dir: Path = CACHE_DIR,
    linear_model: Path = LINEAR_MODEL,
    probes_file: Path = PROBES_FILE,
    export_dir: Path = EXPORT_DIR,
) -> dict:
    extra = tables.extra_sets(params.extra_sets, "evaluate.extra_sets")  # checked before work
    # The served network is loaded once: the arrays, the branches and raw text are all scored
    # by the classifier inside end_to_end.keras (a second copy, from classifier.keras, would
    # only add to evaluate's peak memory).
    predictor = Predictor.load(models_dir / export.END_TO_END_FILE, batch_size=params.batch_size)
    classifier = predictor.classifier
    ids, x_test, y_test = dataset.load_arrays(prepared_dir, "test")
    score = predictor.score_ids  # the served kernel itself: no second copy of its tables
    _, x_val, y_val = dataset.load_arrays(prepared_dir, "validation")
    test_table = archive.read_table(raw_dir, "test")
    if not np.array_equal(test_table["id"].to_numpy(), ids):
        raise ParityError(f"{raw_dir / 'test.csv'} and {prepared_dir / 'test.npz'} disagree")

    probabilities = predict_probabilities(score, x_test, params.batch_size)
    _check_raw_text_parity(predictor.end_to_end, test_table["text"], probabilities)
    validation = predict_probabilities(score, x_val, params.batch_size)

    report = evaluation.classification_metrics(y_test, probabilities, params.threshold)
    report["validation_accuracy"] = round(
        float(np.mean((validation >= params.threshold) == y_val)), 4
    )
    texts = test_table["text"].tolist()
    views = {"full": texts, **evaluation.short_views(texts)}
    encoder = text.load_encoder(prepared_dir / "encoder.json")
    # Each short view is encoded once, for the network and for each of its branches.
    short = evaluation.encode_views(
        {k: v for k, v in views.items() if k != "full"}, encoder, trimmed=True
    )
    encoded = {"full": x_test, **short}
    lstm = {"full": probabilities}
    lstm.update(
        {view: predict_probabilities(score, ids, params.batch_size) for view, ids in short.items()}
    )
    probes = pd.read_csv(probes_file)
    scored = _score_both_models(views, lstm, probes, predictor, linear_model)
    probe_table = evaluation.probe_results(
        probes, {model: scores.pop("probes") for model, scores in scored.items()}, params.threshold
    )
    report.update(_headline(scored["lstm"], y_test, params.threshold, probe_table, "lstm"))
    report["linear_baseline"] = {
        **_headline(scored["linear"], y_test, params.threshold, probe_table, "linear"),
        **evaluation.classification_metrics(y_test, scored["linear"]["full"], params.threshold),
    }
    report["margin_over_linear"] = round(
        report["accuracy"] - report["linear_baseline"]["accuracy"], 4
    )
    if branches := branches_alone(classifier):
        report["branches"] = _score_branches(branches, encoded, y_test, params)
    if extra:
        report["extra_sets"] = _score_extra_sets(extra, predictor, params, cache_dir)
    _write_plots(y_test, probabilities, params.threshold, report, plots_dir)
    tokens = {
        view: text.tokenize(batch, **encoder.cleaning).row_lengths().numpy()
        for view, batch in views.items()
    }
    _write_short_text_plots(scored, y_test, tokens, params.threshold, plots_dir)
    with atomic_directory(errors_dir) as scratch:
        wrong = evaluation.confident_errors(
            test_table, probabilities, params.threshold, params.confident_errors
        )
        wrong.to_csv(scratch / "confident_errors.csv", index=False, lineterminator="\n")
        probe_table.to_csv(scratch / "probes.csv", index=False, lineterminator="\n")
    _export_saved_model(predictor.end_to_end, export_dir, test_table["text"], probabilities)
    write_json(metrics_file, report)
    _print_summary(report)
    return report


def _export_saved_model(
    end_to_end: keras.Model, export_dir: Path, texts, expected: np.ndarray
) -> None:
    """The served model as a SavedModel, checked to score raw text as evaluation did."""
    with atomic_directory(export_dir) as scratch:
        version = scratch / export.SAVED_MODEL_VERSION
        export.export_saved_model(end_to_end, version)
        sample = texts.iloc[:PARITY_SAMPLE].tolist()
        exported = export.saved_model_probabilities(version, sample)
        gap = float(np.max(np.abs(exported - expected[: len(sample)])))
        if gap > PARITY_TOLERANCE:
            raise ParityError(f"the SavedModel differs from the classifier by up to {gap:.2e}")


def _score_both_models(
    views: dict[str, list[str]],
    lstm: dict[str, np.ndarray],
    probes: pd.DataFrame,
    predictor: Predictor,
    linear_model: Path,
) -> dict[str, dict[str, np.ndarray]]:
    """{model: {view or "probes": P(positive)}} of the served network (``lstm``: its scores of
    the views; the probes are scored here, as raw text) and the linear baseline. The linear
    model is loaded, used and released first: its 1.5 million n-grams and TensorFlow's
    buffers need not be in memory at once."""
    texts = {**views, "probes": probes["text"].tolist()}
    baseline = LinearModel.load(linear_model)
    linear = {name: baseline.probabilities(batch) for name, batch in texts.items()}
    del baseline
    malloc.release_free_memory()
    return {"lstm": {**lstm, "probes": predictor.probabilities(texts["probes"])}, "linear": linear}


def _headline(
    views: dict[str, np.ndarray], labels: np.ndarray, threshold: float, probes, model: str
) -> dict:
    """ECE on the full reviews, each short view's figures, and the probes passed."""
    return {
        "ece": evaluation.expected_calibration_error(labels, views["full"], threshold),
        "short_views": {
            name: evaluation.view_metrics(labels, scores, threshold)
            for name, scores in views.items()
            if name != "full"
        },
        "probes_passed": int(probes[f"{model}_passed"].sum()),
        "probes_total": len(probes),
    }


def _score_branches(
    branches: dict, encoded: dict[str, np.ndarray], labels: np.ndarray, params: Params
) -> dict[str, dict]:
    """Each branch of the served network alone (the ablation): accuracy and ECE on the full
    test reviews and on each short view (``encoded``: their ids)."""
    scored = {}
    for name, model in branches.items():
        score = scorer(model, max_length=encoded["full"].shape[1])
        scored[name] = {
            view: evaluation.view_metrics(
                labels, predict_probabilities(score, ids, params.batch_size), params.threshold
            )
            for view, ids in encoded.items()
        }
    return scored


def _print_summary(report: dict) -> None:
    linear = report["linear_baseline"]
    print(
        f"evaluate: test accuracy {report['accuracy']:.4f} "
        f"(validation {report['validation_accuracy']:.4f}), ROC-AUC {report['roc_auc']:.4f}, "
        f"ECE {report['ece']:.4f}; linear baseline {linear['accuracy']:.4f}"
    )
    for name, figures in report["short_views"].items():
        print(
            f"evaluate: {name}: accuracy {figures['accuracy']:.4f} "
            f"(linear {linear['short_views'][name]['accuracy']:.4f}), ECE {figures['ece']:.4f}"
        )
    print(f"evaluate: probes passed {report['probes_passed']}/{report['probes_total']} "
          f"(linear {linear['probes_passed']})")  # fmt: skip
    for name, figures in report.get("branches", {}).items():
        alone = ", ".join(f"{view} {m['accuracy']:.4f}" for view, m in figures.items())
        print(f"evaluate: the {name} branch alone: {alone}")


def _score_extra_sets(
    extra: list[tables.ExtraSet], predictor: Predictor, params: Params, cache_dir: Path
) -> dict[str, dict]:
    """Each set scored through the Predictor that the CLI and the API serve with."""
    scored = {}
    for item in extra:
        table, dropped = tables.load_labelled(item.url, item.sha256, item.spec, cache_dir)
        tables.check_both_labels(table, f"evaluate.extra_sets {item.name!r} ({item.url})")
        probabilities = predictor.probabilities(table["text"].tolist())
        metrics = evaluation.classification_metrics(
            table["label"].to_numpy(), probabilities, params.threshold
        )
        metrics["mean_probability_positive"] = round(float(np.mean(probabilities)), 4)
        metrics["empty_texts_dropped"] = dropped
        scored[item.name] = metrics
        print(
            f"evaluate: {item.name}: accuracy {metrics['accuracy']:.4f} on {len(table)} texts, "
            f"ROC-AUC {metrics['roc_auc']:.4f}"
        )
    return scored


def _check_raw_text_parity(end_to_end: keras.Model, texts, expected: np.ndarray) -> None:
    """The served model (models/end_to_end.keras, run by Keras) must score raw text exactly as
    evaluation scored the arrays."""
    sample = texts.iloc[:PARITY_SAMPLE].tolist()
    batch = tf.constant([[review] for review in sample])
    served = end_to_end.predict_on_batch(batch).reshape(-1)
    gap = float(np.max(np.abs(served - expected[: len(sample)])))
    if gap > PARITY_TOLERANCE:
        raise ParityError(f"raw-text model differs from the classifier by up to {gap:.2e}")


def _write_plots(labels, probabilities, threshold: float, report: dict, plots_dir: Path) -> None:
    tables = {
        "confusion.csv": evaluation.confusion_rows(labels, probabilities, threshold),
        "roc.csv": evaluation.roc_points(labels, probabilities),
        "precision_recall.csv": evaluation.precision_recall_points(labels, probabilities),
    }
    for name, table in tables.items():
        with atomic_file(plots_dir / name) as scratch:
            table.to_csv(scratch, index=False, lineterminator="\n")
    counts = report["confusion"]
    matrix = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    plotting.confusion_matrix(matrix, plots_dir / "confusion.png")
    roc = tables["roc.csv"]
    plotting.roc_curve(roc["fpr"], roc["tpr"], report["roc_auc"], plots_dir / "roc.png")


def _write_short_text_plots(
    scored: dict, labels: np.ndarray, tokens: dict[str, np.ndarray], threshold: float,
    plots_dir: Path,
) -> None:  # fmt: skip
    """reliability.csv (the LSTM's, per view) and accuracy_by_length.csv (both models, the
    full reviews and the short views pooled, by token count)."""
    reliability = pd.concat(
        evaluation.reliability_table(labels, scores, threshold).assign(view=view)
        for view, scores in scored["lstm"].items()
    )
    views = list(scored["lstm"])
    by_length = evaluation.accuracy_by_length(
        np.concatenate([tokens[view] for view in views]),
        np.concatenate([labels] * len(views)),
        {model: np.concatenate([scored[model][view] for view in views]) for model in scored},
        threshold,
    )
    for name, table in {"reliability.csv": reliability.round(5),
                        "accuracy_by_length.csv": by_length}.items():  # fmt: skip
        with atomic_file(plots_dir / name) as scratch:
            table.to_csv(scratch, index=False, lineterminator="\n")


def main() -> int:
    known = (FileNotFoundError, archive.ArchiveError, ParityError, ModelError)
    return run_stage(SECTION, Params, run, known)


if __name__ == "__main__":
    sys.exit(main())
