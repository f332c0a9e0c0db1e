import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.data import archive, dataset, text
from imdb_sentiment.network import model_file
from imdb_sentiment.params import ParamsError
from imdb_sentiment.serving.predict import Predictor
from imdb_sentiment.training import model
from stages import evaluate
from tests.table_factory import review_table, write_table


def test_writes_metrics_plots_and_errors(pipeline_run):
    report = json.loads((pipeline_run / "metrics/eval.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "validation_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    assert report["count"] == 48 and sum(report["confusion"].values()) == 48
    plots = pipeline_run / "plots/evaluate"
    assert len(pd.read_csv(plots / "confusion.csv")) == 48
    assert list(pd.read_csv(plots / "roc.csv").columns) == ["fpr", "tpr", "threshold"]
    assert list(pd.read_csv(plots / "precision_recall.csv").columns)[:2] == ["recall", "precision"]
    for image in ("confusion.png", "roc.png"):
        assert (plots / image).stat().st_size > 1000
    errors = pd.read_csv(pipeline_run / "data/evaluation/confident_errors.csv")
    assert len(errors) <= 3 and (errors.label != (errors.probability_positive >= 0.5)).all()


def test_tiny_model_learns_the_tiny_task(pipeline_run):
    report = json.loads((pipeline_run / "metrics/eval.json").read_text())
    assert report["roc_auc"] > 0.8 and report["accuracy"] > 0.7


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "evaluate:\n  threshold: 0.5\n  batch_size: 8\n  confident_errors: 1\n  extra_sets: []\n"
    )
    assert evaluate.main() == 1
    assert (
        "model not found: models/end_to_end.keras; run `dvc repro` first" in capsys.readouterr().err
    )


@pytest.mark.parametrize("threshold", [0, 1.5])
def test_bad_threshold_is_named(tmp_path, monkeypatch, capsys, threshold):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        f"evaluate:\n  threshold: {threshold}\n  batch_size: 8\n  confident_errors: 1\n"
        "  extra_sets: []\n"
    )
    assert evaluate.main() == 1
    assert f"evaluate.threshold = {threshold} is out of range" in capsys.readouterr().err


def copy_of_run(pipeline_run, tmp_path):
    for folder in ("data/raw", "data/prepared", "data/linear_baseline", "models"):
        shutil.copytree(pipeline_run / folder, tmp_path / folder)
    shutil.copy(pipeline_run / "data/probes.csv", tmp_path / "data/probes.csv")
    return tmp_path


def evaluate_in(folder, extra_sets=()):
    params = evaluate.Params(
        threshold=0.5, batch_size=16, confident_errors=3, extra_sets=list(extra_sets)
    )
    return evaluate.run(
        params,
        folder / "data/raw",
        folder / "data/prepared",
        folder / "models",
        folder / "eval.json",
        folder / "plots",
        folder / "errors",
        folder / "cache",
        folder / "data/linear_baseline/model.pkl",  # the tiny run's, not the working tree's
        folder / "data/probes.csv",
    )


def test_test_table_and_arrays_that_disagree_are_refused(pipeline_run, tmp_path):
    folder = copy_of_run(pipeline_run, tmp_path)
    table = pd.read_csv(folder / "data/raw/test.csv", keep_default_na=False)
    table.iloc[1:].to_csv(folder / "data/raw/test.csv", index=False)
    with pytest.raises(evaluate.ParityError, match="test.csv and .*test.npz disagree"):
        evaluate_in(folder)
    assert not (folder / "eval.json").exists()


def test_a_raw_text_model_that_tokenises_differently_is_refused(pipeline_run, tmp_path):
    """The served network's own classifier, behind an encoder whose vocabulary is out of
    order: the raw-text path no longer reads what preprocess encoded."""
    folder = copy_of_run(pipeline_run, tmp_path)
    encoder = text.load_encoder(folder / "data/prepared/encoder.json")
    shuffled = text.TextEncoder(
        encoder.vocabulary[::-1], encoder.max_length, encoder.padding, encoder.truncating,
        **encoder.cleaning,
    )  # fmt: skip
    served = Predictor.load(folder / "models/end_to_end.keras").classifier
    model_file.save_model(
        model.build_end_to_end(shuffled, served), folder / "models/end_to_end.keras"
    )
    with pytest.raises(evaluate.ParityError, match="raw-text model differs from the classifier"):
        evaluate_in(folder)
    assert not (folder / "eval.json").exists()


def test_the_unmodified_run_passes_both_guards(pipeline_run, tmp_path):
    report = evaluate_in(copy_of_run(pipeline_run, tmp_path))
    assert report["count"] == 48


def extra_set_entry(path, sha, **changes) -> dict:
    entry = {
        "name": "shop", "url": str(path), "sha256": sha, "text_column": "review",
        "label_column": "sentiment", "positive_labels": ["positive"],
        "negative_labels": ["negative"],
    }  # fmt: skip
    return entry | changes


def test_an_extra_set_is_scored_by_the_served_predictor_under_its_name(pipeline_run, tmp_path):
    folder = copy_of_run(pipeline_run, tmp_path)
    frame = review_table(per_class=10, seed=5)
    sha = write_table(frame, tmp_path / "shop.csv")
    report = evaluate_in(folder, [extra_set_entry(tmp_path / "shop.csv", sha)])
    shop = report["extra_sets"]["shop"]
    served = Predictor.load(folder / "models/end_to_end.keras").probabilities(frame.review.tolist())
    assert shop["count"] == 20 and shop["mean_probability_positive"] == round(served.mean(), 4)
    labels = (frame.sentiment == "positive").to_numpy()
    assert shop["accuracy"] == round(float(np.mean((served >= 0.5) == labels)), 4)
    assert json.loads((folder / "eval.json").read_text())["extra_sets"]["shop"] == shop


