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

from imdb_sentiment import dataset, rowwise_adam
from imdb_sentiment.hoisted_lstm import HoistedLSTM, lstm_class
from imdb_sentiment.layers import MaskedPooling1D
from imdb_sentiment.malloc import reuse_large_buffers
from imdb_sentiment.ngrams import NAMES, WordNgrams
from imdb_sentiment.text import TextEncoder

POOLINGS = ("last", "max", "mean_max")


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


ARCHITECTURE_ENTRY = "architecture.json"  # the description, saved inside the .keras zip
Views = list[tuple[WordNgrams | None, keras.Model]]


def network_description(classifier: keras.Model) -> dict | None:
    """The classifier's shape as plain data: its members (itself, or each network of a Keras
    ``Average`` of networks), each member's views (:func:`build_multi_view`: words, then one
    branch per n-gram layer) by layer name, and each view's sizes and pooling; None for any
    other nesting.

    Read from ``get_config()``, the public form in which Keras saves a functional model, not
    from Keras' private graph. :func:`save_model` stores it beside the weights, and the
    serving kernel runs a loaded model from the stored copy.
    """
    members = _member_names(classifier)
    if members is None:
        return None
    described = []
    for name in members:
        member = classifier if name is None else classifier.get_layer(name)
        views = _view_names(member)
        if views is None:
            return None
        described.append({"member": name, "views": [_describe_view(member, *v) for v in views]})
    return {"members": described}


def resolve_views(classifier: keras.Model, member: dict) -> Views:
    """One described member's views as layers: [(None, words branch), (n-gram layer, its
    branch), ...]; a single classifier is its own words branch. KeyError/ValueError if the
    description names a layer the model lacks, or one of another kind."""
    model = classifier if member["member"] is None else classifier.get_layer(member["member"])
    views = []
    for view in member["views"]:
        branch = model if view["branch"] is None else model.get_layer(view["branch"])
        ngrams = None if view["ngrams"] is None else model.get_layer(view["ngrams"])
        if not isinstance(branch, keras.Model) or not isinstance(ngrams, WordNgrams | None):
            raise ValueError(f"the description's view {view} does not match the model")
        views.append((ngrams, branch))
    return views


def branch_pooling(branch: keras.Model) -> str | None:
    """The pooling of a :func:`build_classifier` network (one of :data:`POOLINGS`),
    or None if its layers pool some other way."""
    modes = tuple(layer.mode for layer in branch.layers if isinstance(layer, MaskedPooling1D))
    lstms = [layer for layer in branch.layers if isinstance(layer, keras.layers.RNN)]
    if not lstms or not lstms[-1].return_sequences:
        return "last" if not modes else None
    return {("max",): "max", ("max", "mean"): "mean_max"}.get(modes)


def _describe_view(member: keras.Model, branch_name: str | None, ngrams_name: str | None) -> dict:
    branch = member if branch_name is None else member.get_layer(branch_name)
    ngrams = None if ngrams_name is None else member.get_layer(ngrams_name)
    embeddings = [layer for layer in branch.layers if isinstance(layer, keras.layers.Embedding)]
    lstms = [layer for layer in branch.layers if isinstance(layer, keras.layers.LSTM)]
    return {
        "branch": branch_name,
        "ngrams": ngrams_name,
        "n": ngrams.n if ngrams else 1,
        "embedding_rows": embeddings[0].input_dim if embeddings else None,
        "lstm_units": lstms[0].units if lstms else None,
        "lstm_layers": len(lstms),
        "pooling": branch_pooling(branch),
    }


def _member_names(classifier: keras.Model) -> list[str | None] | None:
    """[None] for a single classifier, the member names of an average, else None."""
    layers = classifier.layers
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    if not nested or _view_names(classifier) is not None:
        return [None]
    fed_by = _fed_by(classifier)
    inputs = [layer for layer in layers if isinstance(layer, keras.layers.InputLayer)]
    averaged = isinstance(layers[-1], keras.layers.Average)
    if not averaged or len(layers) != len(inputs) + len(nested) + 1 or len(inputs) != 1:
        return None
    if any(fed_by.get(layer.name) != inputs[0].name for layer in nested):
        return None
    return [layer.name for layer in nested]


