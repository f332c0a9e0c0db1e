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
