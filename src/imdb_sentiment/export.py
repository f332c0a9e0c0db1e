"""The files a training run hands over: two .keras models and a TensorFlow SavedModel.

``classifier.keras`` (token ids in) and ``end_to_end.keras`` (raw strings in) load with Keras
once this package's inference layers are imported. ``sentiment/1`` is a SavedModel whose
serving signature takes a [None] batch of strings and returns P(positive) per string: any
TensorFlow loads it with no code of this package, so TensorFlow Serving, KServe and Triton
serve it as it is. The folder layout is TensorFlow Serving's: model name, then version.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from imdb_sentiment.model import (
    build_end_to_end,
    network_description,
    portable_copy,
    save_model,
)
from imdb_sentiment.text import TextEncoder

CLASSIFIER_FILE = "classifier.keras"
END_TO_END_FILE = "end_to_end.keras"
SAVED_MODEL_DIR = Path("sentiment/1")  # TensorFlow Serving's <model name>/<version>
SIGNATURE_INPUT = "text"
SIGNATURE_OUTPUT = "probability_positive"


def write_models(classifier: keras.Model, encoder: TextEncoder, folder: Path) -> None:
    """Write the three forms of one trained classifier into ``folder``."""
    portable = portable_copy(classifier)
    architecture = network_description(portable)
    save_model(portable, folder / CLASSIFIER_FILE, architecture)
    end_to_end = build_end_to_end(encoder, portable)
    save_model(end_to_end, folder / END_TO_END_FILE, architecture)
    export_saved_model(end_to_end, folder / SAVED_MODEL_DIR)


def export_saved_model(end_to_end: keras.Model, folder: Path) -> None:
    """``end_to_end`` as a SavedModel with one signature, ``serving_default``:
    ``text`` (string, [None]) -> ``probability_positive`` (float32, [None]).

    Keras' own ``model.export`` would keep the model's input shape, [None, 1]; a flat batch of
    strings is what TensorFlow Serving's and KServe's clients send.
    """
    archive = keras.export.ExportArchive()
    archive.track(end_to_end)

    def serve(texts: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = end_to_end(tf.reshape(texts, [-1, 1]), training=False)
        return {SIGNATURE_OUTPUT: tf.reshape(probabilities, [-1])}

    signature = [tf.TensorSpec([None], tf.string, name=SIGNATURE_INPUT)]
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(folder), verbose=False)
