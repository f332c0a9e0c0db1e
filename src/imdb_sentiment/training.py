"""Training orchestration for the train stage: members, teachers and students, averaging.

With ``ensemble_size`` > 1, trains that many classifiers from consecutive seeds and averages
them. With ``distill``, those classifiers are teachers: ``students`` more classifiers learn
their averaged probabilities for the training reviews, and only the students (averaged, if
more than one) are kept, at one classifier's serving cost per student; teachers train for at
most ``teacher_max_epochs``.

Losses have two names. ``loss``/``val_loss`` in metrics files are the binary cross-entropy of
the saved model's output. A multi-view network (word pairs or triples) minimises that
cross-entropy plus each branch's own, which Keras also calls ``loss``; here it is written as
``multi_view_loss``/``val_multi_view_loss`` wherever it is recorded (history files,
``best_val_multi_view_loss`` in metrics/train.json), so the two cannot be confused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imdb_sentiment import calibration, dataset, evaluation, malloc, ngrams, text
from imdb_sentiment.distribute import Placement, cudnn_blockers, gpu_visible, keep_lstms_off_cudnn
from imdb_sentiment.hoisted_lstm import forget_traced_gradients
from imdb_sentiment.inference import predict_probabilities, scorer
from imdb_sentiment.model import (
    BucketedBatches,
    average_members,
    build_classifier,
    build_multi_view,
    compile_classifier,
    training_callbacks,
)
from imdb_sentiment.params import DEFAULT_PARAMS_FILE, ParamsError

TrainParams = Any  # the train section of params.yaml: stages/train.py's Params
Split = tuple[np.ndarray, np.ndarray]  # (encoded reviews, labels or soft targets)
SCORING_BATCH = 256  # reviews per call when scoring with a trained model
CALIBRATION_WINDOW = 20  # tokens of the short views added to validation for calibration
NGRAM_KEYS = {2: "pair_vocab_size", 3: "triple_vocab_size"}  # n -> its key of the train section
MULTI_VIEW_NAMES = {"loss": "multi_view_loss", "val_loss": "val_multi_view_loss"}


@dataclass(frozen=True)
class Vocabularies:
    """What the classifiers embed: word ids, and the kept n-grams by n (none: words only)."""

    words: int
    ngrams: dict[int, np.ndarray]


@dataclass
class TrainedMember:
    """One trained classifier of the ensemble, with its per-epoch history."""

    name: str
    seed: int
    model: keras.Model | None  # None once a teacher has taught
    history: pd.DataFrame  # epoch, accuracy, loss or multi_view_loss, val_...
    best_epoch: int  # 1-based: the epoch whose weights were kept


@dataclass(frozen=True)
class TrainingResult:
    classifier: keras.Model  # what is saved: the student(s), or the members' average
    members: list[TrainedMember]
    validation: dict  # classification metrics of ``classifier`` on the validation split
    seconds: float
    temperature: float | None = None  # folded into the classifier's outputs (calibrate)


def check_ngram_vocab_sizes(params: TrainParams) -> None:
    """Refuse a pair/triple vocabulary too small to hold one n-gram (before any data is read)."""
    # "0 or more than 2" is not a single bound, so the schema's metadata cannot say it.
    for n, key in NGRAM_KEYS.items():
        size, view = getattr(params, key), ngrams.NAMES[n]
        if 0 < size <= text.RESERVED_IDS:
            raise ParamsError(
                f"{DEFAULT_PARAMS_FILE}: train.{key} = {size} is out of range: 0 (no {view} "
                f"branch) or more than {text.RESERVED_IDS} (padding, unknown, {view})"
            )


def check_windows(params: TrainParams) -> None:
    """Refuse a window length range that is empty."""
    if params.window_min_tokens > params.window_max_tokens:
        raise ParamsError(
            f"{DEFAULT_PARAMS_FILE}: train.window_min_tokens = {params.window_min_tokens} is "
            f"more than train.window_max_tokens = {params.window_max_tokens}"
        )


def train_classifier(
    params: TrainParams,
    train: Split,
    validation: Split,
    word_vocab_size: int,
    placement: Placement | None = None,
    linear_teacher: np.ndarray | None = None,
) -> TrainingResult:
    """Train the members (and, with distill, the students) and score the kept classifier.

    ``placement`` (:func:`imdb_sentiment.distribute.placement_from_environment`): the
    strategy to train under and this worker's share of the batches; default: one process.
    ``linear_teacher``: the linear baseline's out-of-fold P(positive) of each training
    review, blended into the students' targets with weight ``linear_teacher_weight``.
    """
    started = time.perf_counter()
    placement = placement or Placement(tf.distribute.get_strategy())
    vocabularies = build_vocabularies(params, train[0], word_vocab_size)
    members = []
    for number in range(1, params.ensemble_size + 1):
        members.append(train_member(params, number, vocabularies, train, validation, placement))
        release_training_memory()
    classifier = average_members([member.model for member in members])
    if params.distill:
        classifier, students = _distil(
            params, classifier, members, vocabularies, train, validation, placement, linear_teacher
        )
        members += students
    x_val, y_val = validation
    temperature = None
    if params.calibrate:
        temperature = calibration.fit_temperature(classifier, *calibration_set(x_val, y_val))
        print(f"Calibrated: logits divided by a temperature of {temperature}", flush=True)
    seconds = time.perf_counter() - started
    # Cut at 0.5 like Keras' accuracy, so it compares with the members' figures
    # (evaluate.threshold belongs to the evaluate stage).
    probabilities = predict_probabilities(scorer(classifier, x_val.shape[1]), x_val, SCORING_BATCH)
    metrics = evaluation.classification_metrics(y_val, probabilities, threshold=0.5)
    return TrainingResult(classifier, members, metrics, seconds, temperature)


def calibration_set(x_val: np.ndarray, y_val: np.ndarray) -> Split:
    """The validation reviews plus their first and last words: the temperature must fit the
    short texts that users type as well as whole reviews."""
    short = [dataset.edge_windows(x_val, CALIBRATION_WINDOW, where) for where in ("first", "last")]
    return np.concatenate([x_val, *short]), np.concatenate([y_val] * 3)


def student_targets(
    params: TrainParams, teachers: np.ndarray, linear_teacher: np.ndarray | None
) -> np.ndarray:
    """The LSTM teachers' average P(positive), blended with the linear baseline's.

    The two families err on different reviews, so their blend is a better teacher than either.
    """
    weight = params.linear_teacher_weight
    if not weight:
        return teachers
    if linear_teacher is None or len(linear_teacher) != len(teachers):
        raise ParamsError(
            f"train.linear_teacher_weight = {weight} needs the linear baseline's scores of all "
            f"{len(teachers)} training reviews (run the linear_baseline stage)"
        )
    return ((1 - weight) * teachers + weight * linear_teacher).astype(np.float32)


def with_windows(params: TrainParams, train: Split, seed: int) -> Split:
    """``train`` plus ``window_copies`` random windows of each review, with its target."""
    x, y = train
    rng = np.random.default_rng(seed)
    windows = [
        dataset.random_windows(x, params.window_min_tokens, params.window_max_tokens, rng)
        for _ in range(params.window_copies)
    ]
    return np.concatenate([x, *windows]), np.concatenate([y] * (1 + len(windows)))


def _distil(
    params: TrainParams,
    teachers: keras.Model,
    members: list[TrainedMember],
    vocabularies: Vocabularies,
    train: Split,
    validation: Split,
    placement: Placement,
    linear_teacher: np.ndarray | None = None,
) -> tuple[keras.Model, list[TrainedMember]]:
    # The teachers' probabilities say how sure they are of each review, which 0/1 labels
    # do not: the student learns more from them than from the labels alone.
    x_train = train[0]
    teacher = scorer(teachers, x_train.shape[1])
    soft = predict_probabilities(teacher, x_train, SCORING_BATCH).reshape(-1)
    soft = student_targets(params, soft, linear_teacher)
    del teacher, teachers
    for member in members:
        member.model = None  # teachers are never saved: free their weights for the students
    release_training_memory()
    first = params.ensemble_size + 1
    students = [
        train_member(
            params,
            number,
            vocabularies,
            with_windows(params, (x_train, soft), params.seed + number),
            validation,
            placement,
        )
        for number in range(first, first + params.students)
    ]
    return average_members([student.model for student in students]), students


def release_training_memory() -> None:
    """Free a trained classifier's graphs and optimizer state before the next one trains."""
    forget_traced_gradients()
    malloc.release_free_memory()