def _view_names(member: keras.Model) -> list[tuple[str | None, str | None]] | None:
    """[(branch, n-gram layer)] by name: [(None, None)] for a classifier with no nested
    model; the words branch then one per n-gram layer for :func:`build_multi_view`'s model;
    None otherwise."""
    layers = member.layers
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    if not nested:
        return [(None, None)]
    ngrams = [layer for layer in layers if isinstance(layer, WordNgrams)]
    if not ngrams or len(nested) != len(ngrams) + 1 or len(layers) != 2 * len(nested) + 1:
        return None
    if not isinstance(layers[-1], keras.layers.Average):
        return None
    fed_by = _fed_by(member)
    source = layers[0].name
    branch_of = {fed_by.get(branch.name): branch.name for branch in nested}
    names = [(branch_of.get(source), None)] + [(branch_of.get(g.name), g.name) for g in ngrams]
    if any(branch is None for branch, _ in names) or len(branch_of) != len(nested):
        return None
    if any(fed_by.get(layer.name) != source for layer in ngrams):
        return None
    return names


def _fed_by(model: keras.Model) -> dict[str, str | None]:
    """Each layer's name -> the name of the one layer whose output it was called on (None
    for several or none), read from the functional config's ``inbound_nodes``."""
    sources = {}
    for layer in model.get_config().get("layers", []):
        nodes = layer.get("inbound_nodes") or []
        parents = _history_names(nodes[0]) if len(nodes) == 1 else []
        sources[layer["name"]] = parents[0] if len(parents) == 1 else None
    return sources


def _history_names(node: object) -> list[str]:
    """The layer names in every ``keras_history`` of one serialised call."""
    if isinstance(node, dict):
        if "keras_history" in node:
            return [node["keras_history"][0]]
        return [name for value in node.values() for name in _history_names(value)]
    if isinstance(node, list | tuple):
        return [name for value in node for name in _history_names(value)]
    return []


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
    :class:`~imdb_sentiment.rowwise_adam.RowwiseAdam` (where Keras' internals allow).
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
    return copy


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
        self.lengths = dataset.token_counts(x)
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
            order = np.concatenate([dataset.shortest_first(self.lengths, c) for c in chunks])
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
            yield (dataset.trim_padding(x) if self.bucketed else x), self.y[rows]

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


def save_model(model: keras.Model, path: Path, architecture: dict | None = None) -> None:
    """``model.save(path)``, with bytes that depend on the model alone, and ``architecture``
    (:func:`network_description` of its classifier) stored in the same zip.

    Keras stamps the archive with the save time (``date_saved`` in metadata.json, and each zip
    entry's time), so the same weights would give a new file, a new DVC cache entry and a new
    sha256 on every retrain. Here the stamp is the fixed zip epoch; the Keras version stays.
    Keras' loader reads only its own entries, so the description travels with the file.
    """
    path = Path(path)
    model.save(path)
    with zipfile.ZipFile(path) as saved:
        entries = [(info.filename, info, saved.read(info)) for info in saved.infolist()]
    if architecture is not None:
        description = json.dumps(architecture, indent=1, sort_keys=True).encode()
        entries.append((ARCHITECTURE_ENTRY, entries[0][1], description))
    scratch = path.with_name(f".{path.name}.normalising")
    with zipfile.ZipFile(scratch, "w") as normalised:
        for name, info, data in entries:
            if name == "metadata.json":
                metadata = json.loads(data)
                metadata["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(metadata).encode()
            elif name == "config.json":
                data = _renumber_shared_objects(data.decode()).encode()
            stamped = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            stamped.compress_type, stamped.external_attr = info.compress_type, info.external_attr
            normalised.writestr(stamped, data)
    os.replace(scratch, path)


def saved_architecture(archive: zipfile.ZipFile) -> dict | None:
    """The description :func:`save_model` stored in a .keras zip, or None if it has none
    (a file saved by Keras itself, or before descriptions were saved)."""
    if ARCHITECTURE_ENTRY not in archive.namelist():
        return None
    try:
        described = json.loads(archive.read(ARCHITECTURE_ENTRY))
    except ValueError as error:
        raise ValueError(f"{ARCHITECTURE_ENTRY} is not JSON: {error}") from error
    if not isinstance(described, dict) or not isinstance(described.get("members"), list):
        raise ValueError(f"{ARCHITECTURE_ENTRY} has no list of members")
    return described


_SHARED_OBJECT_ID = re.compile(r'"shared_object_id": (\d+)')


def _renumber_shared_objects(config: str) -> str:
    """Keras names objects shared between layers by their memory address; number them in
    order of appearance instead (the same objects keep the same number, so loading is alike)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match) -> str:
        return f'"shared_object_id": {numbers.setdefault(match.group(1), len(numbers))}'

    return _SHARED_OBJECT_ID.sub(number, config)
