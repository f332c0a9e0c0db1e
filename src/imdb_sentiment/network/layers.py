"""The layers a saved model is made of, and nothing that trains: import this module, and
Keras loads models/classifier.keras and models/end_to_end.keras (numba and the training code
stay unloaded).

:class:`MaskedPooling1D` lives here; the text encoder and the n-gram layer live beside the
functions they share with preprocessing, and are listed here so that this one import
registers every layer of a saved file with Keras.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Imported for their registration with Keras: this one import then loads any saved file.
from imdb_sentiment.data.ngrams import WordNgrams  # noqa: F401
from imdb_sentiment.data.text import TextEncoder  # noqa: F401


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class MaskedPooling1D(keras.layers.Layer):
    """Max or mean over the real (unmasked) steps only; a review with no steps pools to 0.

    Keras' GlobalMaxPooling1D ignores the mask, so padding would take part in the max and a
    review would score differently padded or trimmed; its masked average divides by zero for
    a review with no tokens at all (e.g. only punctuation).
    """

    def __init__(self, mode: str = "max", **kwargs: object) -> None:
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if mask is None:
            mask = keras.ops.ones(keras.ops.shape(inputs)[:2], dtype="bool")
        keep = keras.ops.expand_dims(mask, -1)
        if self.mode == "max":
            pooled = keras.ops.max(keras.ops.where(keep, inputs, -1e9), axis=1)
        else:
            weights = keras.ops.cast(keep, inputs.dtype)
            count = keras.ops.sum(weights, axis=1)
            pooled = keras.ops.sum(inputs * weights, axis=1) / keras.ops.maximum(count, 1.0)
        return keras.ops.where(keras.ops.any(keep, axis=1), pooled, 0.0)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class BagOfIds(keras.layers.Layer):
    """A linear model over a bag of ids: one weight per id, summed over the distinct
    non-padding ids of each row, plus a bias; [batch, steps] ids in, [batch, 1] logit out.

    Distinct, as binary n-gram features count a word once however often it occurs
    (Wang & Manning's NB-weighted logistic regression, fitted by scikit-learn in
    :mod:`imdb_sentiment.training.linear_branch` and copied in with ``set_weights``).
    """

    def __init__(self, rows: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.rows = int(rows)

    def build(self, input_shape: tuple) -> None:
        self.table = self.add_weight(shape=(self.rows,), initializer="zeros", name="table")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ordered = tf.sort(tf.cast(ids, tf.int32), axis=1)
        first = tf.concat(  # each id's first place in its sorted row
            [tf.ones_like(ordered[:, :1], tf.bool), ordered[:, 1:] != ordered[:, :-1]], axis=1
        )
        counted = first & (ordered != 0)  # 0 is padding
        weights = tf.where(counted, tf.gather(self.table, ordered), 0.0)
        return tf.reduce_sum(weights, axis=1, keepdims=True) + self.bias

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "rows": self.rows}


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class LengthAwareBlend(keras.layers.Layer):
    """P(positive) from two branches, weighed by the text's length: the sigmoid of
    ``w · [a, b, a·f, b·f, f] + bias``, where ``a`` is the logit of the LSTM's P(positive),
    ``b`` the linear branch's logit and ``f = (ln(tokens) - 4) / 2`` (0 near 55 tokens).

    One weight per branch would calibrate either reviews or sentences, not both (the
    networks are under-confident on reviews and over-confident on sentences); the length
    terms let the blend, fitted on validation reviews and their short views, do both.
    Inputs: [P(positive) of the LSTM [batch, 1], linear logit [batch, 1], word ids].
    """

    FEATURES = 5

    def build(self, input_shape: list) -> None:
        self.kernel = self.add_weight(shape=(self.FEATURES,), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, inputs: list) -> tf.Tensor:
        features = blend_features(*inputs)
        return tf.sigmoid(tf.linalg.matvec(features, self.kernel)[:, None] + self.bias)

    def compute_output_shape(self, input_shape: list) -> tuple:
        return (input_shape[0][0], 1)


def blend_features(probability: tf.Tensor, linear_logit: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """[batch, 5]: :class:`LengthAwareBlend`'s features (the one definition, fitted and served)."""
    epsilon = 1e-7
    p = tf.clip_by_value(tf.cast(probability, tf.float32), epsilon, 1 - epsilon)
    lstm_logit = tf.math.log(p) - tf.math.log1p(-p)
    tokens = tf.reduce_sum(tf.cast(ids != 0, tf.float32), axis=1, keepdims=True)
    length = (tf.math.log(tf.maximum(tokens, 1.0)) - 4.0) / 2.0
    linear_logit = tf.cast(linear_logit, tf.float32)
    return tf.concat(
        [lstm_logit, linear_logit, lstm_logit * length, linear_logit * length, length], axis=1
    )
