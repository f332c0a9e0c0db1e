import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import evaluation


def test_classification_metrics_on_known_values():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.8, 0.4])
    report = evaluation.classification_metrics(labels, probabilities, threshold=0.5)
    assert report["accuracy"] == 0.5 and report["precision"] == 0.5 and report["recall"] == 0.5
    assert report["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert report["roc_auc"] == 0.75 and report["count"] == 4
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4]))
    assert report["loss"] == pytest.approx(expected_loss, abs=1e-4)


def test_curves_are_thinned_but_keep_their_ends():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20_000)
    probabilities = np.clip(labels * 0.3 + rng.random(20_000) * 0.7, 0, 1)
    roc = evaluation.roc_points(labels, probabilities)
    pr = evaluation.precision_recall_points(labels, probabilities)
    assert len(roc) <= evaluation.CURVE_POINTS and len(pr) <= evaluation.CURVE_POINTS
    assert (roc.fpr.iloc[0], roc.tpr.iloc[0]) == (0, 0)
    assert (roc.fpr.iloc[-1], roc.tpr.iloc[-1]) == (1, 1)
    assert roc.threshold.max() <= 1.0 and pr.recall.iloc[0] == 1.0


def test_confusion_rows_one_per_review():
    rows = evaluation.confusion_rows(np.array([0, 1, 1]), np.array([0.7, 0.9, 0.1]), 0.5)
    assert rows.values.tolist() == [
        ["negative", "positive"],
        ["positive", "positive"],
        ["positive", "negative"],
    ]


def test_confident_errors_are_the_most_confident_wrong_ones():
    table = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "label": [0, 0, 1, 1],
            "rating": [1, 2, 9, 10],
            "movie": ["tt1"] * 4,
            "text": ["a", "b", "c", "d"],
        }
    )
    wrong = evaluation.confident_errors(table, np.array([0.99, 0.6, 0.9, 0.05]), 0.5, count=2)
    assert wrong["id"].tolist() == [1, 4]
