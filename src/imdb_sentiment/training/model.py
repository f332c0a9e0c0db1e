"""The LSTM classifier: building it (one view, or words and n-grams side by side), compiling
it for training, and the portable copy with the raw-text encoder in front that is saved."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.data.ngrams import NAMES, WordNgrams
from imdb_sentiment.data.text import TextEncoder
from imdb_sentiment.network.layers import MaskedPooling1D
from imdb_sentiment.network.model_file import POOLINGS
from imdb_sentiment.training import rowwise_adam
from imdb_sentiment.training.hoisted_lstm import HoistedLSTM, lstm_class


def build_classifier(
    vocab_size: int,
    embedding_dim: int,
    lstm_units: int,
    lstm_layers: int,
    bidirectional: bool,
    dropout: float,
    pooling: str = "last",
    embedding_dropout: float = 0.0,
    name: str = "lstm_classifier",
    lstm_kernel: str = "keras",
) -> keras.Model:
    """Embedding -> LSTM stack -> pooling over time -> Dense(sigmoid), for id sequences.

    ``pooling``: "last" uses the final LSTM state; "max" and "mean_max" pool the outputs of
    every (unpadded) step, so evidence early in a long review is not forgotten.
    ``lstm_kernel``: "keras" (Keras' LSTM layer) or "hoisted"
    (:class:`~imdb_sentiment.training.hoisted_lstm.HoistedLSTM`: the same function, faster to
    train on a CPU).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    lstm = lstm_class(lstm_kernel)
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    # mask_zero lets the LSTM skip padding, so padding side does not change the result.
    hidden = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True)(ids)
    if embedding_dropout:
        hidden = keras.layers.SpatialDropout1D(embedding_dropout)(hidden)
    for layer_index in range(lstm_layers):
        sequences = pooling != "last" or layer_index < lstm_layers - 1
        recurrent = lstm(lstm_units, return_sequences=sequences)
        hidden = (keras.layers.Bidirectional(recurrent) if bidirectional else recurrent)(hidden)
        if dropout:
            hidden = keras.layers.Dropout(dropout)(hidden)
    if pooling == "max":
        hidden = MaskedPooling1D("max")(hidden)
    elif pooling == "mean_max":
        hidden = keras.layers.Concatenate()(
            [MaskedPooling1D("max")(hidden), MaskedPooling1D("mean")(hidden)]
        )
    probability = keras.layers.Dense(1, activation="sigmoid", name="positive")(hidden)
    return keras.Model(ids, probability, name=name)


def build_multi_view(
    vocab_size: int,
    ngram_vocabularies: dict[int, np.ndarray],
    name: str = "lstm_classifier",
    **branch: object,
) -> tuple[keras.Model, keras.Model]:
    """Several classifiers in one network: one reads the words, one each the word n-grams
    (:mod:`imdb_sentiment.data.ngrams`; ``ngram_vocabularies`` maps n to the kept n-grams); the
    output is the average of their P(positive).

    ``branch``: :func:`build_classifier`'s arguments, for every branch. Returns
    ``(model, trainer)``, sharing their layers: the model maps ids to the average; the trainer
    outputs ``[average, words, n-grams...]`` for :func:`compile_classifier`, which sums the
    losses so that each branch learns to classify on its own, not only to patch the others'
    mistakes.
    """
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    heads = [build_classifier(vocab_size, **branch, name="words")(ids)]
    for n, vocabulary in sorted(ngram_vocabularies.items()):
        view = NAMES.get(n, f"{n}_grams")
        ngrams = WordNgrams(vocabulary, vocab_size, n, name=f"word_{view}")
        heads.append(build_classifier(ngrams.vocab_size, **branch, name=view)(ngrams(ids)))
    average = keras.layers.Average(name="positive")(heads)
    trainer_output = keras.layers.Concatenate(name="heads")([average, *heads])
    return keras.Model(ids, average, name=name), keras.Model(ids, trainer_output, name=name)


