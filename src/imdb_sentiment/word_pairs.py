"""Word pairs: ids for the most frequent pairs of neighbouring words, computed from word ids.

A second LSTM reads a review as a sequence of pairs ("not good", "at all", "waste of"):
each pair is one embedding row, so it can carry a meaning its two words do not. The pair at
step t is (word t-1, word t). Pair ids are derived from the word ids inside the model
(:class:`WordPairs`), so the raw-text model, the training arrays and the serving kernel
(:func:`pair_ids`) all see the same pairs, and the word vocabulary stays the one vocabulary.

Id 0 is padding (the step has no predecessor, or either word is padding) and 1 is a pair
outside the kept ones, as for words.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.text import OOV_ID, PAD_ID, RESERVED_IDS


def pair_keys(ids: np.ndarray, word_vocab_size: int) -> np.ndarray:
    """int64 key of each step's pair (previous word id * word_vocab_size + word id);
    -1 where the step has no pair."""
    ids = np.asarray(ids, np.int64)
    previous = np.zeros_like(ids)
    previous[:, 1:] = ids[:, :-1]
    paired = (previous != PAD_ID) & (ids != PAD_ID)
    return np.where(paired, previous * word_vocab_size + ids, -1)


def build_pair_vocabulary(x: np.ndarray, word_vocab_size: int, size: int) -> np.ndarray:
    """Sorted keys of the ``size - RESERVED_IDS`` most frequent pairs in ``x`` (encoded
    training reviews), ties broken by key, so the same arrays give the same pairs."""
    keys = pair_keys(x, word_vocab_size)
    values, counts = np.unique(keys[keys >= 0], return_counts=True)
    ranked = values[np.argsort(-counts, kind="stable")]
    return np.sort(ranked[: max(size - RESERVED_IDS, 0)])


def pair_ids(ids: np.ndarray, vocabulary: np.ndarray, word_vocab_size: int) -> np.ndarray:
    """Word ids [batch, steps] -> pair ids [batch, steps], as :class:`WordPairs` computes."""
    keys = pair_keys(ids, word_vocab_size)
    position = np.searchsorted(vocabulary, keys).clip(0, max(len(vocabulary) - 1, 0))
    known = vocabulary[position] == keys if len(vocabulary) else np.zeros(keys.shape, bool)
    found = np.where(known, position + RESERVED_IDS, OOV_ID)
    return np.where(keys < 0, PAD_ID, found).astype(np.int32)


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class WordPairs(keras.layers.Layer):
    """Word ids in, pair ids out (same shape); the pair vocabulary is saved in the config.

    A sorted-key binary search rather than a hash table: XLA compiles it, so small serving
    batches keep their fast path.
    """

    def __init__(self, vocabulary: Any, word_vocab_size: int, **kwargs: Any) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.vocabulary = np.asarray(vocabulary, np.int64)
        if self.vocabulary.ndim != 1 or np.any(np.diff(self.vocabulary) <= 0):
            raise ValueError("WordPairs needs a strictly increasing 1-D array of pair keys")
        self.word_vocab_size = int(word_vocab_size)

    @property
    def vocab_size(self) -> int:
        """Embedding rows needed: the kept pairs plus padding and out-of-vocabulary."""
        return len(self.vocabulary) + RESERVED_IDS

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, tf.int64)
        previous = tf.pad(ids[:, :-1], [[0, 0], [1, 0]])
        keys = previous * self.word_vocab_size + ids
        vocabulary = tf.constant(self.vocabulary, tf.int64)
        if self.vocabulary.size == 0:
            found = tf.fill(tf.shape(keys), tf.constant(OOV_ID, tf.int64))
        else:
            flat = tf.reshape(keys, [1, -1])
            position = tf.reshape(tf.searchsorted(vocabulary[tf.newaxis], flat), tf.shape(keys))
            position = tf.minimum(position, len(self.vocabulary) - 1)
            known = tf.gather(vocabulary, position) == keys
            found = tf.where(known, position + RESERVED_IDS, OOV_ID)
        paired = (previous != PAD_ID) & (ids != PAD_ID)
        return tf.cast(tf.where(paired, found, PAD_ID), tf.int32)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary.tolist(),
            "word_vocab_size": self.word_vocab_size,
        }
