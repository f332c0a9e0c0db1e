import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.contracts import InternalsChanged
from imdb_sentiment.training import model, rowwise_adam
from imdb_sentiment.training.rowwise_adam import RowwiseAdam, RowwiseEMASwap


def two_steps_on_disjoint_rows(rowwise: bool) -> tuple[np.ndarray, np.ndarray]:
    """(embedding table after a step on ids 2-4 then a step on ids 5-7, the table before)."""
    keras.utils.set_random_seed(0)
    classifier = model.build_classifier(12, 4, 3, 1, False, 0.0, pooling="max")
    model.compile_classifier(classifier, 0.01, 1.0, rowwise_embeddings=rowwise)
    table = classifier.layers[1].embeddings
    before = table.numpy().copy()
    labels = np.array([[1.0], [0.0]], "float32")
    classifier.train_on_batch(np.array([[2, 3], [4, 2]], "int32"), labels)
    classifier.train_on_batch(np.array([[5, 6], [7, 7]], "int32"), labels)
    return table.numpy(), before


def test_rowwise_adam_updates_only_the_rows_a_batch_used() -> None:
    dense, before = two_steps_on_disjoint_rows(rowwise=False)
    rowwise, same_start = two_steps_on_disjoint_rows(rowwise=True)
    assert np.array_equal(before, same_start)
    untouched = [0, 1, 8, 9, 10, 11]
    assert np.array_equal(rowwise[untouched], before[untouched])
    assert np.array_equal(dense[untouched], before[untouched])
    # Rows 2-4 were used in step 1 only: Keras' Adam moves them again in step 2 (momentum).
    assert not np.allclose(dense[2:5], rowwise[2:5])
    # Rows 5 and 6, used once in step 2 only, see the same first update either way. (Row 7 is
    # used twice: Keras squares the two parts of its gradient before summing them.)
    assert np.allclose(dense[5:7], rowwise[5:7], atol=1e-6)


def test_rowwise_adam_sums_a_row_used_twice_and_leaves_dense_gradients_to_adam() -> None:
    variable = keras.Variable(np.ones((4, 2), "float32"))
    dense_variable = keras.Variable(np.ones((4, 2), "float32"))
    rowwise, adam = RowwiseAdam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    rows = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, -1.0]]), tf.constant([1, 1]), [4, 2])
    rowwise.apply([rows], [variable])
    adam.apply([tf.convert_to_tensor(rows)], [dense_variable])
    assert np.allclose(variable.numpy(), dense_variable.numpy())
    weights = keras.Variable(np.ones(3, "float32"))
    RowwiseAdam(learning_rate=0.1).apply([tf.constant([1.0, 0.0, -1.0])], [weights])
    assert np.allclose(weights.numpy(), [0.9, 1.0, 1.1], atol=1e-4)


class KerasAverages(RowwiseAdam):
    """RowwiseAdam with Keras' own weight average of every row at every step."""

    def _average_rows(self, variable, rows, old, new):  # noqa: ANN001, ANN202
        pass


def sparse_steps(
    optimizer: RowwiseAdam, batches: list[list[int]], in_graph: bool
) -> keras.Variable:
    """A 10x3 table updated by seeded sparse gradients on ``batches``' rows, plus one dense
    vector; returns the table. ``in_graph``: each step traced, as fit runs it."""
    rng = np.random.default_rng(0)
    table = keras.Variable(rng.normal(size=(10, 3)).astype("float32"))
    vector = keras.Variable(np.ones(3, "float32"))
    optimizer.build([table, vector])

    def step(gradients: list) -> None:
        optimizer.apply(gradients, [table, vector])

    step = tf.function(step) if in_graph else step
    for rows in batches:
        values = tf.constant(rng.normal(size=(len(rows), 3)).astype("float32"))
        gradient = tf.IndexedSlices(values, tf.constant(rows), tf.constant([10, 3]))
        step([gradient, tf.ones(3)])
    return table


# Row 9 is never used; rows 0-2 only at the start, then left behind for several steps.
BATCHES = [[0, 1, 2], [1, 1, 3], [4, 5], [5, 6], [4, 7, 8], [3, 3], [8]]