@keras.saving.register_keras_serializable(package="imdb_sentiment")
def agreement(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Per review: 1 where target and prediction fall on the same side of 0.5.

    Keras' binary accuracy for 0/1 labels; for a teacher's probabilities (distillation),
    agreement with the teacher, where Keras would compare 0/1 predictions with fractions.
    """
    same_side = keras.ops.equal(y_true > 0.5, y_pred > 0.5)
    return keras.ops.cast(same_side, "float32")


def compile_classifier(
    model: keras.Model,
    learning_rate: float,
    clipnorm: float,
    ema_momentum: float = 0.0,
    soft_targets: bool = False,
    rowwise_embeddings: bool = False,
    decay_steps: int = 0,
) -> None:
    """Adam with gradient-norm clipping, binary cross-entropy, accuracy.

    A model with several output columns (the trainer of :func:`build_multi_view`) is trained
    on the sum of every column's cross-entropy, and its accuracy is that of column 0.

    ``ema_momentum`` > 0 keeps an exponential moving average of the weights (Polyak
    averaging); pair it with :func:`training_callbacks` so validation and the saved model
    use the averaged weights. ``soft_targets``: the training targets are probabilities, so
    "accuracy" is measured as :func:`agreement`. ``rowwise_embeddings``:
    :class:`~imdb_sentiment.training.rowwise_adam.RowwiseAdam` (where Keras' internals allow).
    ``decay_steps`` > 0: the rate falls linearly from ``learning_rate`` to 0 over that many
    steps (0: constant).
    """
    averaging = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    adam = rowwise_adam.adam_class(rowwise_embeddings)
    rate = learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.PolynomialDecay(learning_rate, decay_steps, 0.0)
    optimizer = adam(learning_rate=rate, clipnorm=clipnorm, **averaging)
    if model.outputs[0].shape[-1] > 1:
        loss, same_side = summed_column_loss, first_column_agreement
    else:
        loss, same_side = "binary_crossentropy", agreement if soft_targets else None
    accuracy = "accuracy"  # Keras' own, for 0/1 labels and one output
    if same_side is not None:
        accuracy = keras.metrics.MeanMetricWrapper(same_side, name="accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])


def summed_column_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy of each output column against the same targets, summed."""
    columns = range(y_pred.shape[-1])
    y_true = keras.ops.reshape(y_true, (-1, 1))
    return sum(keras.losses.binary_crossentropy(y_true, y_pred[:, i : i + 1]) for i in columns)


def first_column_agreement(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """:func:`agreement` of the first output column (the averaged output) only."""
    return agreement(y_true, y_pred[:, :1])


def training_callbacks(
    early_stopping: keras.callbacks.EarlyStopping, ema_momentum: float = 0.0
) -> list[keras.callbacks.Callback]:
    """Callbacks for fit(): with weight averaging, swap the averages in before early stopping.

    SwapEMAWeights puts the averaged weights in the model for validation and at each epoch's
    end; listed first, it does so before EarlyStopping copies the best epoch's weights, so
    the averaged weights are the ones judged, restored and saved.
    """
    if not ema_momentum:
        return [early_stopping]
    return [rowwise_adam.ema_swap_callback(), early_stopping]


def build_end_to_end(encoder: TextEncoder, classifier: keras.Model) -> keras.Model:
    """A model that takes raw review strings, shape [batch, 1], and returns P(positive)."""
    texts = keras.Input(shape=(1,), dtype="string", name="review")
    served = portable_copy(classifier)
    return keras.Model(texts, served(encoder(texts)), name="sentiment_end_to_end")


def portable_copy(classifier: keras.Model) -> keras.Model:
    """An uncompiled copy with the same weights in which every training-only layer is the
    Keras layer it stands in for (:class:`HoistedLSTM` -> ``keras.layers.LSTM``), so a saved
    file names no training code and carries no optimizer state."""

    def standard(layer: keras.layers.Layer) -> keras.layers.Layer:
        kind = keras.layers.LSTM if isinstance(layer, HoistedLSTM) else type(layer)
        return kind.from_config(layer.get_config())

    copy = keras.models.clone_model(classifier, clone_function=standard, recursive=True)
    copy.set_weights(classifier.get_weights())
    if copy.compiled:  # clone_model compiles the clone of a compiled model (a one-view trainer)
        copy = keras.Model(copy.inputs, copy.outputs, name=copy.name)
    return copy
