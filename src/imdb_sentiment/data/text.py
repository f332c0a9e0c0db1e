"""Text cleaning, vocabulary and integer encoding, as one Keras layer.

Preprocess encodes the training arrays with :class:`TextEncoder` and the exported raw-text
model starts with the very same layer (saved in its config), so training and serving cannot
tokenise differently.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.fileio import write_json

LABEL_NAMES = ("negative", "positive")  # what labels 0 and 1 mean, everywhere
PAD_ID = 0
OOV_ID = 1
RESERVED_IDS = 2  # padding and out-of-vocabulary come before the first word
HTML_BREAK = r"<br\s*/?>"  # the line breaks of the reviews, removed by strip_html
_NOT_WORD = r"[^\pL\pN']+"  # keep letters, digits and in-word apostrophes (don't, it's)
_EDGE_APOSTROPHES = r" '+|'+ "  # leading or trailing: 'quoted' words lose their quotes
CLEANING_OPTIONS = ("lowercase", "strip_html", "strip_punctuation")


def cleaning_options(source: object) -> dict[str, bool]:
    """The cleaning switches of anything that carries them as attributes."""
    return {name: getattr(source, name) for name in CLEANING_OPTIONS}


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class TextEncoder(keras.layers.Layer):
    """Map raw review strings to fixed-length int32 id sequences."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        max_length: int,
        padding: str = "pre",
        truncating: str = "pre",
        lowercase: bool = True,
        strip_html: bool = True,
        strip_punctuation: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs["trainable"] = False  # a lookup table has nothing to learn
        super().__init__(**kwargs)
        if not vocabulary:
            raise ValueError("TextEncoder needs a non-empty vocabulary")
        self.vocabulary = list(vocabulary)
        self.max_length = int(max_length)
        self.padding = padding
        self.truncating = truncating
        self.lowercase = lowercase
        self.strip_html = strip_html
        self.strip_punctuation = strip_punctuation
        ids = tf.range(RESERVED_IDS, RESERVED_IDS + len(self.vocabulary), dtype=tf.int64)
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.constant(self.vocabulary, tf.string), ids
        )
        self._table = tf.lookup.StaticHashTable(initializer, default_value=OOV_ID)
        # Eager string ops cost ~10 ms a call; one compiled graph for any batch size ~1 ms.
        self._compiled_call = tf.function(
            self.call, input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True
        )

    @property
    def vocab_size(self) -> int:
        """Embedding rows needed: the words plus padding and out-of-vocabulary."""
        return len(self.vocabulary) + RESERVED_IDS

    @property
    def cleaning(self) -> dict[str, bool]:
        return cleaning_options(self)

    def call(self, texts: Any) -> tf.Tensor:
        ids = tf.ragged.map_flat_values(self._table.lookup, tokenize(texts, **self.cleaning))
        ids = ids[:, -self.max_length :] if self.truncating == "pre" else ids[:, : self.max_length]
        padded = ids.to_tensor(default_value=PAD_ID, shape=[None, self.max_length])
        if self.padding == "pre":
            padded = _shift_right(padded, ids.row_lengths())
        return tf.cast(padded, tf.int32)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], self.max_length)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "max_length": self.max_length,
            "padding": self.padding,
            "truncating": self.truncating,
            **self.cleaning,
        }

    def encode(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        """Eagerly encode a list of strings into an int32 array [len(texts), max_length]."""
        chunks = [
            self._compiled_call(tf.constant(list(texts[start : start + batch_size]))).numpy()
            for start in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.max_length), np.int32)


def with_max_length(encoder: TextEncoder, max_length: int) -> TextEncoder:
    """The same encoder (vocabulary, cleaning, padding and truncating sides), ``max_length``
    ids wide: short texts need no rows as wide as a review's."""
    return TextEncoder(
        encoder.vocabulary, max_length, encoder.padding, encoder.truncating, **encoder.cleaning
    )


def clean(
    texts: tf.Tensor, lowercase: bool, strip_html: bool, strip_punctuation: bool
) -> tf.Tensor:
    """Apply the cleaning options to a string tensor."""
    if strip_html:
        texts = tf.strings.regex_replace(texts, HTML_BREAK, " ")
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    if strip_punctuation:
        texts = tf.strings.regex_replace(texts, _NOT_WORD, " ")
        # Two spaces between words: in "a' 'b" one match per side, neither eats the other's space.
        texts = tf.strings.regex_replace(texts, " ", "  ")
        texts = tf.strings.regex_replace(" " + texts + " ", _EDGE_APOSTROPHES, " ")
    return texts


def tokenize(texts: Any, **cleaning: bool) -> tf.RaggedTensor:
    """Clean and split on whitespace: a ragged [batch, tokens] string tensor."""
    texts = tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1])
    return tf.strings.split(clean(texts, **cleaning))


def _shift_right(post_padded: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Move each row's tokens to the end of the row (pre-padding)."""
    width = tf.shape(post_padded, out_type=tf.int64)[1]
    source = tf.range(width)[tf.newaxis, :] - (width - lengths)[:, tf.newaxis]
    gathered = tf.gather(post_padded, tf.maximum(source, 0), batch_dims=1)
    return tf.where(source >= 0, gathered, tf.zeros_like(gathered))


def build_vocabulary(token_lists: Iterable[Iterable[bytes | str]], size: int) -> list[str]:
    """The ``size - RESERVED_IDS`` most frequent tokens, ties broken alphabetically."""
    counts: collections.Counter = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    words = [_as_str(token) for token, _ in ranked[: max(size - RESERVED_IDS, 0)]]
    return words


def _as_str(token: bytes | str) -> str:
    return token.decode("utf-8") if isinstance(token, bytes) else token


_ENCODER_ARGS = (
    "vocabulary",
    "max_length",
    "padding",
    "truncating",
    "lowercase",
    "strip_html",
    "strip_punctuation",
)


def save_encoder(encoder: TextEncoder, path: Path) -> None:
    """Write the encoder's constructor arguments (vocabulary included) as JSON."""
    config = encoder.get_config()
    write_json(path, {key: config[key] for key in _ENCODER_ARGS})


def load_encoder(path: Path) -> TextEncoder:
    """Rebuild the encoder saved by :func:`save_encoder`."""
    return TextEncoder(**json.loads(Path(path).read_text(encoding="utf-8")))
