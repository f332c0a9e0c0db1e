"""A Keras LSTM layer that trains faster on a CPU: the input product out of the time loop, and
the loop itself, forward and backward, compiled by numba (docs/benchmarks.md has the figures).

Keras' CPU path runs an LSTM as a ``tf.while_loop`` over the cell: every step multiplies that
step's inputs by the kernel, and each step's dozen small ops pay TensorFlow's dispatch cost,
once forward and again in the automatic gradient (measured here: a hand-written TensorFlow loop
with the product hoisted out was no faster, so the cost is the ops, not the arithmetic).
:class:`HoistedLSTM` computes the same function with the same weights, save format and Keras
mask semantics, but

- multiplies the whole sequence by the kernel in one matrix product before the loop;
- runs the recurrence in one compiled call per batch (a thread per share of the reviews, each
  step one small matrix product), saving each step's gates and cell state, and the backward
  recurrence in another, which carries only the hidden and cell gradients; the weight
  gradients are again one matrix product each, after the loop.

Training only: where it cannot compute the layer exactly as Keras does (a GPU, where cuDNN is
faster; dropout inside the cell; other activations; ``go_backwards``, ``stateful`` or
``unroll``), and for inference (the serving kernel, :mod:`imdb_sentiment.scoring.lstm_kernel`, and
XLA-compiled prediction need no Python call inside the graph), it runs Keras' own loop.
Tests compare outputs and gradients with ``keras.layers.LSTM``.

Two undocumented parts of Keras and TensorFlow hold it up, both here and only here
(:func:`contract_problems`): it overrides ``LSTM.inner_loop``, and it recognises Keras'
embedding output as a ``GatherV2`` op of the table. Where the first changes,
:func:`lstm_class` hands out ``keras.layers.LSTM``; where the second does, the input product
runs over every step instead of every distinct word (the same numbers, slower). Either way a
warning says so.
"""

from __future__ import annotations

import keras
import numba
import numpy as np
import tensorflow as tf

from imdb_sentiment.contracts import signature_changed, warn_fallback
from imdb_sentiment.numba_math import JIT, sigmoid, tanh

INNER_LOOP_PARAMETERS = ["self", "sequences", "initial_state", "mask", "training"]


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
        cell = self.cell
        lookup = embedding_lookup(sequences)
        if lookup is None:
            projected = project_sequences(sequences, cell.kernel.value, cell.bias.value)
            batch_and_steps = tf.shape(sequences)[:2]
        else:
            projected = project_rows(*lookup, cell.kernel.value, cell.bias.value)
            batch_and_steps = tf.shape(lookup[1])
        if mask is None:
            mask = tf.ones(batch_and_steps, tf.bool)
        outputs, h, c = lstm_recurrence(
            projected, tf.transpose(mask), *initial_state, cell.recurrent_kernel.value
        )
        return h, tf.transpose(outputs, [1, 0, 2]), [h, c]


def embedding_lookup(sequences: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor] | None:
    """``(table, ids)`` when ``sequences`` is a row lookup traced in a graph (what Keras'
    ``Embedding`` computes: ``tf.gather(table, ids)``), else None (eager tensors, any other op)."""
    op = getattr(sequences, "op", None)
    if op is None or tf.executing_eagerly() or op.type != "GatherV2":
        return None
    table, ids, axis = op.inputs
    if table.shape.rank != 2 or tf.get_static_value(axis) != 0 or ids.shape.rank != 2:
        return None
    return table, ids


