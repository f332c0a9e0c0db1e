"""Adam and weight averaging that touch only the embedding rows a batch used.

Keras' Adam turns an embedding's sparse gradient dense, and its weight average (``use_ema``)
blends every variable at every step: for the 60,000 embedding rows of the two-view network,
fixed costs per step larger than one LSTM's. :class:`RowwiseAdam` updates a sparse
gradient's rows only ("lazy" Adam: a row's moments decay only at the steps that use it).

Its weight average of those rows is exact, not lazy: a row that no step changes keeps its
value ``w``, and ``k`` steps of ``a <- m a + (1 - m) w`` give ``a = w + m**k (a - w)``. So each
row remembers the step its average was last brought up to date, is caught up when a batch
uses it, and every row is caught up before the average is read (:class:`RowwiseEMASwap`).
The result is Keras' average of the same weights, to float rounding.

Both classes use private members of Keras' optimizer and ``SwapEMAWeights`` (listed in
:func:`contract_problems`; this module is the only one that touches them). Where a Keras
release changes them, :func:`adam_class` and :func:`ema_swap_callback` hand out Keras' own
``Adam`` and ``SwapEMAWeights`` instead, with a warning: the same training, slower (the
speed-up is measured in docs/benchmarks.md, "Training loop").
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.contracts import missing_members, signature_changed, warn_fallback

OPTIMIZER_MEMBERS = (
    "_momentums",
    "_velocities",
    "_get_variable_index",
    "_var_key",
    "_model_variables_moving_average",
    "_trainable_variables",
    "_update_model_variables_moving_average",
)
SWAP_MEMBERS = ("_swap_variables", "_ema_weights_in_model")
NEVER_CHANGED = -1.0  # a row's step mark until a batch uses it: its average is its value


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class RowwiseAdam(keras.optimizers.Adam):
    """Adam whose sparse gradients (``tf.IndexedSlices``) update only their rows' moments,
    values and (with ``use_ema``) averages; dense gradients take Keras' own update."""

    def build(self, variables: list) -> None:
        super().build(variables)
        self._lazy_averages: set[int] = set()  # keys of the variables with sparse gradients
        # The step after which each row's average is exact, for the variables that can have
        # sparse gradients: only tables (rank 2); None for the rest.
        self._average_steps = [
            self.add_variable(
                (variable.shape[0],),
                initializer=keras.initializers.Constant(NEVER_CHANGED),
                name=f"{variable.name}_average_step",
            )
            if self.use_ema and len(variable.shape) == 2
            else None
            for variable in variables
        ]

    def update_step(self, gradient, variable, learning_rate):  # noqa: ANN001, ANN201
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        rows, position = tf.unique(gradient.indices)  # a row used twice gets one summed update
        values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, variable.dtype), tf.cast(self.beta_2, variable.dtype)
        lr = tf.cast(learning_rate, variable.dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = tf.gather(m.value, rows) * beta_1 + values * (1 - beta_1)
        v_rows = tf.gather(v.value, rows) * beta_2 + tf.square(values) * (1 - beta_2)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        old_rows = tf.gather(_value(variable), rows)
        new_rows = old_rows - m_rows * alpha / (tf.sqrt(v_rows) + self.epsilon)
        self.assign(variable, tf.IndexedSlices(new_rows, rows))
        if self.use_ema and self._average_steps[index] is not None:
            self._average_rows(variable, rows, old_rows, new_rows)

    def _average_rows(self, variable, rows: tf.Tensor, old: tf.Tensor, new: tf.Tensor) -> None:  # noqa: ANN001
        """This step's average of the rows a batch changed from ``old`` to ``new``."""
        self._lazy_averages.add(self._var_key(variable))
        index = self._get_variable_index(variable)
        average, marks = self._model_variables_moving_average[index], self._average_steps[index]
        this_step = tf.cast(self.iterations, tf.float32)
        previous = (tf.gather(_value(average), rows), old, tf.gather(_value(marks), rows))
        caught_up = _caught_up(*previous, this_step - 1, self.ema_momentum)
        momentum = self._average_momentum()
        blended = momentum * caught_up + (1 - momentum) * new
        self.assign(average, tf.IndexedSlices(blended, rows))
        self.assign(marks, tf.IndexedSlices(tf.fill(tf.shape(rows), this_step), rows))

    def _update_model_variables_moving_average(self, trainable_variables: list) -> None:
        # Keras' blend of every variable, except those whose rows update_step averaged.
        for var, average in zip(
            trainable_variables, self._model_variables_moving_average, strict=True
        ):
            if average is None or self._var_key(var) in self._lazy_averages:
                continue
            momentum = self._average_momentum()
            average.assign(momentum * average + (1 - momentum) * var)

    def _average_momentum(self) -> tf.Tensor:
        # Keras' first step takes the value itself (momentum 0).
        return tf.cast(tf.cast(self.iterations, tf.float32) > 0, tf.float32) * self.ema_momentum

    def catch_up_averages(self) -> None:
        """Bring every row's average up to the last step taken: call before reading it."""
        if not self.use_ema or not getattr(self, "_lazy_averages", None):
            return
        last_step = tf.cast(self.iterations, tf.float32) - 1
        for index, variable in enumerate(self._trainable_variables):
            if self._var_key(variable) not in self._lazy_averages:
                continue
            average, marks = self._model_variables_moving_average[index], self._average_steps[index]
            value, mark = _value(variable), _value(marks)
            average_value = _caught_up(_value(average), value, mark, last_step, self.ema_momentum)
            _value(average).assign(average_value)
            mark.assign(tf.where(mark == NEVER_CHANGED, mark, last_step))


def _value(variable: object) -> tf.Variable:
    return variable.value if isinstance(variable, keras.Variable) else variable


def _caught_up(
    average: tf.Tensor, value: tf.Tensor, marks: tf.Tensor, step: tf.Tensor, momentum: float
) -> tf.Tensor:
    """Rows' averages at ``step``, from their averages at their marks, over steps that left
    their values at ``value``; a row never changed averages to its value."""
    behind = step - marks
    decayed = value + tf.pow(momentum, tf.maximum(behind, 0.0))[:, None] * (average - value)
    current = tf.where((behind > 0)[:, None], decayed, average)
    return tf.where((marks == NEVER_CHANGED)[:, None], value, current)


class RowwiseEMASwap(keras.callbacks.SwapEMAWeights):
    """SwapEMAWeights that first catches up :class:`RowwiseAdam`'s row averages, so the
    averaged weights it swaps into the model are the true averages."""

    def _swap_variables(self) -> None:
        if not self._ema_weights_in_model:
            optimizer = self.model.optimizer
            if isinstance(optimizer, RowwiseAdam):
                optimizer.catch_up_averages()
        super()._swap_variables()


def contract_problems() -> list[str]:
    """What of the Keras internals above this Keras lacks or has changed; empty when all hold."""
    adam = keras.optimizers.Adam(use_ema=True)
    adam.build([keras.Variable(np.zeros((2, 1), "float32"))])
    problems = missing_members(adam, OPTIMIZER_MEMBERS)
    averaging = getattr(adam, "_update_model_variables_moving_average", None)
    problems += signature_changed(averaging, ["trainable_variables"], "Adam averaging update")
    problems += missing_members(keras.callbacks.SwapEMAWeights(), SWAP_MEMBERS)
    return problems


def _rowwise_available() -> bool:
    problems = contract_problems()
    if problems:
        fallback = "Training uses keras.optimizers.Adam: the same model, slower per step."
        warn_fallback(f"RowwiseAdam (Keras {keras.__version__})", problems, fallback)
    return not problems


def adam_class(rowwise: bool) -> type[keras.optimizers.Adam]:
    """:class:`RowwiseAdam` when asked for and Keras' internals hold, else Keras' Adam."""
    return RowwiseAdam if rowwise and _rowwise_available() else keras.optimizers.Adam


def ema_swap_callback() -> keras.callbacks.SwapEMAWeights:
    """The averaged-weights swap for fit(): :class:`RowwiseEMASwap`, which serves both
    optimizers, or Keras' own where the members it uses changed (then :func:`adam_class` has
    warned and hands out Keras' Adam, whose averages need no catching up)."""
    if missing_members(keras.callbacks.SwapEMAWeights(), SWAP_MEMBERS):
        return keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    return RowwiseEMASwap(swap_on_epoch=True)