BAD_EXTRA_SETS = {
    "missing column": ({"text_column": "body"}, "no column 'body'; the columns are: review"),
    "label outside the mapping": (
        {"positive_labels": ["pos"]}, "label 'positive' is not in the mapping",
    ),
    "wrong sha256": ({"sha256": "0" * 64}, "sha256 mismatch"),
    "unknown key": ({"colour": "red"}, "evaluate.extra_sets[0]: unknown key 'colour'"),
    "no labels": ({"positive_labels": None}, "evaluate.extra_sets[0]: give positive_labels"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_EXTRA_SETS))
def test_a_bad_extra_set_is_refused_by_name_and_nothing_is_written(pipeline_run, tmp_path, case):
    changes, message = BAD_EXTRA_SETS[case]
    folder = copy_of_run(pipeline_run, tmp_path)
    sha = write_table(review_table(per_class=4), tmp_path / "shop.csv")
    with pytest.raises((ParamsError, archive.ArchiveError), match=re.escape(message)):
        evaluate_in(folder, [extra_set_entry(tmp_path / "shop.csv", sha, **changes)])
    assert not (folder / "eval.json").exists() and not (folder / "plots").exists()


def test_an_extra_set_of_one_class_is_refused(pipeline_run, tmp_path):
    folder = copy_of_run(pipeline_run, tmp_path)
    frame = review_table(per_class=4)
    sha = write_table(frame[frame.sentiment == "negative"], tmp_path / "shop.csv")
    with pytest.raises(archive.ArchiveError, match="'shop' .*needs both labels, found {0: 4}"):
        evaluate_in(folder, [extra_set_entry(tmp_path / "shop.csv", sha)])
    assert not (folder / "eval.json").exists()


def test_reports_short_views_calibration_and_probes_beside_the_linear_baseline(pipeline_run):
    report = json.loads((pipeline_run / "metrics/eval.json").read_text())
    linear = report["linear_baseline"]
    assert report["margin_over_linear"] == round(report["accuracy"] - linear["accuracy"], 4)
    for figures in (report, linear):
        assert set(figures["short_views"]) == {"last_sentence", "first_20_words"}
        for view in figures["short_views"].values():
            assert view["count"] == 48 and 0 <= view["ece"] <= 1
        assert figures["probes_total"] == len(pd.read_csv(pipeline_run / "data/probes.csv"))
    probes = pd.read_csv(pipeline_run / "data/evaluation/probes.csv")
    assert report["probes_passed"] == probes["lstm_passed"].sum()
    assert linear["probes_passed"] == probes["linear_passed"].sum()
    assert set(probes.columns) >= {"capability", "text", "expected", "lstm_probability"}


def test_short_view_figures_are_the_predictors_on_the_views(pipeline_run):
    """Recompute one short view's accuracy from the served model: evaluate scores what users
    would get back for those texts."""
    from imdb_sentiment.scoring import evaluation

    report = json.loads((pipeline_run / "metrics/eval.json").read_text())
    table = archive.read_table(pipeline_run / "data/raw", "test")
    views = evaluation.short_views(table["text"].tolist())
    predictor = Predictor.load(pipeline_run / "models/end_to_end.keras")
    scores = predictor.probabilities(views["first_20_words"])
    expected = evaluation.view_metrics(table["label"].to_numpy(), scores, 0.5)
    assert report["short_views"]["first_20_words"] == expected


def test_each_branch_of_the_served_network_is_scored_alone(pipeline_run):
    """The default network has a linear branch: evaluate reports each branch alone, as the
    branch's own sub-network scores the encoded test reviews and their short views."""
    from imdb_sentiment.network.branches import branches_alone
    from imdb_sentiment.scoring import evaluation

    report = json.loads((pipeline_run / "metrics/eval.json").read_text())
    classifier = model_file.load_model(pipeline_run / "models/classifier.keras")
    branches = branches_alone(classifier)
    assert set(report["branches"]) == set(branches) == {"lstm", "linear"}
    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "test")
    for name, branch in branches.items():
        scores = branch.predict_on_batch(x)[:, 0]
        assert report["branches"][name]["full"] == evaluation.view_metrics(y, scores, 0.5), name
    table = archive.read_table(pipeline_run / "data/raw", "test")
    encoder = text.load_encoder(pipeline_run / "data/prepared/encoder.json")
    short = encoder.encode(evaluation.short_views(table["text"].tolist())["last_sentence"])
    scores = branches["linear"].predict_on_batch(short)[:, 0]
    expected = evaluation.view_metrics(table["label"].to_numpy(), scores, 0.5)
    assert report["branches"]["linear"]["last_sentence"] == expected


def test_writes_the_reliability_and_length_tables(pipeline_run):
    plots = pipeline_run / "plots/evaluate"
    reliability = pd.read_csv(plots / "reliability.csv")
    assert set(reliability["view"]) == {"full", "last_sentence", "first_20_words"}
    assert reliability.groupby("view")["count"].sum().eq(48).all()
    by_length = pd.read_csv(plots / "accuracy_by_length.csv")
    assert set(by_length["model"]) == {"lstm", "linear"}
    assert by_length.groupby("model")["count"].sum().eq(3 * 48).all()  # full + two views
