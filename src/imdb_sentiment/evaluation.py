"""Test-set metrics, DVC plot tables and the most confidently wrong reviews."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics

from imdb_sentiment.text import LABEL_NAMES

CURVE_POINTS = 1000  # keeps the committed plot files small


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """Accuracy, precision, recall, F1, ROC-AUC, log loss and confusion counts."""
    predicted = (probabilities >= threshold).astype(int)
    tn, fp, fn, tp = metrics.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    clipped = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return {
        "count": int(len(labels)),
        "threshold": threshold,
        "accuracy": round(float(metrics.accuracy_score(labels, predicted)), 4),
        "precision": round(float(metrics.precision_score(labels, predicted, zero_division=0)), 4),
        "recall": round(float(metrics.recall_score(labels, predicted, zero_division=0)), 4),
        "f1": round(float(metrics.f1_score(labels, predicted, zero_division=0)), 4),
        "roc_auc": round(float(metrics.roc_auc_score(labels, probabilities)), 4),
        "loss": round(float(metrics.log_loss(labels, clipped, labels=[0, 1])), 4),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def roc_points(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """ROC curve as (fpr, tpr, threshold), at most CURVE_POINTS rows."""
    fpr, tpr, thresholds = metrics.roc_curve(labels, probabilities)
    thresholds = np.minimum(thresholds, 1.0)  # sklearn puts +inf first
    return _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds}))


def precision_recall_points(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """Precision-recall curve as (recall, precision, threshold), at most CURVE_POINTS rows."""
    precision, recall, thresholds = metrics.precision_recall_curve(labels, probabilities)
    table = pd.DataFrame(
        {"recall": recall[:-1], "precision": precision[:-1], "threshold": thresholds}
    )
    return _thin(table)


def _thin(curve: pd.DataFrame) -> pd.DataFrame:
    """Evenly spaced rows, always keeping the first and the last."""
    if len(curve) <= CURVE_POINTS:
        return curve.round(5)
    keep = np.unique(np.linspace(0, len(curve) - 1, CURVE_POINTS).round().astype(int))
    return curve.iloc[keep].round(5).reset_index(drop=True)


def confusion_rows(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> pd.DataFrame:
    """One (actual, predicted) row per review, by label name (DVC's confusion template counts
    rows, and labels its axes with the values)."""
    names = np.array(LABEL_NAMES)
    predicted = (probabilities >= threshold).astype(int)
    return pd.DataFrame({"actual": names[labels.astype(int)], "predicted": names[predicted]})


def confident_errors(
    table: pd.DataFrame, probabilities: np.ndarray, threshold: float, count: int
) -> pd.DataFrame:
    """The ``count`` wrong predictions made with the most confidence."""
    predicted = (probabilities >= threshold).astype(int)
    wrong = table.assign(probability_positive=probabilities.round(5), predicted=predicted)
    wrong = wrong[wrong["predicted"] != wrong["label"]]
    confidence = (wrong["probability_positive"] - 0.5).abs()
    ranked = wrong.assign(confidence=confidence).sort_values(
        ["confidence", "id"], ascending=[False, True], kind="stable"
    )
    return ranked.head(count)[["id", "label", "rating", "probability_positive", "movie", "text"]]