def project_sequences(sequences: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """Batch-major inputs [B, T, D] -> time-major gate pre-activations [T, B, 4H]."""
    inputs = tf.transpose(sequences, [1, 0, 2])
    steps, width = tf.shape(inputs)[0], tf.shape(inputs)[2]
    projected = tf.matmul(tf.reshape(inputs, [-1, width]), kernel) + bias
    return tf.reshape(projected, [steps, -1, tf.shape(kernel)[1]])


def project_rows(table: tf.Tensor, ids: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """:func:`project_sequences` of ``tf.gather(table, ids)``, computed once per distinct id.

    A batch of 64 reviews of ~200 steps uses a few thousand distinct words among its ~13,000
    positions, so the input product and both of its gradients shrink by that ratio, and the
    table's gradient arrives as one row per id used.
    """
    time_major = tf.transpose(ids)
    rows, position = tf.unique(tf.reshape(time_major, [-1]))
    row_gates = tf.matmul(tf.gather(table, rows), kernel) + bias
    projected = _spread_rows(row_gates, position)
    return tf.reshape(projected, tf.concat([tf.shape(time_major), tf.shape(kernel)[1:]], 0))


@tf.custom_gradient
def _spread_rows(row_values, position):  # noqa: ANN001, ANN202
    """``tf.gather(row_values, position)`` whose gradient is summed per row at once (TensorFlow's
    own would pass a sparse gradient the size of the output on to the product)."""

    def gradient(d_spread):  # noqa: ANN001, ANN202
        arguments = [d_spread, position, tf.shape(row_values)[:1]]
        d_rows = tf.numpy_function(_sum_rows, arguments, tf.float32, stateful=False)
        d_rows.set_shape(row_values.shape)
        return d_rows, None

    return tf.gather(row_values, position), gradient


@tf.custom_gradient
def lstm_recurrence(projected, mask, h0, c0, recurrent_kernel):  # noqa: ANN001, ANN201
    """Time-major gate pre-activations [T, B, 4H] (the input product and bias) and mask
    [T, B] -> (outputs [T, B, H], last h, last c).

    A masked step keeps the previous state and outputs it again, as Keras does.
    """
    units = tf.shape(recurrent_kernel)[0]
    gates, cells, hidden = tf.numpy_function(
        _forward, [projected, mask, h0, c0, recurrent_kernel], [tf.float32] * 3, stateful=False
    )
    gates.set_shape(projected.shape)
    cells.set_shape(projected.shape[:2] + recurrent_kernel.shape[:1])
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
        d_z.set_shape(projected.shape)
        h_prev = tf.concat([h0[tf.newaxis], hidden[:-1]], 0)
        d_recurrent = tf.matmul(
            tf.reshape(h_prev, [-1, units]), tf.reshape(d_z, [-1, 4 * units]), transpose_a=True
        )
        d_h0.set_shape(h0.shape)
        d_c0.set_shape(c0.shape)
        return d_z, None, d_h0, d_c0, d_recurrent

    # Through the concat, a batch of zero steps returns the initial state.
    h = tf.concat([h0[tf.newaxis], hidden], 0)[-1]
    c = tf.concat([c0[tf.newaxis], cells], 0)[-1]
    return (hidden, h, c), gradient


# Not cached on disk: numba cannot cache a function that calls BLAS (np.dot), so both loops
# compile at the first training step of each process (about 15 s here).
@numba.njit(nogil=True, parallel=True, **JIT)
def _forward(projected, mask, h0, c0, recurrent):  # noqa: ANN001, ANN202
    """The recurrence: (activated gates i, f, g, o; cell states; outputs).

    A thread per share of the batch, and per step one matrix product (BLAS) of its hidden
    states by the recurrent kernel: 1.8 times as fast here as a product per review (8.4 against
    15.3 ms a forward pass, batch 64, 230 steps, 64 units).
    """
    steps, batch, units = projected.shape[0], projected.shape[1], recurrent.shape[0]
    gates = np.empty(projected.shape, np.float32)
    cells = np.empty((steps, batch, units), np.float32)
    hidden = np.empty((steps, batch, units), np.float32)
    shares = min(numba.get_num_threads(), batch)
    for share in numba.prange(shares):
        first, end = share * batch // shares, (share + 1) * batch // shares
        h, c = h0[first:end].copy(), c0[first:end].copy()
        for t in range(steps):
            z = projected[t, first:end] + np.dot(h, recurrent)
            _step_forward(z, mask[t, first:end], c, h, units)
            gates[t, first:end] = z
            cells[t, first:end] = c
            hidden[t, first:end] = h
    return gates, cells, hidden


@numba.njit(nogil=True, inline="always", **JIT)
def _step_forward(z, mask_t, c, h, units):  # noqa: ANN001, ANN202
    """Pre-activations z -> gates (in place), and the states c and h of one step, per review;
    a masked review keeps its states (its gates are left at zero)."""
    for b in range(z.shape[0]):
        if not mask_t[b]:
            z[b] = 0.0
            continue
        for q in range(4 * units):
            z[b, q] = tanh(z[b, q]) if units * 2 <= q < units * 3 else sigmoid(z[b, q])
        for q in range(units):
            c[b, q] = z[b, units + q] * c[b, q] + z[b, q] * z[b, 2 * units + q]
        for q in range(units):
            h[b, q] = z[b, 3 * units + q] * tanh(c[b, q])


@numba.njit(nogil=True, parallel=True, **JIT)
def _backward(d_outputs, d_h_last, d_c_last, gates, cells, mask, c0, recurrent):  # noqa: ANN001, ANN202
    """The backward recurrence, shared out as :func:`_forward` is: (gradient of the
    pre-activations, of h0, of c0)."""
    steps, batch, units = gates.shape[0], gates.shape[1], recurrent.shape[0]
    d_z = np.empty(gates.shape, np.float32)
    d_h0 = np.empty((batch, units), np.float32)
    d_c0 = np.empty((batch, units), np.float32)
    transposed = np.ascontiguousarray(recurrent.T)
    shares = min(numba.get_num_threads(), batch)
    for share in numba.prange(shares):
        first, end = share * batch // shares, (share + 1) * batch // shares
        d_h, d_c = d_h_last[first:end].copy(), d_c_last[first:end].copy()
        d_z_t = np.empty((end - first, 4 * units), np.float32)
        passed = np.empty((end - first, units), np.float32)
        for t in range(steps - 1, -1, -1):
            d_h += d_outputs[t, first:end]
            c_prev = cells[t - 1, first:end] if t > 0 else c0[first:end]
            gates_t, cells_t, mask_t = gates[t, first:end], cells[t, first:end], mask[t, first:end]
            _step_backward(d_h, d_c, d_z_t, gates_t, cells_t, c_prev, mask_t, units)
            d_z[t, first:end] = d_z_t
            np.dot(d_z_t, transposed, passed)
            for b in range(end - first):
                if mask[t, first + b]:  # a skipped step passes d_h back unchanged
                    d_h[b] = passed[b]
        d_h0[first:end], d_c0[first:end] = d_h, d_c
    return d_z, d_h0, d_c0


@numba.njit(nogil=True, **JIT)
def _sum_rows(values, position, rows):  # noqa: ANN001, ANN202
    """``tf.math.unsorted_segment_sum(values, position, rows[0])``, at a quarter of its time
    here: TensorFlow's CPU kernel does not vectorise the rows it adds."""
    sums = np.zeros((rows[0], values.shape[1]), np.float32)
    for n in range(values.shape[0]):
        sums[position[n]] += values[n]
    return sums


@numba.njit(nogil=True, inline="always", **JIT)
def _step_backward(d_h, d_c, d_z, gates, cells, c_prev, mask_t, units):  # noqa: ANN001, ANN202
    """One step back: d_z (pre-activation gradients) from d_h and d_c, and d_c one step
    back, per review. A gate per loop, so that each loop vectorises (11.4 against 4.6 ms a
    backward pass with one loop for the four); a masked review passes d_c back unchanged."""
    for b in range(d_h.shape[0]):
        if not mask_t[b]:
            d_z[b] = 0.0
            continue
        for q in range(units):
            tanh_c = tanh(cells[b, q])
            o = gates[b, 3 * units + q]
            d_z[b, 3 * units + q] = d_h[b, q] * tanh_c * o * (1 - o)
            d_c[b, q] += d_h[b, q] * o * (1 - tanh_c * tanh_c)  # now the new cell's gradient
        for q in range(units):
            i = gates[b, q]
            d_z[b, q] = d_c[b, q] * gates[b, 2 * units + q] * i * (1 - i)
        for q in range(units):
            f = gates[b, units + q]
            d_z[b, units + q] = d_c[b, q] * c_prev[b, q] * f * (1 - f)
        for q in range(units):
            g = gates[b, 2 * units + q]
            d_z[b, 2 * units + q] = d_c[b, q] * gates[b, q] * (1 - g * g)
        for q in range(units):
            d_c[b, q] *= gates[b, units + q]


def contract_problems() -> list[str]:
    """What of the Keras and TensorFlow internals above has changed; empty when all hold."""
    return _loop_problems() + _lookup_problems()


def _loop_problems() -> list[str]:
    inner_loop = getattr(keras.layers.LSTM, "inner_loop", None)
    return signature_changed(inner_loop, INNER_LOOP_PARAMETERS, "LSTM.inner_loop")


def _lookup_problems() -> list[str]:
    # Zeros: a random initializer would draw from Keras' seeded generator, and every network
    # built after this check would start from other weights.
    embedding = keras.layers.Embedding(3, 2, embeddings_initializer="zeros", name="contract_check")
    embedding.build((None, None))
    recognised = []

    @tf.function
    def trace(ids: tf.Tensor) -> tf.Tensor:
        outputs = embedding(ids)
        recognised.append(embedding_lookup(outputs) is not None)
        return outputs

    trace.get_concrete_function(tf.TensorSpec([None, None], tf.int32))
    return [] if recognised[0] else ["Keras' Embedding output is no longer a GatherV2 op"]


def lstm_class(kind: str) -> type[keras.layers.LSTM]:
    """The layer for ``train.lstm_kernel``: "keras", or "hoisted" (:class:`HoistedLSTM`, or
    Keras' own LSTM, with a warning, where the loop's internals changed)."""
    if kind == "keras":
        return keras.layers.LSTM
    if kind != "hoisted":
        raise ValueError(f"lstm_kernel must be 'keras' or 'hoisted', got {kind!r}")
    loop, lookup = _loop_problems(), _lookup_problems()
    if loop:
        warn_fallback("HoistedLSTM", loop + lookup, "Training uses keras.layers.LSTM (slower).")
        return keras.layers.LSTM
    if lookup:
        fallback = "HoistedLSTM multiplies every step's input, not every distinct word's (slower)."
        warn_fallback("HoistedLSTM's row lookup", lookup, fallback)
    return HoistedLSTM
