"""A Keras LSTM layer that trains faster on a CPU: the input product out of the time loop, and
the loop itself, forward and backward, compiled by numba (docs/benchmarks.md has the figures).

Keras' CPU path runs an LSTM as a ``tf.while_loop`` over the cell: every step multiplies that
step's inputs by the kernel, and each step's dozen small ops pay TensorFlow's dispatch cost,
once forward and again in the automatic gradient (measured here: a hand-written TensorFlow loop
with the product hoisted out was no faster, so the cost is the ops, not the arithmetic).
:class:`HoistedLSTM` computes the same function with the same weights, save format and Keras
mask semantics, but

- multiplies the whole sequence by the kernel in one matrix product before the loop;
- runs the recurrence in one compiled call per batch (reviews in parallel), saving each step's
  gates and cell state, and the backward recurrence in another, which carries only the hidden
  and cell gradients; the weight gradients are again one matrix product each, after the loop.

Training only: where it cannot compute the layer exactly as Keras does (a GPU, where cuDNN is
faster; dropout inside the cell; other activations; ``go_backwards``, ``stateful`` or
``unroll``), and for inference (the serving kernel, :mod:`imdb_sentiment.lstm_kernel`, and
XLA-compiled prediction need no Python call inside the graph), it runs Keras' own loop.
Tests compare outputs and gradients with ``keras.layers.LSTM``.
"""

from __future__ import annotations

import keras
import numba
import numpy as np
import tensorflow as tf

from imdb_sentiment.numba_math import JIT, compiled, sigmoid, tanh


