"""The LSTM classifier, length-bucketed batches, and the raw-text model built around it."""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.hoisted_lstm import HoistedLSTM
from imdb_sentiment.malloc import reuse_large_buffers
from imdb_sentiment.ngrams import NAMES, WordNgrams
from imdb_sentiment.rowwise_adam import RowwiseAdam, RowwiseEMASwap
from imdb_sentiment.text import PAD_ID, TextEncoder


@keras.saving.register_keras_serializable(package="imdb_sentiment")
class MaskedPooling1D(keras.layers.Layer):
    """Max or mean over the real (unmasked) steps only; a review with no steps pools to 0.

    Keras' GlobalMaxPooling1D ignores the mask, so padding would take part in the max and a
    review would score differently padded or trimmed; its masked average divides by zero for
    a review with no tokens at all (e.g. only punctuation).
    """

    def __init__(self, mode: str = "max", **kwargs: object) -> None:
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if mask is None:
            mask = keras.ops.ones(keras.ops.shape(inputs)[:2], dtype="bool")
        keep = keras.ops.expand_dims(mask, -1)
        if self.mode == "max":
            pooled = keras.ops.max(keras.ops.where(keep, inputs, -1e9), axis=1)
        else:
            weights = keras.ops.cast(keep, inputs.dtype)
            count = keras.ops.sum(weights, axis=1)
            pooled = keras.ops.sum(inputs * weights, axis=1) / keras.ops.maximum(count, 1.0)
        return keras.ops.where(keras.ops.any(keep, axis=1), pooled, 0.0)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


POOLINGS = ("last", "max", "mean_max")
LSTM_KERNELS = {"keras": keras.layers.LSTM, "hoisted": HoistedLSTM}  # train.lstm_kernel


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
    (:class:`~imdb_sentiment.hoisted_lstm.HoistedLSTM`: the same function, faster to train on
    a CPU).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    # mask_zero lets the LSTM skip padding, so padding side does not change the result.
    hidden = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True)(ids)
    if embedding_dropout:
        hidden = keras.layers.SpatialDropout1D(embedding_dropout)(hidden)
    for layer_index in range(lstm_layers):
        sequences = pooling != "last" or layer_index < lstm_layers - 1
        recurrent = LSTM_KERNELS[lstm_kernel](lstm_units, return_sequences=sequences)
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
    (:mod:`imdb_sentiment.ngrams`; ``ngram_vocabularies`` maps n to the kept n-grams); the
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


def view_branches(classifier: keras.Model) -> list[tuple[WordNgrams | None, keras.Model]] | None:
    """[(None, words branch), (n-gram layer, its branch), ...] of a model made by
    :func:`build_multi_view`, or None for any other model."""
    layers = classifier.layers
    ngrams = [layer for layer in layers if isinstance(layer, WordNgrams)]
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    if not ngrams or len(nested) != len(ngrams) + 1 or len(layers) != 2 * len(nested) + 1:
        return None
    if not isinstance(layers[-1], keras.layers.Average):
        return None
    inputs = {_fed_by(branch): branch for branch in nested}
    views = [(None, inputs.get(layers[0]))] + [(layer, inputs.get(layer)) for layer in ngrams]
    if any(branch is None for _, branch in views) or len(inputs) != len(nested):
        return None
    if any(_fed_by(layer) is not layers[0] for layer in ngrams):
        return None
    return views