@pytest.mark.parametrize("in_graph", [False, True])
def test_row_averages_caught_up_equal_keras_average_of_every_row(in_graph):
    lazy = RowwiseAdam(learning_rate=0.1, use_ema=True, ema_momentum=0.8)
    keras_averages = KerasAverages(learning_rate=0.1, use_ema=True, ema_momentum=0.8)
    table = sparse_steps(lazy, BATCHES, in_graph)
    reference = sparse_steps(keras_averages, BATCHES, in_graph)
    assert np.allclose(table.numpy(), reference.numpy(), atol=1e-6)  # the same Adam
    lazy_average, keras_average = (
        opt._model_variables_moving_average[0] for opt in (lazy, keras_averages)
    )
    assert not np.allclose(lazy_average.numpy(), keras_average.numpy(), atol=1e-3)  # behind
    lazy.catch_up_averages()
    assert np.allclose(lazy_average.numpy(), keras_average.numpy(), atol=1e-6)
    assert np.array_equal(lazy_average.numpy()[9], table.numpy()[9])  # never changed
    dense_averages = [
        opt._model_variables_moving_average[1].numpy() for opt in (lazy, keras_averages)
    ]
    assert np.array_equal(*dense_averages)
    lazy.catch_up_averages()  # nothing new to catch up: no change
    assert np.allclose(lazy_average.numpy(), keras_average.numpy(), atol=1e-6)


def test_swap_callback_puts_the_caught_up_averages_in_the_model():
    rng = np.random.default_rng(0)
    x = rng.integers(2, 12, (64, 4)).astype(np.int32)
    y = (x[:, 0] > 6).astype("float32")
    weights = {}
    for name, optimizer in (("lazy", RowwiseAdam), ("keras", KerasAverages)):
        keras.utils.set_random_seed(0)
        classifier = model.build_classifier(12, 4, 3, 1, False, 0.0, pooling="max")
        classifier.compile(optimizer(0.05, use_ema=True, ema_momentum=0.9), "binary_crossentropy")
        classifier.fit(
            x,
            y,
            batch_size=8,
            epochs=2,
            verbose=0,
            shuffle=False,
            callbacks=[RowwiseEMASwap(swap_on_epoch=True)],
        )
        weights[name] = classifier.get_weights()
    for lazy, reference in zip(weights["lazy"], weights["keras"], strict=True):
        assert np.allclose(lazy, reference, atol=1e-5)


def test_the_keras_internals_rowwise_adam_relies_on_hold() -> None:
    # Fails on the day a Keras release changes them: then see adam_class.
    assert rowwise_adam.contract_problems() == []
    assert rowwise_adam.adam_class(True) is RowwiseAdam
    assert type(rowwise_adam.ema_swap_callback()) is RowwiseEMASwap


def test_changed_optimizer_internals_fall_back_to_keras_adam_with_a_warning(monkeypatch) -> None:
    monkeypatch.setattr(rowwise_adam, "OPTIMIZER_MEMBERS", ("_momentums", "_moments_by_row"))
    classifier = model.build_classifier(20, 4, 3, 1, False, 0.0)
    with pytest.warns(InternalsChanged, match="Adam._moments_by_row is gone"):
        model.compile_classifier(classifier, 0.01, 1.0, 0.9, rowwise_embeddings=True)
    assert type(classifier.optimizer) is keras.optimizers.Adam
    x, y = np.array([[0, 2, 3], [4, 5, 6]]), np.array([0.0, 1.0])
    history = classifier.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=model.training_callbacks(keras.callbacks.EarlyStopping("loss"), 0.9),
    )
    assert np.isfinite(history.history["loss"][0])


def test_a_changed_swap_callback_falls_back_to_keras_own(monkeypatch) -> None:
    monkeypatch.setattr(rowwise_adam, "SWAP_MEMBERS", ("_swap_variables", "_averages_swapped"))
    assert type(rowwise_adam.ema_swap_callback()) is keras.callbacks.SwapEMAWeights
