from __future__ import annotations

from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.profiler import model_analyzer, option_builder

from bench import flops


def shape(**changes: object) -> SimpleNamespace:
    network = dict(embedding_dim=128, lstm_units=64, lstm_layers=1, bidirectional=False)
    network.update(pooling="mean_max", pair_vocab_size=50000, triple_vocab_size=0)
    return SimpleNamespace(**{**network, **changes})


def test_a_tiny_network_matches_a_hand_count():
    tiny = shape(embedding_dim=2, lstm_units=1, pooling="last", pair_vocab_size=0)
    # 3 steps x 4 gates x 1 unit x (2 inputs + 1 state) = 36 multiply-adds; the head: 1
    assert flops.classifier_forward_flops(tiny, steps=3) == 2 * (36 + 1)
    assert flops.training_flops_per_review(tiny, steps=3) == 3 * 2 * (36 + 1)


def test_views_bidirectional_layers_and_pooling_scale_the_count():
    one = flops.classifier_forward_flops(shape(pair_vocab_size=0), 10)
    assert flops.training_flops_per_review(shape(), 10) == 2 * 3 * one
    assert flops.views(shape(triple_vocab_size=10)) == 3
    lstm = flops.lstm_forward_flops(10, 128, 64)
    assert flops.classifier_forward_flops(shape(bidirectional=True), 10) == 2 * lstm + 2 * 256
    second = flops.lstm_forward_flops(10, 64, 64)
    assert flops.classifier_forward_flops(shape(lstm_layers=2), 10) == lstm + second + 2 * 128


def test_the_default_two_view_network_costs_about_136_mflop_a_review_of_230_tokens():
    assert flops.training_flops_per_review(shape(), 230) == pytest.approx(135.7e6, rel=1e-3)


def test_tensorflows_profiler_counts_the_same_products_in_an_unrolled_keras_lstm():
    steps, width, units = 5, 3, 2
    inputs = keras.Input((steps, width), batch_size=1)
    model = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.LSTM(units, unroll=True)(inputs))
    )
    traced = tf.function(model).get_concrete_function(tf.TensorSpec([1, steps, width]))
    options = option_builder.ProfileOptionBuilder.float_operation()
    options.update(output="none", account_type_regexes=["MatMul"])
    graph = convert_variables_to_constants_v2(traced).graph
    profiled = model_analyzer.profile(graph, options=options).total_float_ops
    network = shape(embedding_dim=width, lstm_units=units, pooling="last", pair_vocab_size=0)
    assert profiled == flops.classifier_forward_flops(network, steps)
