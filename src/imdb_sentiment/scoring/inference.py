"""Scoring encoded reviews fast: a compiled LSTM kernel, or Keras over length-sorted batches."""

from __future__ import annotations

import bisect
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.data.dataset import shortest_first, token_counts, trim_padding
from imdb_sentiment.scoring.lstm_kernel import compile_lstm_scorer

Scorer = Callable[[np.ndarray], np.ndarray]
XLA_MAX_ROWS = 16  # batches up to this many rows run through XLA, larger ones a plain graph
# Serving micro-batches over this many rows are scored in two length-sorted calls, so with XLA
# the shorter reviews do not pad to the longest one: ~10% less time for 16 random reviews
# (the LSTM kernel never runs padding steps, so for it the split costs nothing either way).
XLA_SPLIT_ROWS = 8


def length_buckets(max_length: int) -> list[int]:
    """Sequence lengths that XLA compiles for: steps of 64 up to 256, then x1.5 and x2 in turn.

    Most reviews are short, so short lengths get fine steps (little padding where most of the
    traffic is) and long ones coarse steps (few programs to compile), ending at max_length.
    """
    buckets = [64, 128, 192, 256]
    while buckets[-1] < max_length:
        buckets.append(buckets[-2] * 2)
    return [length for length in buckets if length < max_length] + [max_length]


def scorer(model: keras.Model, max_length: int, word_vocab_size: int | None = None) -> Scorer:
    """A compiled ids -> P(positive) function.

    A one-layer, one-direction LSTM classifier (the default architecture) runs on
    :mod:`imdb_sentiment.scoring.lstm_kernel`: no steps spent on padding, ~1.7x faster than
    Keras on the test set on a CPU (docs/serving.md), equal to float32 rounding.
    Other architectures run through :func:`keras_scorer`.
    """
    return select_scorer(model, max_length, word_vocab_size)[1]


def select_scorer(
    model: keras.Model,
    max_length: int,
    word_vocab_size: int | None = None,
    architecture: dict | None = None,
) -> tuple[str, Scorer]:
    """:func:`scorer` with the name of the path it chose: "numba" (the LSTM kernel) or "keras".

    ``word_vocab_size`` (the encoder's, where known) is checked against the kernel's tables;
    ``architecture``: the description saved with the model (None: read from the model)."""
    kernel = compile_lstm_scorer(model, word_vocab_size, architecture)
    return ("numba", kernel) if kernel else ("keras", keras_scorer(model, max_length))


def keras_scorer(model: keras.Model, max_length: int, xla_max_rows: int = XLA_MAX_ROWS) -> Scorer:
    """The Keras model as a compiled ids -> P(positive) function.

    Small batches (serving) run through XLA, which fuses each LSTM step into one kernel:
    about 5x faster for one review on a CPU. XLA compiles one program per input shape
    (about a second each), so those batches are padded to a few shapes: rows to a power of
    two, length to the next of :func:`length_buckets`; padding is masked and does not change
    the result. Larger batches (evaluation, files) gain less and use one plain graph for any
    shape.
    """
    signature = [tf.TensorSpec([None, None], tf.int32)]
    plain = tf.function(lambda ids: model(ids, training=False), input_signature=signature)
    xla = tf.function(lambda ids: model(ids, training=False), jit_compile=True)
    compiled: dict[tuple[int, int], Callable] = {}
    buckets = length_buckets(max_length)

    def score(ids: np.ndarray) -> np.ndarray:
        count, length = ids.shape
        if count > xla_max_rows:
            return plain(ids).numpy().reshape(-1)
        padded_length = buckets[min(bisect.bisect_left(buckets, length), len(buckets) - 1)]
        shape = (1 << max(count - 1, 0).bit_length(), max(padded_length, length))
        if shape not in compiled:
            compiled[shape] = xla.get_concrete_function(tf.TensorSpec(shape, tf.int32))
        padded = np.zeros(shape, np.int32)
        padded[:count, shape[1] - length :] = ids
        padded[count:] = padded[0]  # filler rows repeat a real one; they are dropped below
        return compiled[shape](tf.constant(padded)).numpy().reshape(-1)[:count]

    return score


def predict_probabilities(score: Scorer, x: np.ndarray, batch_size: int) -> np.ndarray:
    """P(positive) for each row of ``x``, computed over length-sorted, trimmed batches."""
    if XLA_SPLIT_ROWS < len(x) <= XLA_MAX_ROWS:
        batch_size = min(batch_size, XLA_SPLIT_ROWS)
    order = shortest_first(token_counts(x))
    probabilities = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        probabilities[rows] = score(trim_padding(x[rows]))
    return probabilities
