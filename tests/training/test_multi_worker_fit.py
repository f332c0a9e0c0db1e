import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.contracts import InternalsChanged
from imdb_sentiment.training import multi_worker_fit

TRAIN = (np.array([[1, 2], [3, 0]]), np.array([1, 0]))


def tiny_model() -> keras.Model:
    ids = keras.Input((2,))
    return keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(ids))


def test_the_keras_internals_the_build_patch_relies_on_hold() -> None:
    # Fails on the day a Keras release changes them: then see work_around_keras_bugs.
    assert multi_worker_fit.contract_problems() == []


def test_the_patched_model_builds_from_a_local_batch_and_returns_logs_with_an_axis() -> None:
    trainer = tiny_model()
    trainer.compile("adam", "binary_crossentropy")
    multi_worker_fit.work_around_keras_bugs(trainer, tf.distribute.get_strategy(), TRAIN)
    assert "_maybe_symbolic_build" in vars(trainer)
    trainer._maybe_symbolic_build()
    assert trainer.optimizer.built
    logs = trainer.train_step((tf.constant(TRAIN[0], tf.float32), tf.constant([[1.0], [0.0]])))
    assert logs["loss"].shape == (1,)


def test_changed_build_internals_leave_keras_own_build_with_a_warning(monkeypatch) -> None:
    monkeypatch.setattr(multi_worker_fit, "BUILD_PARAMETERS", ["iterator"])
    trainer = tiny_model()
    trainer.compile("adam", "binary_crossentropy")
    with pytest.warns(InternalsChanged, match="Model._symbolic_build takes"):
        multi_worker_fit.work_around_keras_bugs(trainer, tf.distribute.get_strategy(), TRAIN)
    assert "_maybe_symbolic_build" not in vars(trainer)
    history = trainer.fit(TRAIN[0].astype("float32"), TRAIN[1], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
