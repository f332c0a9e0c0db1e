"""The linear branch beside the LSTM, and the length-aware blend of the two (issue 32).

The branch is a bag of the network's own ids, the word ids and each n-gram layer's ids that
the LSTM views read (and, with ``train.linear_branch_triples``, id triples of its own, round
19 of docs/history.md), weighted by an NB-weighted logistic regression
(:func:`imdb_sentiment.training.linear.nb_head`: binary features scaled by their log-count
ratio, then liblinear) that scikit-learn fits on the student's training reviews and labels.
Its weights are copied into :class:`~imdb_sentiment.network.layers.BagOfIds` layers, so the
served network is still one Keras network that reads one tokenisation. Its errors differ
from the LSTM's; a :class:`~imdb_sentiment.network.layers.LengthAwareBlend`, fitted on the
validation reviews and their first and last words, weighs the two by the text's length and
calibrates the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import scipy.sparse
from sklearn.linear_model import LogisticRegression

from imdb_sentiment.data.ngrams import NAMES, WordNgrams
from imdb_sentiment.network.branches import (
    BLEND_LAYER,
    LINEAR_LAYER,
    STUDENT_LAYER,
    linear_logit,
)
from imdb_sentiment.network.layers import BagOfIds, LengthAwareBlend, blend_features
from imdb_sentiment.scoring.inference import keras_scorer, predict_probabilities, scorer
from imdb_sentiment.training import linear

BAG_PREFIX = "linear_"  # each bag's name: this, then its view ("words", "pairs", ...)
BLEND_C = 100.0  # five weights fitted on thousands of texts: barely regularised
SCORING_BATCH = 256
FEATURE_CHUNK = 2048  # reviews whose id features are built at once
# blend_features' columns, by name
BLEND_FEATURES = ("lstm", "linear", "lstm_x_length", "linear_x_length", "length")


IdsOf = Callable[[np.ndarray], np.ndarray]  # word ids -> an n-gram layer's ids


def id_features(
    x: np.ndarray | Sequence[np.ndarray], views: list[IdsOf | None], rows: list[int]
) -> scipy.sparse.csr_matrix:
    """Binary bag-of-ids features of encoded texts (one array, or blocks of rows that may
    differ in width): one block of columns per bag (the word ids for ``None``, else the ids
    of that view, an n-gram layer's ``traced()``: traced once by the caller, however often it
    calls), padding (id 0) left out."""
    # In chunks of rows: each view's ids and their coordinates are several times the size of
    # the features, and all of them at once cost the train stage ~1 GB at its peak. Stacked
    # once: stacking each block's features again would hold two copies at once.
    blocks = [x] if isinstance(x, np.ndarray) else list(x)
    chunks = [
        _id_features_of_chunk(block[start : start + FEATURE_CHUNK], views, rows)
        for block in blocks
        for start in range(0, len(block), FEATURE_CHUNK)
    ]
    if not chunks:
        return scipy.sparse.csr_matrix((0, sum(rows)), dtype=np.float32)
    return scipy.sparse.vstack(chunks, format="csr")


def _id_features_of_chunk(
    x: np.ndarray, views: list[IdsOf | None], rows: list[int]
) -> scipy.sparse.csr_matrix:
    row_parts, column_parts, offset = [], [], 0
    for ids_of, size in zip(views, rows, strict=True):
        ids = x if ids_of is None else np.asarray(ids_of(x))
        review, step = np.nonzero(ids)
        row_parts.append(review)
        column_parts.append(ids[review, step].astype(np.int64) + offset)
        offset += size
    review, column = np.concatenate(row_parts), np.concatenate(column_parts)
    features = scipy.sparse.csr_matrix(
        (np.ones(len(review), np.float32), (review, column)), shape=(len(x), offset)
    )
    features.sum_duplicates()
    features.data[:] = 1.0  # binary: an id counts once per review
    return features


def with_linear_branch(
    student: keras.Model,
    word_vocab_size: int,
    ngram_vocabularies: dict[int, np.ndarray],
    name: str,
) -> keras.Model:
    """``student`` (ids -> P(positive)) beside an untrained linear branch over the same ids,
    joined by an untrained blend: fit them with :func:`fit_linear` and
    :func:`set_linear_weights`, then :func:`fit_blend`."""
    if student.compiled:  # a words-only student is its own trainer: keep its optimizer out
        student = keras.Model(student.input, student.output, name=student.name)
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    logits = [BagOfIds(word_vocab_size, name=BAG_PREFIX + "words")(ids)]
    for n, vocabulary in sorted(ngram_vocabularies.items()):
        view = NAMES.get(n, f"{n}_grams")
        ngrams = WordNgrams(vocabulary, word_vocab_size, n, name=_ngrams_name(view))
        logits.append(BagOfIds(ngrams.vocab_size, name=BAG_PREFIX + view)(ngrams(ids)))
    if len(logits) > 1:
        summed = keras.layers.Add(name=LINEAR_LAYER)(logits)
    else:  # named all the same: the branch's logit is found by its name
        summed = keras.layers.Identity(name=LINEAR_LAYER)(logits[0])
    probability = LengthAwareBlend(name=BLEND_LAYER)([student(ids), summed, ids])
    return keras.Model(ids, probability, name=name)


def _bags(model: keras.Model) -> list[tuple[WordNgrams | None, BagOfIds]]:
    """Each bag of the linear branch with the n-gram layer that feeds it (None: words)."""
    bags = [layer for layer in model.layers if isinstance(layer, BagOfIds)]
    ngrams = {layer.name: layer for layer in model.layers if isinstance(layer, WordNgrams)}
    return [(ngrams.get(_ngrams_name(bag.name.removeprefix(BAG_PREFIX))), bag) for bag in bags]


def _ngrams_name(view: str) -> str:
    """The name of the n-gram layer that feeds the bag named BAG_PREFIX + ``view``."""
    return f"{BAG_PREFIX}word_{view}"


@dataclass(frozen=True)
class LinearFit:
    """The linear branch's regression, fitted apart from any network (before the student is
    trained, when the train stage holds least): its n-gram vocabularies by n, the weights of
    its bags' columns (the word ids, then each n's ids, by n), bias and training accuracy."""

    vocabularies: dict[int, np.ndarray]
    weights: np.ndarray
    bias: float
    accuracy: float


def fit_linear(
    x: np.ndarray | Sequence[np.ndarray], y: np.ndarray, word_vocab_size: int,
    ngram_vocabularies: dict[int, np.ndarray], c: float,
    sample_weight: np.ndarray | None = None,
) -> LinearFit:  # fmt: skip
    """The NB-weighted regression over the word ids and the ids of ``ngram_vocabularies``'
    n-grams of encoded texts (one array, or blocks of rows that may differ in width) and their
    0/1 labels, each row weighed by ``sample_weight`` (None: alike)."""
    layers = [WordNgrams(v, word_vocab_size, n) for n, v in sorted(ngram_vocabularies.items())]
    views = [None, *(layer.traced() for layer in layers)]
    rows = [word_vocab_size, *(layer.vocab_size for layer in layers)]
    features = id_features(x, views, rows)
    head = linear.nb_head(c, alpha=1.0)
    # The head's steps one at a time, scaling in place: the features are binary, so each
    # entry becomes its column's ratio (the scaling step's own values), in the float64 that
    # liblinear reads. A scaled copy beside the features cost ~0.4 GB at the train stage's
    # peak (with the training sentences, ~23M entries).
    features.data = head[0].fit(features, y).ratio_[features.indices]
    regression = head[-1].fit(features, y, sample_weight=sample_weight)
    return LinearFit(
        dict(ngram_vocabularies),
        (regression.coef_[0] * head[0].ratio_).astype(np.float32),
        float(regression.intercept_[0]),
        float(np.mean(regression.predict(features) == y)),
    )


def set_linear_weights(model: keras.Model, fitted: LinearFit) -> None:
    """Copy ``fitted`` into the bags of ``model`` (:func:`with_linear_branch` with the same
    vocabularies)."""
    bags = [bag for _, bag in _bags(model)]
    rows = sum(bag.rows for bag in bags)
    if rows != len(fitted.weights):
        raise ValueError(f"{model.name}: its bags have {rows} rows, the fit {len(fitted.weights)}")
    start = 0
    for number, bag in enumerate(bags):
        bias = np.array([fitted.bias if number == 0 else 0.0], np.float32)
        bag.set_weights([fitted.weights[start : start + bag.rows], bias])
        start += bag.rows


def fit_blend(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Fit the blend of ``model`` by logistic regression on encoded texts and their labels
    (the validation reviews and their short views); return its weights by feature."""
    student = model.get_layer(STUDENT_LAYER)
    lstm = predict_probabilities(scorer(student, x.shape[1]), x, SCORING_BATCH)
    logits = predict_probabilities(keras_scorer(linear_logit(model), x.shape[1]), x, SCORING_BATCH)
    features = blend_features(lstm[:, None], logits[:, None], x).numpy()
    regression = LogisticRegression(C=BLEND_C, max_iter=1000).fit(features, y)
    blend = model.get_layer(BLEND_LAYER)
    blend.set_weights(
        [regression.coef_[0].astype(np.float32), regression.intercept_.astype(np.float32)]
    )
    coefficients = zip(BLEND_FEATURES, regression.coef_[0], strict=True)
    return {name: round(float(w), 4) for name, w in coefficients}
