"""Stage 4: score the trained model on the official 25k test set.

Scores each of `extra_sets` (your own labelled files) too, under its name in eval.json.
Writes metrics/eval.json, DVC plot tables and PNGs under plots/evaluate/, and the most
confidently wrong test reviews to data/evaluation/. Also checks, on raw test reviews, that
the exported raw-text model gives the same probabilities as the classifier on the arrays.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from imdb_sentiment import archive, dataset, evaluation, plotting, tables
from imdb_sentiment.fileio import atomic_directory, atomic_file, write_json
from imdb_sentiment.inference import predict_probabilities, scorer
from imdb_sentiment.model import load_model
from imdb_sentiment.params import run_stage
from imdb_sentiment.predict import ModelError, Predictor

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
METRICS_FILE = Path("metrics/eval.json")
PLOTS_DIR = Path("plots/evaluate")
ERRORS_DIR = Path("data/evaluation")
CACHE_DIR = Path("data/cache")  # downloaded extra sets, as download keeps the archive
PARITY_SAMPLE = 256
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The raw-text model disagrees with the classifier on the same reviews."""


SECTION = "evaluate"


@dataclass(frozen=True)
class Params:
    """The evaluate section of params.yaml."""

    threshold: float = field(metadata={"gt": 0.0, "lt": 1.0})
    batch_size: int = field(metadata={"min": 1})
    confident_errors: int = field(metadata={"min": 0})
    extra_sets: list = field(default_factory=list)  # your own labelled test sets, by name


def run(
    params: Params,
    raw_dir: Path = RAW_DIR,
    prepared_dir: Path = PREPARED_DIR,
    models_dir: Path = MODELS_DIR,
    metrics_file: Path = METRICS_FILE,
    plots_dir: Path = PLOTS_DIR,
    errors_dir: Path = ERRORS_DIR,
    cache_dir: Path = CACHE_DIR,
) -> dict:
    extra = tables.extra_sets(params.extra_sets, "evaluate.extra_sets")  # checked before work
    classifier = load_model(models_dir / "classifier.keras")
    ids, x_test, y_test = dataset.load_arrays(prepared_dir, "test")
    score = scorer(classifier, max_length=x_test.shape[1])
    _, x_val, y_val = dataset.load_arrays(prepared_dir, "validation")
    test_table = archive.read_table(raw_dir, "test")
    if not np.array_equal(test_table["id"].to_numpy(), ids):
        raise ParityError(f"{raw_dir / 'test.csv'} and {prepared_dir / 'test.npz'} disagree")

    probabilities = predict_probabilities(score, x_test, params.batch_size)
    _check_raw_text_parity(models_dir, test_table["text"], probabilities, params.batch_size)
    validation = predict_probabilities(score, x_val, params.batch_size)

    report = evaluation.classification_metrics(y_test, probabilities, params.threshold)
    report["validation_accuracy"] = round(
        float(np.mean((validation >= params.threshold) == y_val)), 4
    )
    if extra:
        report["extra_sets"] = _score_extra_sets(extra, models_dir, params, cache_dir)
    _write_plots(y_test, probabilities, params.threshold, report, plots_dir)
    with atomic_directory(errors_dir) as scratch:
        wrong = evaluation.confident_errors(
            test_table, probabilities, params.threshold, params.confident_errors
        )
        wrong.to_csv(scratch / "confident_errors.csv", index=False, lineterminator="\n")
    write_json(metrics_file, report)
    print(
        f"evaluate: test accuracy {report['accuracy']:.4f} "
        f"(validation {report['validation_accuracy']:.4f}), ROC-AUC {report['roc_auc']:.4f}"
    )
    return report


def _score_extra_sets(
    extra: list[tables.ExtraSet], models_dir: Path, params: Params, cache_dir: Path
) -> dict[str, dict]:
    """Each set scored through the Predictor that the CLI and the API serve with."""
    predictor = Predictor.load(models_dir / "end_to_end.keras", batch_size=params.batch_size)
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


def _check_raw_text_parity(models_dir: Path, texts, expected: np.ndarray, batch_size: int) -> None:
    """The served model must score raw text exactly as evaluation scored the arrays."""
    end_to_end = load_model(models_dir / "end_to_end.keras")
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


def main() -> int:
    known = (FileNotFoundError, archive.ArchiveError, ParityError, ModelError)
    return run_stage(SECTION, Params, run, known)


if __name__ == "__main__":
    sys.exit(main())
