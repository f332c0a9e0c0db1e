import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment import hoisted_lstm, model

BATCH, STEPS, WIDTH, UNITS = 6, 13, 5, 4


def inputs_and_mask() -> tuple[tf.Tensor, tf.Tensor]:
    """Pre-padded, post-padded, full, gapped and empty rows."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0, 1.5, (BATCH, STEPS, WIDTH)).astype("float32"))
    mask = np.ones((BATCH, STEPS), bool)
    mask[0, :9] = False
    mask[1, 4:] = False
    mask[3, [2, 7, 8]] = False
    mask[4] = False
    return x, tf.constant(mask)


def twin_layers(**options: object) -> tuple[keras.layers.LSTM, hoisted_lstm.HoistedLSTM]:
    keras_lstm = keras.layers.LSTM(UNITS, **options)
    hoisted = hoisted_lstm.HoistedLSTM(UNITS, **options)
    for layer in (keras_lstm, hoisted):
        layer.build((BATCH, STEPS, WIDTH))
    rng = np.random.default_rng(1)  # large weights: every gate saturates somewhere
    hoisted.set_weights([rng.normal(0, 1.5, w.shape).astype("float32") for w in hoisted.weights])
    keras_lstm.set_weights(hoisted.get_weights())
    return keras_lstm, hoisted


def outputs_and_gradients(layer: keras.layers.LSTM, x: tf.Tensor, mask: tf.Tensor) -> list:
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, mask=mask, training=True)
        weights = tf.random.stateless_normal(tf.shape(outputs), [1, 2])
        loss = tf.reduce_sum(outputs * weights)  # every output gets its own gradient
    return [outputs, *tape.gradient(loss, [x, *(w.value for w in layer.weights)])]


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_outputs_and_gradients_match_keras_lstm(return_sequences: bool) -> None:
    keras_lstm, hoisted = twin_layers(return_sequences=return_sequences)
    assert hoisted_lstm.runs_hoisted(hoisted, training=True)
    x, mask = inputs_and_mask()
    expected = outputs_and_gradients(keras_lstm, x, mask)
    got = outputs_and_gradients(hoisted, x, mask)
    names = ["outputs", "inputs", "kernel", "recurrent", "bias"]
    for name, want, have in zip(names, expected, got, strict=True):
        assert np.allclose(have, want, atol=2e-5, rtol=1e-5), name


def test_compiled_training_step_matches_keras_lstm() -> None:
    keras_lstm, hoisted = twin_layers(return_sequences=True)
    x, mask = inputs_and_mask()
    expected = outputs_and_gradients(keras_lstm, x, mask)
    got = tf.function(outputs_and_gradients)(hoisted, x, mask)
    for want, have in zip(expected, got, strict=True):
        assert np.allclose(have, want, atol=2e-5, rtol=1e-5)


def test_without_a_mask_every_step_counts() -> None:
    keras_lstm, hoisted = twin_layers(return_sequences=True)
    x, _ = inputs_and_mask()
    want = keras_lstm(x, training=True)
    assert np.allclose(hoisted(x, training=True), want, atol=2e-5)


def test_inference_and_unsupported_options_take_keras_loop() -> None:
    _, hoisted = twin_layers()
    assert not hoisted_lstm.runs_hoisted(hoisted, training=False)
    for options in ({"dropout": 0.1}, {"go_backwards": True}, {"activation": "relu"}):
        assert not hoisted_lstm.runs_hoisted(hoisted_lstm.HoistedLSTM(UNITS, **options), True)
    assert not hoisted_lstm.runs_hoisted(keras.layers.LSTM(UNITS), training=True)


def test_a_classifier_with_the_layer_saves_and_loads_in_safe_mode(tmp_path) -> None:
    classifier = model.build_classifier(
        30, 8, UNITS, 1, False, 0.2, pooling="mean_max", lstm_kernel="hoisted"
    )
    ids = np.random.default_rng(2).integers(0, 30, (4, 9)).astype("int32")
    model.save_model(classifier, tmp_path / "hoisted.keras")
    loaded = model.load_model(tmp_path / "hoisted.keras")
    assert isinstance(loaded.layers[2], hoisted_lstm.HoistedLSTM)
    assert np.allclose(loaded(ids), classifier(ids), atol=1e-6)
