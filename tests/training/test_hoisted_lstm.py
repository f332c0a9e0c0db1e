import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.contracts import InternalsChanged
from imdb_sentiment.network import model_file
from imdb_sentiment.training import hoisted_lstm, model

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


VOCAB = 7


def embedded_twins() -> tuple[keras.Model, keras.Model]:
    """Embedding(mask_zero) -> LSTM models, Keras' and the hoisted, on the same weights."""
    keras_lstm, hoisted = twin_layers(return_sequences=True)
    twins = []
    for layer in (keras_lstm, hoisted):
        ids = keras.Input((None,), dtype="int32")
        embedding = keras.layers.Embedding(VOCAB, WIDTH, mask_zero=True)
        twins.append(keras.Model(ids, layer(embedding(ids))))
    rng = np.random.default_rng(2)
    twins[0].layers[1].set_weights([rng.normal(0, 1.5, (VOCAB, WIDTH)).astype("float32")])
    twins[1].layers[1].set_weights(twins[0].layers[1].get_weights())
    return twins[0], twins[1]


def embedded_gradients(classifier: keras.Model, ids: tf.Tensor) -> list:
    with tf.GradientTape() as tape:
        outputs = classifier(ids, training=True)
        weights = tf.random.stateless_normal(tf.shape(outputs), [1, 2])
        loss = tf.reduce_sum(outputs * weights)
    gradients = tape.gradient(loss, [w.value for w in classifier.weights])
    return [outputs, *(tf.convert_to_tensor(g) for g in gradients)]  # the table's: sparse


def test_an_embedded_sequence_is_projected_once_per_distinct_id(monkeypatch) -> None:
    ids = np.random.default_rng(3).integers(1, VOCAB, (BATCH, STEPS)).astype("int32")
    ids[0, :9] = 0  # pre-padded
    ids[1, 4:] = 0  # post-padded
    ids[4] = 0  # empty
    keras_twin, hoisted_twin = embedded_twins()
    expected = tf.function(embedded_gradients)(keras_twin, tf.constant(ids))
    projections = []
    real_project_rows = hoisted_lstm.project_rows
    monkeypatch.setattr(
        hoisted_lstm, "project_rows", lambda *a: projections.append(a) or real_project_rows(*a)
    )
    got = tf.function(embedded_gradients)(hoisted_twin, tf.constant(ids))
    assert len(projections) == 1  # traced once, on the rows path
    names = ["outputs", "table", "kernel", "recurrent", "bias"]
    for name, want, have in zip(names, expected, got, strict=True):
        assert np.allclose(have, want, atol=2e-5, rtol=1e-5), name


def test_only_a_traced_row_lookup_counts_as_an_embedding() -> None:
    table, ids = tf.ones([VOCAB, WIDTH]), tf.constant([[1, 2], [3, 0]])
    assert hoisted_lstm.embedding_lookup(tf.gather(table, ids)) is None  # eager

    @tf.function
    def found(sequences_of: object) -> bool:
        return hoisted_lstm.embedding_lookup(sequences_of(table, ids)) is not None

    assert found(tf.gather)
    assert not found(lambda t, i: tf.gather(t, i) * 2.0)
    assert not found(lambda t, i: tf.gather(tf.transpose(t), i, axis=1))


def test_rows_are_summed_as_tensorflow_sums_segments() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(50, 8)).astype("float32")
    position = rng.integers(0, 6, 50).astype("int32")
    want = tf.math.unsorted_segment_sum(values, position, 7)
    have = hoisted_lstm._sum_rows(values, position, np.array([7]))
    assert np.allclose(have, want, atol=1e-5)


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
    model_file.save_model(classifier, tmp_path / "hoisted.keras")
    loaded = model_file.load_model(tmp_path / "hoisted.keras")
    assert isinstance(loaded.layers[2], hoisted_lstm.HoistedLSTM)
    assert np.allclose(loaded(ids), classifier(ids), atol=1e-6)


def test_the_keras_internals_the_hoisted_loop_relies_on_hold() -> None:
    # Fails on the day a Keras or TensorFlow release changes them: then see lstm_class.
    assert hoisted_lstm.contract_problems() == []


def test_a_changed_inner_loop_falls_back_to_keras_lstm_with_a_warning(monkeypatch) -> None:
    monkeypatch.setattr(hoisted_lstm, "INNER_LOOP_PARAMETERS", ["self", "inputs"])
    with pytest.warns(InternalsChanged, match="LSTM.inner_loop takes"):
        assert hoisted_lstm.lstm_class("hoisted") is keras.layers.LSTM
    with pytest.warns(InternalsChanged):
        classifier = model.build_classifier(20, 4, 3, 1, False, 0.0, lstm_kernel="hoisted")
    assert not any(isinstance(layer, hoisted_lstm.HoistedLSTM) for layer in classifier.layers)


def test_an_unrecognised_embedding_lookup_warns_and_keeps_the_per_step_product(
    monkeypatch,
) -> None:
    monkeypatch.setattr(hoisted_lstm, "embedding_lookup", lambda sequences: None)
    with pytest.warns(InternalsChanged, match="no longer a GatherV2"):
        assert hoisted_lstm.lstm_class("hoisted") is hoisted_lstm.HoistedLSTM


def test_lstm_class_names_an_unknown_kernel() -> None:
    with pytest.raises(ValueError, match="'cudnn'"):
        hoisted_lstm.lstm_class("cudnn")
