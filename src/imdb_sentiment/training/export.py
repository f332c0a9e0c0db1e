"""The files a trained model is handed over as: two .keras models and a TensorFlow SavedModel.

``classifier.keras`` (token ids in) and ``end_to_end.keras`` (raw strings in), written by the
train stage, load with Keras once :mod:`imdb_sentiment.network.layers` is imported. The
evaluate stage writes ``exported/sentiment/1``, a SavedModel whose serving signature takes a
[None] batch of strings and returns P(positive) per string: any TensorFlow loads it with no
code of this package, so TensorFlow Serving, KServe and Triton serve it as it is. The folder
layout is TensorFlow Serving's: model name, then version.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.data.text import TextEncoder
from imdb_sentiment.network.model_file import network_description, save_model
from imdb_sentiment.training.model import build_end_to_end, portable_copy

CLASSIFIER_FILE = "classifier.keras"
END_TO_END_FILE = "end_to_end.keras"
SAVED_MODEL_VERSION = "1"  # TensorFlow Serving's <model name>/<version> layout
SIGNATURE_INPUT = "text"
SIGNATURE_OUTPUT = "probability_positive"


def write_models(classifier: keras.Model, encoder: TextEncoder, folder: Path) -> None:
    """Write both .keras forms of one trained classifier into ``folder``."""
    portable = portable_copy(classifier)
    architecture = network_description(portable)
    save_model(portable, folder / CLASSIFIER_FILE, architecture)
    save_model(build_end_to_end(encoder, portable), folder / END_TO_END_FILE, architecture)


def export_saved_model(end_to_end: keras.Model, folder: Path) -> None:
    """``end_to_end`` as a SavedModel with one signature, ``serving_default``:
    ``text`` (string, [None]) -> ``probability_positive`` (float32, [None]).

    Keras' own ``model.export`` would keep the model's input shape, [None, 1]; a flat batch of
    strings is what TensorFlow Serving's and KServe's clients send. The function is fixed by
    the model; the bytes are not: ExportArchive orders the checkpoint's variables as tracing
    met them, and Dropout's unused seed state is drawn anew, so each export differs in bytes.
    """
    archive = keras.export.ExportArchive()
    archive.track(end_to_end)

    def serve(texts: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = end_to_end(tf.reshape(texts, [-1, 1]), training=False)
        return {SIGNATURE_OUTPUT: tf.reshape(probabilities, [-1])}

    signature = [tf.TensorSpec([None], tf.string, name=SIGNATURE_INPUT)]
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(folder), verbose=False)


def saved_model_probabilities(folder: Path, texts: list[str]) -> np.ndarray:
    """P(positive) of ``texts`` from the SavedModel in ``folder``, loaded as any TensorFlow
    program would (no Keras model, no code of this package)."""
    serving = tf.saved_model.load(str(folder)).signatures["serving_default"]
    scores = serving(**{SIGNATURE_INPUT: tf.constant(texts, tf.string)})[SIGNATURE_OUTPUT]
    return scores.numpy()
