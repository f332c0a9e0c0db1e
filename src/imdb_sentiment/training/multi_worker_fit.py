"""Keras 3's ``fit`` under MultiWorkerMirroredStrategy, patched for two of its bugs
(tensorflow/tensorflow issue 72388) on one model at a time.

The build half of the patch replaces Keras' private ``_maybe_symbolic_build`` with a call
of its private ``_symbolic_build``; this module is the only one that touches them
(:func:`contract_problems`). Where a Keras release changes them, the model trains on Keras'
own build, with a warning: a release that changes them may also have fixed the bug.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.contracts import signature_changed, warn_fallback

BUILD_PARAMETERS = ["iterator", "data_batch"]


def contract_problems() -> list[str]:
    """What of Keras' private build members has changed; empty when all hold."""
    problems = []
    for name in ("_maybe_symbolic_build", "_symbolic_build"):
        member = getattr(keras.Model, name, None)
        bound = None if member is None else member.__get__(keras.Model)
        problems += signature_changed(bound, BUILD_PARAMETERS, f"Model.{name}")
    return problems


def work_around_keras_bugs(
    trainer: keras.Model, strategy: tf.distribute.Strategy, train: tuple[np.ndarray, ...]
) -> None:
    """Patch ``trainer`` for:

    - fit learns the input shapes by averaging the first batch over the workers, which fails
      (a PerReplica of ids is not a tensor): every batch has the same dtypes and ranks, so a
      local one builds the model, its loss and metrics instead;
    - each step's logs are averaged over the workers along axis 0, which a scalar lacks:
      the steps return them with one axis (their values are already the same on every
      worker, so the average is the value).
    """
    x, y = train[0][:1], train[1][:1].astype("float32").reshape(-1, 1)

    def build(iterator: object = None, data_batch: object = None) -> None:
        with strategy.scope():
            trainer._symbolic_build(data_batch=(x, y))

    def with_an_axis(step: Callable) -> Callable:
        return lambda data: {name: tf.reshape(v, [1]) for name, v in step(data).items()}

    if problems := contract_problems():
        fallback = "fit builds the model its own way, which Keras 3.15 could not do here."
        warn_fallback(
            f"The multi-worker build patch (Keras {keras.__version__})", problems, fallback
        )
    else:
        trainer._maybe_symbolic_build = build
    trainer.train_step = with_an_axis(trainer.train_step)
    trainer.test_step = with_an_axis(trainer.test_step)