def build_vocabularies(
    params: TrainParams, x_train: np.ndarray, word_vocab_size: int
) -> Vocabularies:
    kept = {}
    for n, key in NGRAM_KEYS.items():
        if size := getattr(params, key):
            kept[n] = ngrams.build_ngram_vocabulary(x_train, word_vocab_size, size, n)
            print(f"Kept the {len(kept[n])} most frequent word {ngrams.NAMES[n]} in training")
    return Vocabularies(word_vocab_size, kept)


def _build(params: TrainParams, vocabularies: Vocabularies, name: str) -> tuple[keras.Model, ...]:
    """(model to save, model to fit): one and the same for a words-only classifier."""
    branch = {
        "embedding_dim": params.embedding_dim,
        "lstm_units": params.lstm_units,
        "lstm_layers": params.lstm_layers,
        "bidirectional": params.bidirectional,
        "dropout": params.dropout,
        "pooling": params.pooling,
        "embedding_dropout": params.embedding_dropout,
        "lstm_kernel": params.lstm_kernel,
    }
    if not vocabularies.ngrams:
        classifier = build_classifier(vocabularies.words, **branch, name=name)
        return classifier, classifier
    return build_multi_view(vocabularies.words, vocabularies.ngrams, name, **branch)


def train_member(
    params: TrainParams,
    number: int,
    vocabularies: Vocabularies,
    train: Split,
    validation: Split,
    placement: Placement | None = None,
) -> TrainedMember:
    """Member ``number`` (1-based; past ensemble_size, a student), trained with early stopping."""
    placement = placement or Placement(tf.distribute.get_strategy())
    # Member 1 uses the seed itself, so a one-member ensemble is the plain classifier.
    seed = params.seed + number - 1
    is_student = number > params.ensemble_size
    name = member_name(params, number)
    print(f"Training {name} (seed {seed})", flush=True)
    keras.utils.set_random_seed(seed)
    # A model saved alone keeps the plain name; averaged ones need names of their own.
    group_size = params.students if is_student else params.ensemble_size
    model_name = "lstm_classifier" if group_size == 1 else name
    batches = BucketedBatches(*train, params.batch_size, seed, params.bucket_by_length)
    batches = batches.sharded(placement.workers, placement.index)
    with placement.strategy.scope():
        classifier, trainer = _build(params, vocabularies, model_name)
        compile_classifier(
            trainer,
            params.learning_rate,
            params.clipnorm,
            params.ema_momentum,
            is_student,
            params.rowwise_embedding_updates,
            decay_steps(params, is_student, len(batches)),
        )
    _fit_lstms_to_device(trainer, train[0], announce=number == 1)
    if placement.workers > 1:
        _work_around_keras_multi_worker_bugs(trainer, placement.strategy, train)
    stopper = keras.callbacks.EarlyStopping(
        monitor=params.early_stopping_monitor,
        patience=params.early_stopping_patience,
        min_delta=params.early_stopping_min_delta,
        restore_best_weights=True,
        verbose=1,
    )
    validation_batches = BucketedBatches(
        *validation, params.batch_size, None, params.bucket_by_length
    )
    history = trainer.fit(
        _per_worker(placement, batches),
        validation_data=_per_worker(placement, validation_batches),
        epochs=epoch_limit(params, is_student),
        callbacks=training_callbacks(stopper, params.ema_momentum),
        shuffle=False,  # BucketedBatches already shuffles, seeded
        verbose=2,
    )
    epochs = pd.DataFrame(history.history)
    if vocabularies.ngrams:
        epochs = epochs.rename(columns=MULTI_VIEW_NAMES)
    epochs.insert(0, "epoch", np.arange(1, len(epochs) + 1))
    return TrainedMember(name, seed, classifier, epochs, stopper.best_epoch + 1)


