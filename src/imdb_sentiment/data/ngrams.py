"""Word n-grams: ids for the most frequent runs of n neighbouring words, from word ids.

A second (and third) LSTM reads a review as a sequence of pairs ("not good", "waste of") or
triples ("one of the", "not worth the"): each n-gram is one embedding row, so it can carry a
meaning its words do not. The n-gram at step t is (word t-n+1, ..., word t). N-gram ids are
derived from the word ids inside the model (:class:`WordNgrams`, which the serving kernel
calls too), so the raw-text model, training and serving all see the same n-grams, and the
word vocabulary stays the one vocabulary.

Id 0 is padding (the step has fewer than n-1 predecessors, or any of its words is padding)
and 1 is an n-gram outside the kept ones, as for words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.data.text import OOV_ID, PAD_ID, RESERVED_IDS

NAMES = {2: "pairs", 3: "triples"}  # the n-grams the pipeline builds, by n
COUNT_CHUNK = 2048  # rows whose n-grams are counted at once


def _check_key_range(word_vocab_size: int, n: int) -> None:
    if n < 2:
        raise ValueError(f"an n-gram has at least 2 words, got n={n}")
    if word_vocab_size**n > 2**63:  # keys run to word_vocab_size**n - 1
        raise ValueError(f"{n}-grams of a {word_vocab_size}-word vocabulary overflow int64 keys")


def ngram_keys(ids: np.ndarray | tf.Tensor, word_vocab_size: int, n: int) -> tf.Tensor:
    """int64 key of each step's n-gram (its word ids as the digits of a base-word_vocab_size
    number, oldest first); -1 where the step has no n-gram. The one definition of an n-gram:
    the vocabulary is built from these keys and :class:`WordNgrams` looks them up."""
    _check_key_range(word_vocab_size, n)
    ids = tf.cast(ids, tf.int64)
    keys, complete = ids, ids != PAD_ID
    for back in range(1, n):
        # Padded then cut, not cut then padded: a review shorter than n stays its length.
        earlier = tf.pad(ids, [[0, 0], [back, 0]])[:, : tf.shape(ids)[1]]
        keys = keys + earlier * word_vocab_size**back
        complete = complete & (earlier != PAD_ID)
    return tf.where(complete, keys, tf.constant(-1, tf.int64))


def build_ngram_vocabulary(x: np.ndarray, word_vocab_size: int, size: int, n: int) -> np.ndarray:
    """Sorted keys of the ``size - RESERVED_IDS`` most frequent n-grams in ``x`` (encoded
    training reviews), ties broken by key, so the same arrays give the same n-grams."""
    values, counts = ngram_counts(x, word_vocab_size, n)
    ranked = values[np.argsort(-counts, kind="stable")]
    return np.sort(ranked[: max(size - RESERVED_IDS, 0)])


def ngram_counts(x: np.ndarray, word_vocab_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each n-gram key that occurs in ``x``, sorted, and how often it occurs.

    Counted in chunks of :data:`COUNT_CHUNK` rows: the keys of every row at once, with the
    shifted copies that make them, are several int64 copies of ``x`` (~0.5 GB for the
    training reviews), all alive at the train stage's peak."""
    parts = []
    for start in range(0, len(x), COUNT_CHUNK):
        keys = ngram_keys(x[start : start + COUNT_CHUNK], word_vocab_size, n).numpy()
        parts.append(np.unique(keys[keys >= 0], return_counts=True))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    values, where = np.unique(np.concatenate([v for v, _ in parts]), return_inverse=True)
    counts = np.bincount(where, weights=np.concatenate([c for _, c in parts]))
    return values, counts.astype(np.int64)


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class WordNgrams(keras.layers.Layer):
    """Word ids in, n-gram ids out (same shape); the n-gram vocabulary is saved in the config.

    A sorted-key binary search rather than a hash table: XLA compiles it, so small serving
    batches keep their fast path.
    """

    def __init__(self, vocabulary: Any, word_vocab_size: int, n: int = 2, **kwargs: Any) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        _check_key_range(int(word_vocab_size), int(n))
        self.vocabulary = np.asarray(vocabulary, np.int64)
        if self.vocabulary.ndim != 1 or np.any(np.diff(self.vocabulary) <= 0):
            raise ValueError("WordNgrams needs a strictly increasing 1-D array of n-gram keys")
        self.word_vocab_size, self.n = int(word_vocab_size), int(n)

    @property
    def vocab_size(self) -> int:
        """Embedding rows needed: the kept n-grams plus padding and out-of-vocabulary."""
        return len(self.vocabulary) + RESERVED_IDS

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        keys = ngram_keys(ids, self.word_vocab_size, self.n)
        vocabulary = tf.constant(self.vocabulary, tf.int64)
        if self.vocabulary.size == 0:
            found = tf.fill(tf.shape(keys), tf.constant(OOV_ID, tf.int64))
        else:
            flat = tf.reshape(keys, [1, -1])
            position = tf.reshape(tf.searchsorted(vocabulary[tf.newaxis], flat), tf.shape(keys))
            position = tf.minimum(position, len(self.vocabulary) - 1)
            known = tf.gather(vocabulary, position) == keys
            found = tf.where(known, position + RESERVED_IDS, OOV_ID)
        return tf.cast(tf.where(keys >= 0, found, PAD_ID), tf.int32)

    def traced(self) -> Callable[[np.ndarray], np.ndarray]:
        """This layer as a function of numpy id arrays, traced once (for the serving
        kernel: an eager call costs ~3.6 ms, a traced one ~0.5 ms, on one review here)."""
        call = tf.function(self.call, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        return lambda ids: call(np.asarray(ids, np.int32)).numpy()

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary.tolist(),
            "word_vocab_size": self.word_vocab_size,
            "n": self.n,
        }
