"""A compiled CPU forward pass for the LSTM of a one-layer, one-direction LSTM classifier.

Keras runs an LSTM step as a small graph: two matrix products (input and recurrent) and a
dozen element-wise ops, each with its own dispatch, on every step of the padded batch. For
serving on a CPU that is mostly overhead. This kernel computes the LSTM's states with the
trained weights, three ways cheaper:

- the input product ``embedding @ W + b`` is precomputed once per token id (a table of
  ``vocab_size x 4*units``), so a step costs one table row plus the recurrent product;
- each review is run over its own tokens only: padding and masked (occluded) ids are
  skipped exactly as Keras' mask skips them, so no step is spent on padding;
- the loops are compiled by numba into vectorised machine code that releases the GIL.

Everything after the LSTM (pooling, the output layer) runs as the network's own Keras layers,
so pooling has one implementation. It agrees with Keras to float32 rounding (tests compare the
two on every pooling), and runs ensembles of such classifiers member by member. A network with
a linear branch (:mod:`imdb_sentiment.training.linear_branch`) runs its LSTM network here and
its linear branch and blend as its own Keras layers. Other
architectures (stacked or bidirectional layers) return ``None`` from
:func:`compile_lstm_scorer` and are scored by Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import keras
import numba
import numpy as np
import tensorflow as tf

from imdb_sentiment.data.ngrams import WordNgrams
from imdb_sentiment.data.text import PAD_ID
from imdb_sentiment.network.branches import BLEND_LAYER, has_linear_branch, linear_logit
from imdb_sentiment.network.layers import MaskedPooling1D
from imdb_sentiment.network.model_file import branch_pooling, network_description, resolve_views
from imdb_sentiment.numba_math import JIT, compiled, sigmoid, tanh

PARALLEL_MIN_ROWS = 64
CHUNK_ROWS = 1024  # rows per kernel call: bounds the memory of the hidden states to ~150 MB
# Ensemble members of a small batch run side by side: the kernel releases the GIL, and one
# member per core beat members in turn on the API (p50 ~30 -> ~21 ms, 510 -> 740 req/s).
_MEMBER_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lstm-member")


@numba.njit(inline="always", **JIT)
def _run_review(
    tokens: np.ndarray, gate_table: np.ndarray, recurrent: np.ndarray, states: np.ndarray
) -> None:
    """Run the LSTM over one review's tokens into ``states`` (steps x units), skipping PAD_ID
    steps as Keras' mask does: a skipped step repeats the state before it (zeros before the
    first token), so the last row is the final state whatever the padding."""
    units = recurrent.shape[0]
    gates = np.empty(4 * units, np.float32)
    h = np.zeros(units, np.float32)
    c = np.zeros(units, np.float32)
    for step, token in enumerate(tokens):
        if token != PAD_ID:
            gates[:] = gate_table[token]
            for j in range(units):
                hj = h[j]
                for q in range(4 * units):
                    gates[q] += hj * recurrent[j, q]
            # Keras' gate order in the kernels: input, forget, candidate, output.
            for q in range(units):
                candidate = tanh(gates[2 * units + q])
                c[q] = sigmoid(gates[units + q]) * c[q] + sigmoid(gates[q]) * candidate
                h[q] = sigmoid(gates[3 * units + q]) * tanh(c[q])
        states[step] = h


# One loop, written twice on purpose: numba keys its disk cache by function name and source
# line, not by the ``parallel`` flag, so one Python function jitted both ways would let one
# variant load the other's cached machine code.
@compiled(nogil=True, **JIT)
def _states_serial(ids: np.ndarray, gate_table: np.ndarray, recurrent: np.ndarray):
    states = np.empty((ids.shape[0], ids.shape[1], recurrent.shape[0]), np.float32)
    for row in range(ids.shape[0]):
        _run_review(ids[row], gate_table, recurrent, states[row])
    return states


@compiled(nogil=True, parallel=True, **JIT)
def _states_parallel(ids: np.ndarray, gate_table: np.ndarray, recurrent: np.ndarray):
    states = np.empty((ids.shape[0], ids.shape[1], recurrent.shape[0]), np.float32)
    for row in numba.prange(ids.shape[0]):
        _run_review(ids[row], gate_table, recurrent, states[row])
    return states


def lstm_weights(classifier: keras.Model) -> dict | None:
    """What the kernel needs from a network built by
    :func:`imdb_sentiment.training.model.build_classifier`: the LSTM's gate table and recurrent
    kernel, its pooling, and ``head`` (:func:`_head`: the network's own layers after the LSTM);
    None for architectures it does not run (stacked or bidirectional LSTMs, other layers)."""
    layers = [layer for layer in classifier.layers if layer.weights or _pools(layer)]
    lstms = [layer for layer in layers if isinstance(layer, keras.layers.LSTM)]
    if len(lstms) != 1 or not isinstance(layers[0], keras.layers.Embedding):
        return None
    lstm, dense = lstms[0], layers[-1]
    pools = [layer for layer in layers if _pools(layer)]
    config = lstm.get_config()
    if (
        layers != [layers[0], lstm, *pools, dense]
        or not isinstance(dense, keras.layers.Dense)
        or (config["activation"], config["recurrent_activation"]) != ("tanh", "sigmoid")
        or not config["use_bias"]
        or config["go_backwards"]
    ):
        return None
    pooling = branch_pooling(classifier)
    joins = [layer for layer in classifier.layers if isinstance(layer, keras.layers.Concatenate)]
    if pooling is None or len(joins) != (len(pools) > 1):
        return None
    embedding = layers[0].get_weights()[0]
    kernel, recurrent, bias = lstm.get_weights()
    return {
        "gate_table": np.ascontiguousarray(embedding @ kernel + bias, np.float32),
        "recurrent": np.ascontiguousarray(recurrent, np.float32),
        "pooling": pooling,
        "head": _head(pools, joins[0] if joins else None, dense, lstm.units),
    }


def _head(
    pools: list[MaskedPooling1D],
    join: keras.layers.Concatenate | None,
    dense: keras.layers.Dense,
    units: int,
) -> Callable:
    """The network's own layers after its LSTM (pooling, concatenation, the sigmoid Dense) as
    one traced function of the kernel's states and mask, so the kernel replaces only the
    embedding and the LSTM, and pooling and the output have one implementation.

    Dropout after the LSTM is the identity at inference and is left out."""
    signature = [
        tf.TensorSpec([None, None, units], tf.float32),
        tf.TensorSpec([None, None], tf.bool),
    ]

    @tf.function(input_signature=signature)
    def head(states: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        if not pools:  # "last": the final state, as an LSTM without return_sequences gives
            return tf.reshape(dense(states[:, -1]), [-1])
        pooled = [pool(states, mask=mask) for pool in pools]
        return tf.reshape(dense(join(pooled) if join else pooled[0]), [-1])

    return head


def _pools(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, MaskedPooling1D)


def compile_lstm_scorer(
    classifier: keras.Model, word_vocab_size: int | None = None, architecture: dict | None = None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """An ids -> P(positive) function running the kernel, or None if the model does not fit.

    An ensemble (a Keras ``Average`` of such networks) runs its members and averages
    their probabilities, as its Average layer does; a multi-view member
    (:func:`imdb_sentiment.training.model.build_multi_view`) runs its words and n-gram branches and
    averages those. Branches run side by side on small batches, in turn on large ones.

    The kernel indexes its tables without bounds checks, so every table is checked here to
    have a row for each id that can reach it (``word_vocab_size``: the encoder's ids 0 ..
    size-1; each n-gram layer's ids), and each call checks its word ids against the tables:
    a mismatched model raises :class:`KernelMismatch` instead of reading out of bounds.

    ``architecture``: the model's
    :func:`~imdb_sentiment.network.model_file.network_description`, as saved beside it; None
    describes the model now. A description that does not fit the model (a layer it names is
    missing, or of other sizes) leaves the model to Keras.
    """
    architecture = architecture or network_description(classifier) or {}
    try:
        lstm_network, blend = _lstm_network(classifier, architecture)
        members = [_kernel_branches(lstm_network, m) for m in architecture.get("members", [])]
    except (KeyError, TypeError, ValueError):
        return None
    if not members or any(branches is None for branches in members):
        return None
    word_rows = _check_table_rows(members, word_vocab_size)
    branches = [(_ids_of(ngrams), weights) for member in members for ngrams, weights, _ in member]
    member_of_branch = np.repeat(np.arange(len(members)), [len(member) for member in members])
    for _, weights in branches:  # compile (or load from cache) and trace now, not on a request
        for states in (_states_serial, _states_parallel):
            _branch_probability(states, np.ones((1, 1), np.int32), weights)

    def score(ids: np.ndarray) -> np.ndarray:
        # Row threads pay off on evaluation-sized batches; a serving-sized batch of one model
        # stays on one core, leaving the other to the event loop.
        small = len(ids) < PARALLEL_MIN_ROWS
        states = _states_serial if small else _states_parallel
        ids = np.ascontiguousarray(ids, np.int32)
        if ids.size and (ids.min() < 0 or ids.max() >= word_rows):
            bad = ids.max() if ids.max() >= word_rows else ids.min()
            raise KernelMismatch(f"token id {bad} is outside the {word_rows}-row word tables")

        def branch_probability(branch: tuple) -> np.ndarray:
            to_branch_ids, weights = branch
            branch_ids = ids if to_branch_ids is None else to_branch_ids(ids)
            return _branch_probability(states, branch_ids, weights)

        run_all = _MEMBER_THREADS.map if small and len(branches) > 1 else map
        probabilities = np.array(list(run_all(branch_probability, branches)))
        per_member = [probabilities[member_of_branch == m].mean(0) for m in range(len(members))]
        lstm = np.mean(per_member, axis=0).astype(np.float32)
        return lstm if blend is None else blend(ids, lstm).numpy()

    return score


def _lstm_network(
    classifier: keras.Model, architecture: dict
) -> tuple[keras.Model, Callable | None]:
    """The network the kernel runs the LSTMs of, and for a network with a linear branch
    (``architecture["blend"]``), its linear branch and blend as the network's own layers, in
    one function traced once: (word ids, the LSTM's P(positive)) -> P(positive), as tensors."""
    if not architecture.get("blend"):
        return classifier, None
    if not has_linear_branch(classifier):
        raise ValueError("the description names a blend the model does not have")
    linear, blend = linear_logit(classifier), classifier.get_layer(BLEND_LAYER)
    signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32)]

    @tf.function(input_signature=signature)
    def blended(ids: tf.Tensor, lstm: tf.Tensor) -> tf.Tensor:
        return tf.reshape(blend([lstm[:, None], linear(ids), ids]), [-1])

    blended(np.ones((1, 1), np.int32), np.full(1, 0.5, np.float32))  # traced now, not on a request
    return classifier.get_layer(architecture["blend"]), blended


class KernelMismatch(ValueError):
    """A model whose embedding tables do not cover the ids it is given."""


# (n-gram layer, None for words; kernel weights; ids needed: rows its table must have, or None)
KernelBranch = tuple[WordNgrams | None, dict, int | None]


def _kernel_branches(classifier: keras.Model, member: dict) -> list[KernelBranch] | None:
    """The LSTM branches of one described member, or None if the kernel cannot run them."""
    views = resolve_views(classifier, member)
    words_needed = {layer.word_vocab_size for layer, _ in views if layer is not None}
    branches: list[KernelBranch] = []
    for (ngrams, branch), described in zip(views, member["views"], strict=True):
        weights = lstm_weights(branch)
        if weights is None or not _matches(weights, described):
            return None
        if ngrams is None:  # the words branch reads the ids as they are
            branches.append((None, weights, max(words_needed, default=None)))
            continue
        branches.append((ngrams, weights, ngrams.vocab_size))
    return branches


def _ids_of(ngrams: WordNgrams | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """The branch's ids from word ids: the model's own n-gram layer, traced now (so not on a
    first request); None for the words branch."""
    if ngrams is None:
        return None
    to_ids = ngrams.traced()
    to_ids(np.ones((1, 1), np.int32))
    return to_ids


def _matches(weights: dict, described: dict) -> bool:
    """The weights read from a branch have the sizes and pooling its description gives."""
    rows, units = len(weights["gate_table"]), weights["recurrent"].shape[0]
    return (rows, units, weights["pooling"]) == (
        described["embedding_rows"],
        described["lstm_units"],
        described["pooling"],
    )


def _check_table_rows(members: list[list[KernelBranch]], word_vocab_size: int | None) -> int:
    """Raise :class:`KernelMismatch` for a table with fewer rows than ids that reach it;
    return the row count of the smallest word table (the bound for each call's ids)."""
    word_rows = []
    for number, member in enumerate(members, start=1):
        for ngrams, weights, needed in member:
            rows = len(weights["gate_table"])
            if ngrams is None:
                word_rows.append(rows)
                needed = max(needed or 0, word_vocab_size or 0) or None
            if needed is not None and rows < needed:
                table = "word" if ngrams is None else f"{ngrams.n}-gram"
                raise KernelMismatch(
                    f"member {number}'s {table} embedding has {rows} rows, but its ids run "
                    f"to {needed - 1}: the model does not match its vocabulary"
                )
    return min(word_rows)


def _branch_probability(states: Callable, ids: np.ndarray, weights: dict) -> np.ndarray:
    """P(positive) from one branch: the kernel's states, then the network's own head, in
    chunks of :data:`CHUNK_ROWS` rows."""
    probabilities = []
    for start in range(0, len(ids), CHUNK_ROWS):
        chunk = ids[start : start + CHUNK_ROWS]
        hidden = states(chunk, weights["gate_table"], weights["recurrent"])
        probabilities.append(weights["head"](hidden, chunk != PAD_ID).numpy())
    return np.concatenate(probabilities) if probabilities else np.empty(0, np.float32)
