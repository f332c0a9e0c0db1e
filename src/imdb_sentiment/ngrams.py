"""Word n-grams: ids for the most frequent runs of n neighbouring words, from word ids.

A second (and third) LSTM reads a review as a sequence of pairs ("not good", "waste of") or
triples ("one of the", "not worth the"): each n-gram is one embedding row, so it can carry a
meaning its words do not. The n-gram at step t is (word t-n+1, ..., word t). N-gram ids are
derived from the word ids inside the model (:class:`WordNgrams`), so the raw-text model, the
training arrays and the serving kernel (:func:`ngram_ids`) all see the same n-grams, and the
word vocabulary stays the one vocabulary.

Id 0 is padding (the step has fewer than n-1 predecessors, or any of its words is padding)
and 1 is an n-gram outside the kept ones, as for words.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.text import OOV_ID, PAD_ID, RESERVED_IDS

NAMES = {2: "pairs", 3: "triples"}  # the n-grams the pipeline builds, by n


def _check_key_range(word_vocab_size: int, n: int) -> None:
    if n < 2:
        raise ValueError(f"an n-gram has at least 2 words, got n={n}")
    if word_vocab_size**n >= 2**63:
        raise ValueError(f"{n}-grams of a {word_vocab_size}-word vocabulary overflow int64 keys")


def ngram_keys(ids: np.ndarray, word_vocab_size: int, n: int) -> np.ndarray:
    """int64 key of each step's n-gram (its word ids as the digits of a base-word_vocab_size
    number, oldest first); -1 where the step has no n-gram."""
    _check_key_range(word_vocab_size, n)
    ids = np.asarray(ids, np.int64)
    keys = ids.copy()
    complete = ids != PAD_ID
    for back in range(1, n):
        earlier = np.zeros_like(ids)
        earlier[:, back:] = ids[:, :-back]
        keys += earlier * word_vocab_size**back
        complete &= earlier != PAD_ID
    return np.where(complete, keys, -1)


def build_ngram_vocabulary(x: np.ndarray, word_vocab_size: int, size: int, n: int) -> np.ndarray:
    """Sorted keys of the ``size - RESERVED_IDS`` most frequent n-grams in ``x`` (encoded
    training reviews), ties broken by key, so the same arrays give the same n-grams."""
    keys = ngram_keys(x, word_vocab_size, n)
    values, counts = np.unique(keys[keys >= 0], return_counts=True)
    ranked = values[np.argsort(-counts, kind="stable")]
    return np.sort(ranked[: max(size - RESERVED_IDS, 0)])


def ngram_ids(ids: np.ndarray, vocabulary: np.ndarray, word_vocab_size: int, n: int) -> np.ndarray:
    """Word ids [batch, steps] -> n-gram ids [batch, steps], as :class:`WordNgrams` computes."""
    keys = ngram_keys(ids, word_vocab_size, n)
    position = np.searchsorted(vocabulary, keys).clip(0, max(len(vocabulary) - 1, 0))
    known = vocabulary[position] == keys if len(vocabulary) else np.zeros(keys.shape, bool)
    found = np.where(known, position + RESERVED_IDS, OOV_ID)
    return np.where(keys < 0, PAD_ID, found).astype(np.int32)


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
        ids = tf.cast(ids, tf.int64)
        keys, complete = ids, ids != PAD_ID
        for back in range(1, self.n):
            # Padded then cut, not cut then padded: a review shorter than n stays its length.
            earlier = tf.pad(ids, [[0, 0], [back, 0]])[:, : tf.shape(ids)[1]]
            keys = keys + earlier * self.word_vocab_size**back
            complete = complete & (earlier != PAD_ID)
        vocabulary = tf.constant(self.vocabulary, tf.int64)
        if self.vocabulary.size == 0:
            found = tf.fill(tf.shape(keys), tf.constant(OOV_ID, tf.int64))
        else:
            flat = tf.reshape(keys, [1, -1])
            position = tf.reshape(tf.searchsorted(vocabulary[tf.newaxis], flat), tf.shape(keys))
            position = tf.minimum(position, len(self.vocabulary) - 1)
            known = tf.gather(vocabulary, position) == keys
            found = tf.where(known, position + RESERVED_IDS, OOV_ID)
        return tf.cast(tf.where(complete, found, PAD_ID), tf.int32)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary.tolist(),
            "word_vocab_size": self.word_vocab_size,
            "n": self.n,
        }