def _fit_lstms_to_device(trainer: keras.Model, x_train: np.ndarray, announce: bool) -> None:
    """On a GPU, keep the LSTMs off cuDNN where it cannot take the data (it fails at run time
    on a left-padded mask); say once which kernel trains."""
    if not gpu_visible():
        return
    blockers = cudnn_blockers(trainer, x_train)
    if blockers:
        keep_lstms_off_cudnn(trainer)
    if announce:
        kernel = "Keras' generic LSTM kernel: " + "; ".join(blockers) if blockers else "cuDNN"
        print(f"GPU visible: the LSTMs train on {kernel}", flush=True)


def _per_worker(placement: Placement, batches: BucketedBatches) -> tf.data.Dataset:
    """The batches as this worker's input: each worker's own, not a share of one global
    batch that tf.distribute would split (rebatch) across the workers."""
    dataset = batches.as_dataset()
    if placement.workers == 1:
        return dataset
    return placement.strategy.distribute_datasets_from_function(lambda _: dataset)


def _work_around_keras_multi_worker_bugs(
    trainer: keras.Model, strategy: tf.distribute.Strategy, train: Split
) -> None:
    """Two bugs of Keras 3's fit under MultiWorkerMirroredStrategy (tensorflow/tensorflow
    issue 72388), patched on this one model:

    - fit learns the input shapes by averaging the first batch over the workers, which fails
      (a PerReplica of ids is not a tensor): every batch has the same dtypes and ranks, so a
      local one builds the model, its loss and metrics instead;
    - each step's logs are averaged over the workers along axis 0, which a scalar lacks:
      the steps return them with one axis (their values are already the same on every
      worker, so the average is the value).
    """
    x, y = train[0][:1], train[1][:1].astype("float32").reshape(-1, 1)

    def build(iterator: object = None, data_batch: object = None) -> None:
        with strategy.scope():
            trainer._symbolic_build(data_batch=(x, y))

    def with_an_axis(step: Callable) -> Callable:
        return lambda data: {name: tf.reshape(v, [1]) for name, v in step(data).items()}

    trainer._maybe_symbolic_build = build
    trainer.train_step = with_an_axis(trainer.train_step)
    trainer.test_step = with_an_axis(trainer.test_step)


