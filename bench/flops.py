"""Analytic floating-point operation counts of the classifier, for the compute-use figure.

Only matrix products are counted, at 2 FLOPs a multiply-add: each LSTM step's input and
recurrent projections for the four gates, and the Dense head. Gate nonlinearities, pooling and
embedding lookups are elementwise and left out (at 64 units they are a few percent of the
products). Training one review costs three forward passes' products: the forward pass, then
the backward products for the gradients of the inputs and of the weights, each as large.
"""

from __future__ import annotations

from typing import Protocol

GATES = 4  # input, forget, cell, output
TRAINING_PASSES = 3


class NetworkShape(Protocol):
    """What sets the classifier's size: the train params (stages/train.py Params) have it."""

    embedding_dim: int
    lstm_units: int
    lstm_layers: int
    bidirectional: bool
    pooling: str
    pair_vocab_size: int
    triple_vocab_size: int


def lstm_forward_flops(steps: float, input_dim: int, units: int) -> float:
    """One LSTM layer over ``steps`` time steps: [x, h] @ [W; U] for all gates, each step."""
    return 2.0 * steps * GATES * units * (input_dim + units)


def classifier_forward_flops(network: NetworkShape, steps: float) -> float:
    """One view's Embedding -> LSTM stack -> pooling -> Dense(1), for one review."""
    directions = 2 if network.bidirectional else 1
    flops, width = 0.0, network.embedding_dim
    for _ in range(network.lstm_layers):
        flops += directions * lstm_forward_flops(steps, width, network.lstm_units)
        width = directions * network.lstm_units
    pooled = 2 * width if network.pooling == "mean_max" else width
    return flops + 2.0 * pooled


def views(network: NetworkShape) -> int:
    """How many LSTM branches read a review: words, and pairs or triples when enabled."""
    return 1 + (network.pair_vocab_size > 0) + (network.triple_vocab_size > 0)


def training_flops_per_review(network: NetworkShape, steps: float) -> float:
    """Forward and backward products of every view for one review of ``steps`` tokens."""
    return TRAINING_PASSES * views(network) * classifier_forward_flops(network, steps)
