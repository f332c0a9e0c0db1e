"""The linear baseline every accuracy claim is made against: NB-weighted logistic regression.

Wang & Manning's NBSVM idea (ACL 2012): binary word n-gram features, each scaled by its
log-count ratio r = log((p / |p|₁) / (q / |q|₁)), where p and q count how often the n-gram
occurs in positive and negative training texts (plus ``alpha``), then an L2 logistic
regression. It trains in well under a minute and is hard to beat on full reviews.

Texts are cleaned by the pipeline's own cleaning (:func:`imdb_sentiment.data.text.clean`), so the
baseline and the LSTM see the same words. :func:`tfidf_model` is the second linear model the
benchmark trains beside it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import scipy.sparse
import tensorflow as tf
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from imdb_sentiment.data import text

SCORING_CHUNK = 2000  # texts scored per call
WHITESPACE_TOKENS = r"\S+"  # the texts are already cleaned and split by the pipeline's rules


class LogCountRatio(BaseEstimator, TransformerMixin):
    """Scale each feature column by its NB log-count ratio, learned from the labels."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, features: scipy.sparse.spmatrix, labels: np.ndarray) -> LogCountRatio:
        """Only the columns the rows have count: a column no row has (an n-gram of texts
        held out of this fit) gets a ratio of 0 and stays out of the smoothed totals, so the
        fit is the one of a model that never counted those texts."""
        labels = np.asarray(labels)
        positive = np.asarray(features[labels == 1].sum(axis=0)).ravel()
        negative = np.asarray(features[labels == 0].sum(axis=0)).ravel()
        present = (positive + negative) > 0
        positive, negative = (self.alpha + counts[present] for counts in (positive, negative))
        self.ratio_ = np.zeros(features.shape[1])
        self.ratio_[present] = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
        return self

    def transform(self, features: scipy.sparse.spmatrix) -> scipy.sparse.csr_matrix:
        return scipy.sparse.csr_matrix(features.multiply(self.ratio_))


@dataclass
class LinearModel:
    """A fitted scikit-learn pipeline plus the cleaning it expects, scoring raw texts."""

    pipeline: Pipeline
    cleaning: dict[str, bool]

    def probabilities(self, texts: Sequence[str], chunk: int = SCORING_CHUNK) -> np.ndarray:
        """P(positive) of each raw text, float32, ``chunk`` texts at a time: counting the
        n-grams of 25,000 reviews at once takes about 800 MB more than of 2,000."""
        scores = np.zeros(len(texts), np.float32)
        for start in range(0, len(texts), chunk):
            cleaned = clean_texts(texts[start : start + chunk], self.cleaning)
            scores[start : start + chunk] = self.pipeline.predict_proba(cleaned)[:, 1]
        return scores

    def save(self, path: Path) -> None:
        Path(path).write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    @staticmethod
    def load(path: Path) -> LinearModel:
        """Read a model written by :meth:`save` (a pickle: load only files you trust)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; run the linear_baseline stage first")
        model = pickle.loads(path.read_bytes())
        if not isinstance(model, LinearModel):
            raise TypeError(f"{path}: not a linear baseline model")
        return model


def clean_texts(
    texts: Sequence[str], cleaning: dict[str, bool], chunk: int = SCORING_CHUNK
) -> list[str]:
    """The pipeline's cleaning of each text, tokens joined by single spaces, ``chunk`` texts
    at a time: TensorFlow's token tensors of all 23,750 training reviews at once left the
    linear_baseline stage ~970 MB larger for the rest of its run (docs/benchmarks.md)."""
    cleaned: list[str] = []
    for start in range(0, len(texts), chunk):
        tokens = text.tokenize(tf.constant(list(texts[start : start + chunk])), **cleaning)
        joined = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        cleaned.extend(value.decode("utf-8") for value in joined.numpy())
    return cleaned


def ngram_counts(ngram_max: int) -> CountVectorizer:
    """Binary word 1..ngram_max-gram features of cleaned text."""
    return CountVectorizer(
        binary=True,
        ngram_range=(1, ngram_max),
        token_pattern=WHITESPACE_TOKENS,
        lowercase=False,
        dtype=np.float32,
    )


def nb_head(c: float, alpha: float) -> Pipeline:
    """What follows the n-gram counts: the log-count-ratio scaling and the classifier."""
    return make_pipeline(
        LogCountRatio(alpha), LogisticRegression(C=c, solver="liblinear", max_iter=1000)
    )


def fit_nb_model(
    cleaned: list[str], labels: np.ndarray, ngram_max: int, c: float, alpha: float,
    folds: int, seed: int,
) -> tuple[Pipeline, np.ndarray]:  # fmt: skip
    """The NB-weighted model fitted on every cleaned text, and each text's out-of-fold
    P(positive). The n-grams are counted once: a fold's model learns its scaling and weights
    from its own rows (an n-gram no training row has keeps a weight of 0), so counting the
    held-out texts' n-grams too changes nothing that it learns, and saves counting them 1 +
    ``folds`` times (time and, for 1.5 million n-grams, gigabytes). :class:`LogCountRatio`
    leaves those n-grams out of its totals, so each fold's model is the one it would be alone."""
    counts = ngram_counts(ngram_max)
    features = counts.fit_transform(cleaned)
    labels = np.asarray(labels)
    scores = out_of_fold_probabilities(lambda: nb_head(c, alpha), features, labels, folds, seed)
    head = nb_head(c, alpha).fit(features, labels)
    return Pipeline([("countvectorizer", counts), *head.steps]), scores


def tfidf_model(c: float = 8.0, max_features: int = 300_000) -> Pipeline:
    """TF-IDF word 1-2-grams (sublinear tf, min_df 2) + logistic regression: issue 32's table."""
    features = TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=2,
        max_features=max_features,
        token_pattern=WHITESPACE_TOKENS,
        lowercase=False,
        dtype=np.float32,
    )
    return make_pipeline(features, LogisticRegression(C=c, solver="liblinear", max_iter=1000))


def out_of_fold_probabilities(
    make: Callable[[], Pipeline], features: object, labels: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """P(positive) of each row of ``features`` (a matrix, or a list of texts) from a model
    fitted on the other folds (stratified, seeded); the folds are fitted on threads, one per
    core, sharing ``features``.

    A model scoring its own training texts is over-confident; as a teacher it would pass that
    on. Each text is scored by a model that never saw it.
    """
    labels = np.asarray(labels)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels)

    def rows(indices: np.ndarray) -> object:
        return features[indices] if hasattr(features, "shape") else [features[i] for i in indices]

    def fold(fitted_on: np.ndarray, held_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = make().fit(rows(fitted_on), labels[fitted_on])
        return held_out, model.predict_proba(rows(held_out))[:, 1]

    scores = np.empty(len(labels), np.float32)
    jobs = joblib.Parallel(n_jobs=min(folds, os.cpu_count() or 1), prefer="threads")
    for held_out, fold_scores in jobs(joblib.delayed(fold)(*split) for split in splits):
        scores[held_out] = fold_scores
    return scores
