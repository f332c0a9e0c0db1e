"""Test-set metrics, DVC plot tables and the most confidently wrong reviews."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn import metrics

from imdb_sentiment.data.text import (
    HTML_BREAK,
    LABEL_NAMES,
    TextEncoder,
    tokenize,
    with_max_length,
)

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
        ["confidence", "id"], ascending=[False, True]
    )  # ids are unique, so the order is total
    return ranked.head(count)[["id", "label", "rating", "probability_positive", "movie", "text"]]


CALIBRATION_BINS = 15  # Guo et al. (2017): equal-width bins of the top-label confidence
_HTML_BREAK = re.compile(HTML_BREAK)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LAST_SENTENCE_MIN_WORDS = 4
FIRST_WORDS = 20
# Token-count buckets of the accuracy-by-length chart: (upper bound, label).
LENGTH_BUCKETS = ((10, "1-10"), (20, "11-20"), (50, "21-50"), (100, "51-100"),
                  (200, "101-200"), (400, "201-400"), (np.inf, "401+"))  # fmt: skip


def sentences(review: str) -> list[str]:
    """The review's sentences (split after . ! ?), line breaks removed."""
    return [s for s in _SENTENCE_END.split(_HTML_BREAK.sub(" ", review).strip()) if s]


def long_sentences(review: str) -> list[str]:
    """The review's sentences of at least 4 words: what a user might type."""
    return [s for s in sentences(review) if len(s.split()) >= LAST_SENTENCE_MIN_WORDS]


def last_sentence(review: str) -> str:
    """The last sentence of at least 4 words (split after . ! ?), else the last sentence."""
    return (long_sentences(review) or sentences(review) or [""])[-1]


def first_words(review: str, count: int = FIRST_WORDS) -> str:
    """The first ``count`` whitespace tokens of the review, line breaks removed."""
    return " ".join(_HTML_BREAK.sub(" ", review).split()[:count])


SHORT_VIEWS = {"last_sentence": last_sentence, "first_20_words": first_words}


def short_views(reviews: list[str]) -> dict[str, list[str]]:
    """Each short view of every review: what people type is a sentence, not a review."""
    return {name: [view(review) for review in reviews] for name, view in SHORT_VIEWS.items()}


def encode_views(
    views: dict[str, list[str]], encoder: TextEncoder, trimmed: bool = False
) -> dict[str, np.ndarray]:
    """Each view's texts as the encoder's id rows. ``trimmed``: each view's rows only as wide
    as its longest text (at most the encoder's ``max_length``), with the same ids: 25,000
    review-wide rows of short texts are 60 MB of padding, which a network masks anyway."""
    encoded = {}
    for name, texts in views.items():
        view_encoder = with_max_length(encoder, _longest(texts, encoder)) if trimmed else encoder
        encoded[name] = view_encoder.encode(texts)
    return encoded


def _longest(texts: list[str], encoder: TextEncoder) -> int:
    """The most tokens of any text (at least 1), capped at the encoder's ``max_length``."""
    lengths = tokenize(texts, **encoder.cleaning).row_lengths().numpy()
    return int(min(encoder.max_length, max(1, lengths.max(initial=0))))


def _confidence_bins(probabilities: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(top-label confidence max(p, 1-p), its bin index among ``bins`` equal bins of [0, 1])."""
    confidence = np.maximum(probabilities, 1 - probabilities).astype(np.float64)
    return confidence, np.minimum((confidence * bins).astype(int), bins - 1)


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5,
    bins: int = CALIBRATION_BINS,
) -> float:  # fmt: skip
    """Σ over bins of (share of reviews) x |accuracy - mean confidence| (Guo et al. 2017)."""
    table = reliability_table(labels, probabilities, threshold, bins)
    weights = table["count"] / max(len(labels), 1)
    return round(float((weights * (table["accuracy"] - table["confidence"]).abs()).sum()), 4)


def reliability_table(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5,
    bins: int = CALIBRATION_BINS,
) -> pd.DataFrame:  # fmt: skip
    """One row per non-empty confidence bin: bin, mean confidence, accuracy, count."""
    confidence, index = _confidence_bins(np.asarray(probabilities), bins)
    correct = (np.asarray(probabilities) >= threshold) == np.asarray(labels).astype(bool)
    frame = pd.DataFrame({"bin": index, "confidence": confidence, "accuracy": correct})
    table = frame.groupby("bin").agg(
        confidence=("confidence", "mean"), accuracy=("accuracy", "mean"),
        count=("accuracy", "size"),
    )  # fmt: skip
    return table.reset_index()


def view_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """Accuracy, ECE and mean confidence of one scored set (a short view, say)."""
    correct = (probabilities >= threshold) == labels.astype(bool)
    confidence = np.maximum(probabilities, 1 - probabilities)
    return {
        "count": int(len(labels)),
        "accuracy": round(float(np.mean(correct)), 4),
        "ece": expected_calibration_error(labels, probabilities, threshold),
        "mean_confidence": round(float(np.mean(confidence)), 4),
    }


def length_bucket(token_counts: np.ndarray) -> np.ndarray:
    """The :data:`LENGTH_BUCKETS` label of each token count."""
    bounds = np.array([bound for bound, _ in LENGTH_BUCKETS])
    labels = np.array([label for _, label in LENGTH_BUCKETS])
    return labels[np.searchsorted(bounds, token_counts, side="left")]


def accuracy_by_length(
    token_counts: np.ndarray, labels: np.ndarray, scores: dict[str, np.ndarray], threshold: float
) -> pd.DataFrame:
    """Accuracy of each model (``scores``: name -> P(positive)) per token-count bucket."""
    buckets = length_bucket(np.asarray(token_counts))
    order = [label for _, label in LENGTH_BUCKETS]
    rows = []
    for model, probabilities in scores.items():
        correct = (probabilities >= threshold) == labels.astype(bool)
        frame = pd.DataFrame({"bucket": buckets, "correct": correct})
        for bucket, group in frame.groupby("bucket", sort=False):
            rows.append({"model": model, "tokens": bucket, "order": order.index(bucket),
                         "accuracy": round(float(group["correct"].mean()), 4),
                         "count": len(group)})  # fmt: skip
    table = pd.DataFrame(rows).sort_values(["model", "order"])  # one row per (model, bucket)
    return table.drop(columns="order").reset_index(drop=True)


def probe_results(
    probes: pd.DataFrame, scores: dict[str, np.ndarray], threshold: float
) -> pd.DataFrame:
    """Each probe with each model's P(positive) and whether it lands on the expected side."""
    expected = probes["expected"].map({name: i for i, name in enumerate(LABEL_NAMES)})
    results = probes.copy()
    for model, probabilities in scores.items():
        results[f"{model}_probability"] = np.round(probabilities, 4)
        results[f"{model}_passed"] = (probabilities >= threshold).astype(int) == expected
    return results