def member_name(params: TrainParams, number: int) -> str:
    if number <= params.ensemble_size:
        return f"member_{number}"
    return "student" if params.students == 1 else f"student_{number - params.ensemble_size}"


def epoch_limit(params: TrainParams, is_student: bool) -> int:
    if params.distill and not is_student:
        # Teachers are never saved: an epoch past their usual best only confirms that it was.
        return min(params.max_epochs, params.teacher_max_epochs)
    return params.max_epochs


def decay_steps(params: TrainParams, is_student: bool, steps_per_epoch: int) -> int:
    """With ``learning_rate_schedule: linear``, the steps over which the rate falls to 0: all
    of the member's epoch limit, so its last planned step trains at the smallest rate (0 for
    ``constant``: no decay)."""
    if params.learning_rate_schedule == "constant":
        return 0
    return epoch_limit(params, is_student) * steps_per_epoch


def loss_column(history: pd.DataFrame) -> str:
    """The history's training-objective column: multi_view_loss, or loss for one view."""
    return "multi_view_loss" if "multi_view_loss" in history else "loss"


def summary(result: TrainingResult, reviews: int) -> dict:
    """metrics/train.json: the kept classifier's validation figures, time, and each member."""
    epochs_run = sum(len(member.history) for member in result.members)
    return {
        "val_accuracy": result.validation["accuracy"],
        "val_loss": result.validation["loss"],
        "epochs_run": epochs_run,
        "train_seconds": round(result.seconds, 1),
        "train_reviews_per_second": round(reviews * epochs_run / result.seconds, 1),
        "temperature": result.temperature,
        "members": {member.name: _member_summary(member) for member in result.members},
    }


def _member_summary(member: TrainedMember) -> dict:
    best = member.history.iloc[member.best_epoch - 1]
    loss = f"val_{loss_column(member.history)}"
    return {
        "seed": member.seed,
        "best_epoch": member.best_epoch,
        "epochs_run": len(member.history),
        "best_val_accuracy": round(float(best["val_accuracy"]), 4),
        f"best_{loss}": round(float(best[loss]), 4),
    }


def write_histories(members: list[TrainedMember], folder: Path) -> None:
    """One CSV per member: its per-epoch figures, with the columns named as above."""
    for member in members:
        member.history.round(6).to_csv(
            folder / f"{member.name}.csv", index=False, lineterminator="\n"
        )


def curve_tables(members: list[TrainedMember]) -> dict[str, pd.DataFrame]:
    """{"loss": ..., "accuracy": ...}: every member's train and validation curve in one long
    table each (epoch, member, split, value; the loss rows name their loss), for one chart."""
    tables: dict[str, list[pd.DataFrame]] = {"loss": [], "accuracy": []}
    for member in members:
        history, objective = member.history, loss_column(member.history)
        for split, prefix in (("train", ""), ("validation", "val_")):
            base = pd.DataFrame({"epoch": history["epoch"], "member": member.name, "split": split})
            loss = base.assign(loss_name=objective, loss=history[prefix + objective])
            tables["loss"].append(loss)
            tables["accuracy"].append(base.assign(accuracy=history[prefix + "accuracy"]))
    return {name: pd.concat(parts, ignore_index=True).round(6) for name, parts in tables.items()}