def runs_hoisted(layer: keras.layers.LSTM, training: bool) -> bool:
    """Whether ``layer`` trains on this module's loop (else on Keras')."""
    cell = layer.cell
    return bool(
        training
        and isinstance(layer, HoistedLSTM)
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.use_bias
        and not (cell.dropout or cell.recurrent_dropout)
        and not (layer.go_backwards or layer.stateful or layer.unroll)
        and not tf.config.list_logical_devices("GPU")
    )


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class HoistedLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` that trains on the loop described above; same weights, outputs."""

    def inner_loop(self, sequences, initial_state, mask, training=False):  # noqa: ANN001, ANN201
        if not runs_hoisted(self, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None:
            mask = tf.ones(tf.shape(sequences)[:2], tf.bool)
        cell = self.cell
        outputs, h, c = lstm_sequence(
            tf.transpose(sequences, [1, 0, 2]),
            tf.transpose(mask),
            *initial_state,
            cell.kernel.value,
            cell.recurrent_kernel.value,
            cell.bias.value,
        )
        return h, tf.transpose(outputs, [1, 0, 2]), [h, c]


@tf.custom_gradient
def lstm_sequence(inputs, mask, h0, c0, kernel, recurrent_kernel, bias):  # noqa: ANN001, ANN201
    """Time-major inputs [T, B, D] and mask [T, B] -> (outputs [T, B, H], last h, last c).

    A masked step keeps the previous state and outputs it again, as Keras does.
    """
    steps, width = tf.shape(inputs)[0], tf.shape(inputs)[2]
    units = tf.shape(recurrent_kernel)[0]
    projected = tf.matmul(tf.reshape(inputs, [-1, width]), kernel) + bias
    projected = tf.reshape(projected, [steps, -1, 4 * units])
    gates, cells, hidden = tf.numpy_function(
        _forward, [projected, mask, h0, c0, recurrent_kernel], [tf.float32] * 3, stateful=False
    )
    gates.set_shape(projected.shape)
    cells.set_shape(inputs.shape[:2] + recurrent_kernel.shape[:1])
    hidden.set_shape(cells.shape)

    def gradient(d_outputs, d_h_last, d_c_last):  # noqa: ANN001, ANN202
        d_outputs = tf.zeros_like(hidden) if d_outputs is None else d_outputs
        d_h_last = tf.zeros_like(h0) if d_h_last is None else d_h_last
        d_c_last = tf.zeros_like(c0) if d_c_last is None else d_c_last
        d_z, d_h0, d_c0 = tf.numpy_function(
            _backward,
            [d_outputs, d_h_last, d_c_last, gates, cells, mask, c0, recurrent_kernel],
            [tf.float32] * 3,
            stateful=False,
        )
        h_prev = tf.concat([h0[tf.newaxis], hidden[:-1]], 0)
        d_z = tf.reshape(d_z, [-1, 4 * units])
        d_inputs = tf.reshape(tf.matmul(d_z, kernel, transpose_b=True), tf.shape(inputs))
        d_kernel = tf.matmul(tf.reshape(inputs, [-1, width]), d_z, transpose_a=True)
        d_recurrent = tf.matmul(tf.reshape(h_prev, [-1, units]), d_z, transpose_a=True)
        d_h0.set_shape(h0.shape)
        d_c0.set_shape(c0.shape)
        return d_inputs, None, d_h0, d_c0, d_kernel, d_recurrent, tf.reduce_sum(d_z, 0)

    # Through the concat, a batch of zero steps returns the initial state.
    h = tf.concat([h0[tf.newaxis], hidden], 0)[-1]
    c = tf.concat([c0[tf.newaxis], cells], 0)[-1]
    return (hidden, h, c), gradient


@compiled(nogil=True, parallel=True, **JIT)
def _forward(projected, mask, h0, c0, recurrent):  # noqa: ANN001, ANN202
    """The recurrence, a review per thread: (activated gates i, f, g, o; cell states; outputs)."""
    steps, batch, units = projected.shape[0], projected.shape[1], recurrent.shape[0]
    transposed = np.ascontiguousarray(recurrent.T)
    gates = np.zeros(projected.shape, np.float32)
    cells = np.empty((steps, batch, units), np.float32)
    hidden = np.empty((steps, batch, units), np.float32)
    for b in numba.prange(batch):
        h, c = h0[b].copy(), c0[b].copy()
        z = np.empty(4 * units, np.float32)
        for t in range(steps):
            if mask[t, b]:
                for q in range(4 * units):  # a sum per gate, over the transposed kernel:
                    total = projected[t, b, q]  # it stays in a register
                    for k in range(units):
                        total += h[k] * transposed[q, k]
                    z[q] = total
                # Activations in a loop of their own, then the state update: faster here than
                # one fused loop over the units (16.6 against 19.9 ms a forward pass).
                for q in range(4 * units):
                    z[q] = tanh(z[q]) if units * 2 <= q < units * 3 else sigmoid(z[q])
                for q in range(units):
                    c[q] = z[units + q] * c[q] + z[q] * z[2 * units + q]
                for q in range(units):
                    h[q] = z[3 * units + q] * tanh(c[q])
                gates[t, b] = z
            cells[t, b] = c
            hidden[t, b] = h
    return gates, cells, hidden


@compiled(nogil=True, parallel=True, **JIT)
def _backward(d_outputs, d_h_last, d_c_last, gates, cells, mask, c0, recurrent):  # noqa: ANN001, ANN202
    """The backward recurrence: (gradient of the pre-activations, of h0, of c0)."""
    steps, batch, units = gates.shape[0], gates.shape[1], recurrent.shape[0]
    d_z = np.zeros(gates.shape, np.float32)
    d_h0 = np.empty((batch, units), np.float32)
    d_c0 = np.empty((batch, units), np.float32)
    for b in numba.prange(batch):
        d_h, d_c = d_h_last[b].copy(), d_c_last[b].copy()
        for t in range(steps - 1, -1, -1):
            d_h += d_outputs[t, b]
            if not mask[t, b]:
                continue  # a skipped step passes both gradients back unchanged
            c_prev = cells[t - 1, b] if t > 0 else c0[b]
            for q in range(units):
                i, f = gates[t, b, q], gates[t, b, units + q]
                g, o = gates[t, b, 2 * units + q], gates[t, b, 3 * units + q]
                tanh_c = tanh(cells[t, b, q])
                d_new_c = d_c[q] + d_h[q] * o * (1 - tanh_c * tanh_c)
                d_z[t, b, q] = d_new_c * g * i * (1 - i)
                d_z[t, b, units + q] = d_new_c * c_prev[q] * f * (1 - f)
                d_z[t, b, 2 * units + q] = d_new_c * i * (1 - g * g)
                d_z[t, b, 3 * units + q] = d_h[q] * tanh_c * o * (1 - o)
                d_c[q] = d_new_c * f
            for k in range(units):
                total = np.float32(0.0)
                for q in range(4 * units):
                    total += d_z[t, b, q] * recurrent[k, q]
                d_h[k] = total
        d_h0[b], d_c0[b] = d_h, d_c
    return d_z, d_h0, d_c0