def _fed_by(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    """The layer whose output ``layer`` was called on, in its (only) functional call."""
    parents = layer._inbound_nodes[0].parent_nodes if len(layer._inbound_nodes) == 1 else []
    return parents[0].operation if len(parents) == 1 else None


def average_members(members: list[keras.Model]) -> keras.Model:
    """One id-sequence model whose output is the mean of the members' P(positive).

    Members trained from different seeds make different mistakes, so their average is more
    accurate than any one of them. A single member is returned as it is.
    """
    if len(members) == 1:
        return members[0]
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    mean = keras.layers.Average(name="positive")([member(ids) for member in members])
    return keras.Model(ids, mean, name="lstm_ensemble")


def ensemble_members(classifier: keras.Model) -> list[keras.Model] | None:
    """The members of a model made by :func:`average_members` ([classifier] for a single
    classifier, multi-view or not), or None if the model nests other models in some other way."""
    nested = [layer for layer in classifier.layers if isinstance(layer, keras.Model)]
    if not nested or view_branches(classifier) is not None:
        return [classifier]
    averaged = isinstance(classifier.layers[-1], keras.layers.Average)
    inputs = [layer for layer in classifier.layers if isinstance(layer, keras.layers.InputLayer)]
    if averaged and len(classifier.layers) == len(inputs) + len(nested) + 1:
        return nested
    return None


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
    "accuracy" is measured as :func:`agreement`. ``rowwise_embeddings``: :class:`RowwiseAdam`.
    ``decay_steps`` > 0: the rate falls linearly from ``learning_rate`` to 0 over that many
    steps (0: constant).
    """
    averaging = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    adam = RowwiseAdam if rowwise_embeddings else keras.optimizers.Adam
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
    return [RowwiseEMASwap(swap_on_epoch=True), early_stopping]


def build_end_to_end(encoder: TextEncoder, classifier: keras.Model) -> keras.Model:
    """A model that takes raw review strings, shape [batch, 1], and returns P(positive)."""
    # An uncompiled copy: the served file carries the weights, not the optimizer's state.
    weights_only = keras.models.clone_model(classifier)
    weights_only.set_weights(classifier.get_weights())
    texts = keras.Input(shape=(1,), dtype="string", name="review")
    return keras.Model(texts, weights_only(encoder(texts)), name="sentiment_end_to_end")


def trim_padding(x: np.ndarray) -> np.ndarray:
    """Drop columns that are padding in every row, whichever side the padding is on."""
    used = np.flatnonzero((x != PAD_ID).any(axis=0))
    if used.size == 0:
        return x[:, :1]
    return x[:, used[0] : used[-1] + 1]


class BucketedBatches:
    """Batches of similar-length reviews, trimmed to their longest member.

    An LSTM costs time per step, padded or not; grouping reviews by length cuts the steps.
    Reviews are shuffled, then sorted within windows of ``window_batches`` batches, so each
    epoch (each iteration) still sees a fresh order drawn from the seeded generator.
    With ``seed=None`` the order is fixed (for validation).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int | None,
        bucketed: bool = True,
        window_batches: int = 32,
    ) -> None:
        self.x, self.y = x, y.astype("float32").reshape(-1, 1)
        self.batch_size, self.bucketed, self.window = batch_size, bucketed, window_batches
        self.lengths = (x != PAD_ID).sum(axis=1)
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.shards, self.shard = 1, 0

    def sharded(self, shards: int, shard: int) -> BucketedBatches:
        """Keep rows ``shard``, ``shard + shards``, ... of every batch: one worker's share.
        Every worker plans the same epoch (same seed), so the workers' shares of a step
        make up the one batch a single process would take, and a step's gradient is that
        batch's; a last batch of fewer rows than workers is left out."""
        self.shards, self.shard = shards, shard
        return self

    def __len__(self) -> int:
        batches = math.ceil(len(self.x) / self.batch_size)
        last = len(self.x) - (batches - 1) * self.batch_size
        return batches - (0 < last < self.shards)

    def plan(self) -> list[np.ndarray]:
        """Row indices of each batch for one epoch."""
        order = np.arange(len(self.x)) if self.rng is None else self.rng.permutation(len(self.x))
        if self.bucketed:
            window = self.batch_size * self.window
            chunks = np.split(order, range(window, len(order), window))
            order = np.concatenate([c[np.argsort(self.lengths[c], kind="stable")] for c in chunks])
        batches = np.split(order, range(self.batch_size, len(order), self.batch_size))
        if self.rng is not None:
            self.rng.shuffle(batches)
        if self.shards > 1:
            batches = [
                rows[self.shard :: self.shards] for rows in batches if len(rows) >= self.shards
            ]
        return batches

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Here, not at import: TensorFlow resets glibc's thresholds when a generator dataset
        # first runs, which is before this generator's first batch.
        reuse_large_buffers()
        for rows in self.plan():
            x = self.x[rows]
            yield (trim_padding(x) if self.bucketed else x), self.y[rows]

    def as_dataset(self) -> tf.data.Dataset:
        """A tf.data pipeline over this object; each epoch re-iterates, so re-plans."""
        # Declared, not inferred: Keras would otherwise fix the length from the first batches.
        signature = (
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, 1], tf.float32),
        )
        dataset = tf.data.Dataset.from_generator(self.__iter__, output_signature=signature)
        cardinality = tf.data.experimental.assert_cardinality(len(self))
        options = tf.data.Options()
        # Under a multi-worker strategy each worker reads its own share (sharded()) already.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        # No autotuning: closing an iterator waited for its tuner's next wake-up (at 5.1,
        # 10.2, 20.5, 41 s ... after the iterator opened), costing up to half an epoch.
        options.autotune.enabled = False
        return dataset.apply(cardinality).prefetch(2).with_options(options)


def load_model(path: Path) -> keras.Model:
    """Load a saved model with Keras' safe mode (no arbitrary code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model not found; run `dvc repro` first")
    return keras.saving.load_model(path, safe_mode=True)


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def save_model(model: keras.Model, path: Path) -> None:
    """``model.save(path)``, with bytes that depend on the model alone.

    Keras stamps the archive with the save time (``date_saved`` in metadata.json, and each zip
    entry's time), so the same weights would give a new file, a new DVC cache entry and a new
    sha256 on every retrain. Here the stamp is the fixed zip epoch; the Keras version stays.
    """
    path = Path(path)
    model.save(path)
    with zipfile.ZipFile(path) as saved:
        entries = [(info, saved.read(info)) for info in saved.infolist()]
    scratch = path.with_name(f".{path.name}.normalising")
    with zipfile.ZipFile(scratch, "w") as normalised:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(metadata).encode()
            elif info.filename == "config.json":
                data = _renumber_shared_objects(data.decode()).encode()
            stamped = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            stamped.compress_type, stamped.external_attr = info.compress_type, info.external_attr
            normalised.writestr(stamped, data)
    os.replace(scratch, path)


_SHARED_OBJECT_ID = re.compile(r'"shared_object_id": (\d+)')


def _renumber_shared_objects(config: str) -> str:
    """Keras names objects shared between layers by their memory address; number them in
    order of appearance instead (the same objects keep the same number, so loading is alike)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        return f'"shared_object_id": {numbers.setdefault(match.group(1), len(numbers))}'

    return _SHARED_OBJECT_ID.sub(number, config)
