"""Training orchestration for the teacher and train stages: one classifier per process.

A teacher (stage ``teacher@<seed>``) is one classifier trained on the labels; it keeps only
its P(positive) of every training and validation review. The student (stage ``train``) learns
the teachers' average P(positive), blended with the linear baseline's out-of-fold scores, and
is the model that is saved and served. With no teachers it learns the labels.

Losses have two names. ``loss``/``val_loss`` in metrics files are the binary cross-entropy of
the saved model's output. A multi-view network (word pairs or triples) minimises that
cross-entropy plus each branch's own, which Keras also calls ``loss``; here it is written as
``multi_view_loss`` wherever it is recorded (the DVCLive files, ``best_val_multi_view_loss``
in the metrics), so the two cannot be confused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live

from imdb_sentiment import malloc
from imdb_sentiment.data import dataset, ngrams, text
from imdb_sentiment.network.branches import STUDENT_LAYER, branches_alone
from imdb_sentiment.params import DEFAULT_PARAMS_FILE, ParamsError
from imdb_sentiment.schema import NetworkParams, StudentParams
from imdb_sentiment.scoring import calibration, evaluation
from imdb_sentiment.scoring.inference import predict_probabilities, scorer
from imdb_sentiment.training import linear_branch, multi_worker_fit
from imdb_sentiment.training.batches import BucketedBatches
from imdb_sentiment.training.distribute import (
    Placement,
    cudnn_blockers,
    gpu_visible,
    keep_lstms_off_cudnn,
)
from imdb_sentiment.training.live import EpochLogger
from imdb_sentiment.training.model import (
    build_classifier,
    build_multi_view,
    compile_classifier,
    training_callbacks,
)

Split = tuple[np.ndarray, np.ndarray]  # (encoded reviews, labels or soft targets)
SCORING_BATCH = 256  # reviews per call when scoring with a trained model
CALIBRATION_WINDOW = 20  # tokens of the short views added to validation for calibration
NGRAM_KEYS = {2: "pair_vocab_size", 3: "triple_vocab_size"}  # n -> its params key
LINEAR_NGRAM_KEYS = {2: "linear_branch_pairs", 3: "linear_branch_triples"}  # its own n-grams
MULTI_VIEW_NAMES = {"loss": "multi_view_loss", "val_loss": "val_multi_view_loss"}
SAVED_NAME = "lstm_classifier"  # the student's model name, as served
# The windows' draw is seeded apart from the student's weights; +1 is what it was when one
# stage trained the teachers and the student, so the defaults' figures stayed the same.
WINDOW_SEED_OFFSET = 1


@dataclass(frozen=True)
class Vocabularies:
    """What the classifiers embed: word ids, and the kept n-grams by n (none: words only)."""

    words: int
    ngrams: dict[int, np.ndarray]


@dataclass
class TrainedMember:
    """One trained classifier, with its per-epoch history."""

    name: str
    seed: int
    model: keras.Model
    history: pd.DataFrame  # epoch, accuracy, loss or multi_view_loss, val_...
    best_epoch: int  # 1-based: the epoch whose weights were kept


@dataclass(frozen=True)
class TeacherScores:
    """A teacher's P(positive) of every training and validation review: all a student needs."""

    member: TrainedMember
    train: np.ndarray
    validation: np.ndarray
    seconds: float


class Sentences(NamedTuple):
    """Every sentence of the training reviews that the linear branch also learns
    (``linear_branch_sentences``): ids, their review's label, each one's weight."""

    x: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class TrainingResult:
    classifier: keras.Model  # the student, as it is saved
    student: TrainedMember
    validation: dict  # classification metrics of ``classifier`` on the validation split
    seconds: float
    temperature: float | None = None  # folded into the classifier's outputs (calibrate)
    blend: dict | None = None  # the linear branch's fit and the blend's weights (linear_branch)


def check_ngram_vocab_sizes(params: NetworkParams, section: str) -> None:
    """Refuse a pair/triple vocabulary too small to hold one n-gram (before any data is read)."""
    # "0 or more than 2" is not a single bound, so the schema's metadata cannot say it.
    keys = list(NGRAM_KEYS.items())
    if isinstance(params, StudentParams):
        keys += list(LINEAR_NGRAM_KEYS.items())
    for n, key in keys:
        size, view = getattr(params, key), ngrams.NAMES[n]
        if 0 < size <= text.RESERVED_IDS:
            raise ParamsError(
                f"{DEFAULT_PARAMS_FILE}: {section}.{key} = {size} is out of range: 0 (no {view}) "
                f"or more than {text.RESERVED_IDS} (padding, unknown, {view})"
            )


def check_windows(params: StudentParams) -> None:
    """Refuse a window length range that is empty."""
    if params.window_min_tokens > params.window_max_tokens:
        raise ParamsError(
            f"{DEFAULT_PARAMS_FILE}: train.window_min_tokens = {params.window_min_tokens} is "
            f"more than train.window_max_tokens = {params.window_max_tokens}"
        )


def train_teacher(
    params: NetworkParams,
    seed: int,
    train: Split,
    validation: Split,
    word_vocab_size: int,
    placement: Placement | None = None,
    live: Live | None = None,
) -> TeacherScores:
    """One teacher, trained on the labels from ``seed``, and its scores of both splits."""
    started = time.perf_counter()
    vocabularies = build_vocabularies(params, train[0], word_vocab_size)
    name = f"teacher_{seed}"
    member = train_member(
        params, name, seed, vocabularies, train, validation, placement, False, live
    )
    score = scorer(member.model, train[0].shape[1])
    scores = [
        predict_probabilities(score, x, SCORING_BATCH).reshape(-1) for x, _ in (train, validation)
    ]
    return TeacherScores(member, *scores, time.perf_counter() - started)


def train_student(
    params: StudentParams,
    train: Split,
    validation: Split,
    word_vocab_size: int,
    placement: Placement | None = None,
    teachers: np.ndarray | None = None,
    linear_teacher: np.ndarray | None = None,
    live: Live | None = None,
    short_views: np.ndarray | None = None,
    sentences: Sentences | None = None,
) -> TrainingResult:
    """The student, and its validation figures (after calibration, with ``calibrate``).

    ``teachers``: the LSTM teachers' average P(positive) of each training review (None: the
    labels); ``linear_teacher``: the linear baseline's out-of-fold P(positive), blended in with
    weight ``linear_teacher_weight``; ``short_views``: the ids of the training reviews' short
    views, view after view (preprocess' ``train_short_views``), which the linear branch also
    learns with ``linear_branch_short_views``; ``sentences``: what it also learns with
    ``linear_branch_sentences``.
    """
    started = time.perf_counter()
    x_train, y_train = train
    vocabularies = build_vocabularies(params, x_train, word_vocab_size)
    linear_fit = None
    if params.linear_branch:
        # Before the student: the stage holds least now, and the regression's features (with
        # the sentences, ~0.9 GB at their peak) are gone before training takes its share.
        fit_on = with_short_views(params, train, short_views)
        linear_fit = fit_linear_model(params, fit_on, vocabularies, sentences)
        del fit_on
        malloc.release_free_memory()
    targets = student_targets(params, y_train if teachers is None else teachers, linear_teacher)
    # The teachers' probabilities say how sure they are of each review, which 0/1 labels
    # do not: the student learns more from them than from the labels alone.
    soft = teachers is not None or bool(params.linear_teacher_weight)
    member = train_member(
        params,
        "student",
        params.seed,
        vocabularies,
        with_windows(params, (x_train, targets), params.seed + WINDOW_SEED_OFFSET),
        validation,
        placement,
        soft,
        live,
        STUDENT_LAYER if params.linear_branch else SAVED_NAME,
    )
    x_val, y_val = validation
    temperature = None
    if params.calibrate:
        temperature = calibration.fit_temperature(member.model, *calibration_set(x_val, y_val))
        print(f"Calibrated: logits divided by a temperature of {temperature}", flush=True)
    classifier, blend = member.model, None
    if linear_fit is not None:
        classifier, blend = add_linear_branch(member.model, linear_fit, validation, vocabularies)
    seconds = time.perf_counter() - started
    metrics = validation_metrics(classifier, validation)
    if blend is not None:
        blend["branches"] = {
            name: validation_metrics(model, validation)["accuracy"]
            for name, model in branches_alone(classifier).items()
        }
    return TrainingResult(classifier, member, metrics, seconds, temperature, blend)


def validation_metrics(model: keras.Model, validation: Split) -> dict:
    # Cut at 0.5 like Keras' accuracy, so it compares with the epochs' figures
    # (evaluate.threshold belongs to the evaluate stage).
    x_val, y_val = validation
    probabilities = predict_probabilities(scorer(model, x_val.shape[1]), x_val, SCORING_BATCH)
    return evaluation.classification_metrics(y_val, probabilities, threshold=0.5)


def fit_linear_model(
    params: StudentParams,
    train: Split,
    vocabularies: Vocabularies,
    sentences: Sentences | None = None,
) -> linear_branch.LinearFit:
    """The linear branch's regression, fitted on ``train`` (the training reviews' ids and
    labels, and their short views with ``linear_branch_short_views``) and ``sentences``, over
    the LSTM's word and n-gram ids or ``linear_branch_pairs`` pairs and
    ``linear_branch_triples`` triples of its own, counted in ``train``."""
    x_train, labels = train
    kept = dict(vocabularies.ngrams)  # the LSTM's n-grams; the branch's own replace them
    for n, key in LINEAR_NGRAM_KEYS.items():
        if size := getattr(params, key):
            kept[n] = ngrams.build_ngram_vocabulary(x_train, vocabularies.words, size, n)
            view = ngrams.NAMES[n]
            print(f"Kept the {len(kept[n])} most frequent word {view} for the linear branch")
    blocks, weights = [x_train], None
    if sentences is not None:
        blocks.append(sentences.x)
        labels = np.concatenate([labels, sentences.labels])
        weights = np.concatenate([np.ones(len(x_train), np.float32), sentences.weights])
    fitted = linear_branch.fit_linear(
        blocks, labels, vocabularies.words, kept, params.linear_branch_C, weights
    )
    print(f"Linear branch fitted (training accuracy {fitted.accuracy:.4f})")
    return fitted


def add_linear_branch(
    student: keras.Model,
    fitted: linear_branch.LinearFit,
    validation: Split,
    vocabularies: Vocabularies,
) -> tuple[keras.Model, dict]:
    """The served network: ``student`` beside the linear branch ``fitted``
    (:func:`fit_linear_model`), blended by length on the validation reviews and their first
    and last words (:mod:`imdb_sentiment.training.linear_branch`); and what was fitted."""
    model = linear_branch.with_linear_branch(
        student, vocabularies.words, fitted.vocabularies, SAVED_NAME
    )
    linear_branch.set_linear_weights(model, fitted)
    weights = linear_branch.fit_blend(model, *calibration_set(*validation))
    print(f"Blend fitted: {weights}")
    return model, {"linear_train_accuracy": round(fitted.accuracy, 4), "weights": weights}


def sentence_weights(total: float, review_of_sentence: np.ndarray) -> np.ndarray:
    """Each sentence's weight, where the sentences of one review weigh ``total`` in all (a
    review weighs 1): a long review's many sentences must not outweigh its own verdict."""
    per_review = np.bincount(review_of_sentence)
    return (total / per_review[review_of_sentence]).astype(np.float32)


def with_short_views(params: StudentParams, train: Split, short_views: np.ndarray | None) -> Split:
    """What the linear branch is fitted on: the training reviews, and with
    ``linear_branch_short_views`` their short views too, each with its review's label."""
    if not params.linear_branch_short_views:
        return train
    x, labels = train
    if short_views is None or len(short_views) % len(x):
        raise ParamsError(
            f"train.linear_branch_short_views needs the short views of all {len(x)} training "
            f"reviews (data/prepared/{dataset.SHORT_VIEWS_SPLIT}.npz, made by preprocess)"
        )
    copies = len(short_views) // len(x)
    return np.concatenate([x, short_views]), np.tile(labels, 1 + copies)


def average_teachers(scores: Sequence[np.ndarray]) -> np.ndarray:
    """The teachers' mean P(positive), summed in order in float32.

    When one stage trained every teacher, the serving kernel averaged them in float64 before
    rounding; each teacher's saved scores are float32 now, so the targets can differ from then
    by one float32 step (6e-8) on some reviews (docs/history.md)."""
    total = np.asarray(scores[0], dtype=np.float32)
    for more in scores[1:]:
        total = total + np.asarray(more, dtype=np.float32)
    return total / np.float32(len(scores))


def calibration_set(x_val: np.ndarray, y_val: np.ndarray) -> Split:
    """The validation reviews plus their first and last words: the temperature must fit the
    short texts that users type as well as whole reviews."""
    short = [dataset.edge_windows(x_val, CALIBRATION_WINDOW, where) for where in ("first", "last")]
    return np.concatenate([x_val, *short]), np.concatenate([y_val] * 3)


def student_targets(
    params: StudentParams, teachers: np.ndarray, linear_teacher: np.ndarray | None
) -> np.ndarray:
    """The LSTM teachers' average P(positive) (or the labels), blended with the linear
    baseline's. The two families err on different reviews, so their blend is a better
    teacher than either."""
    weight = params.linear_teacher_weight
    if not weight:
        return teachers
    if linear_teacher is None or len(linear_teacher) != len(teachers):
        raise ParamsError(
            f"train.linear_teacher_weight = {weight} needs the linear baseline's scores of all "
            f"{len(teachers)} training reviews (run the linear_baseline stage)"
        )
    return ((1 - weight) * teachers + weight * linear_teacher).astype(np.float32)


def with_windows(params: StudentParams, train: Split, seed: int) -> Split:
    """``train`` plus ``window_copies`` random windows of each review, with its target."""
    x, y = train
    rng = np.random.default_rng(seed)
    windows = [
        dataset.random_windows(x, params.window_min_tokens, params.window_max_tokens, rng)
        for _ in range(params.window_copies)
    ]
    return np.concatenate([x, *windows]), np.concatenate([y] * (1 + len(windows)))


def build_vocabularies(
    params: NetworkParams, x_train: np.ndarray, word_vocab_size: int
) -> Vocabularies:
    kept = {}
    for n, key in NGRAM_KEYS.items():
        if size := getattr(params, key):
            kept[n] = ngrams.build_ngram_vocabulary(x_train, word_vocab_size, size, n)
            print(f"Kept the {len(kept[n])} most frequent word {ngrams.NAMES[n]} in training")
    return Vocabularies(word_vocab_size, kept)


def _build(params: NetworkParams, vocabularies: Vocabularies, name: str) -> tuple[keras.Model, ...]:
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
    params: NetworkParams,
    name: str,
    seed: int,
    vocabularies: Vocabularies,
    train: Split,
    validation: Split,
    placement: Placement | None = None,
    soft_targets: bool = False,
    live: Live | None = None,
    model_name: str = SAVED_NAME,
) -> TrainedMember:
    """One classifier, trained from ``seed`` with early stopping; ``live`` (DVCLive) logs each
    epoch as it ends."""
    placement = placement or Placement(tf.distribute.get_strategy())
    print(f"Training {name} (seed {seed})", flush=True)
    keras.utils.set_random_seed(seed)
    batches = BucketedBatches(*train, params.batch_size, seed, params.bucket_by_length)
    batches = batches.sharded(placement.workers, placement.index)
    with placement.strategy.scope():
        classifier, trainer = _build(params, vocabularies, model_name)
        compile_classifier(
            trainer,
            params.learning_rate,
            params.clipnorm,
            params.ema_momentum,
            soft_targets,
            params.rowwise_embedding_updates,
            decay_steps(params, len(batches)),
        )
    _fit_lstms_to_device(trainer, train[0])
    if placement.workers > 1:
        multi_worker_fit.work_around_keras_bugs(trainer, placement.strategy, train)
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
    renames = MULTI_VIEW_NAMES if vocabularies.ngrams else {}
    loggers = [] if live is None else [EpochLogger(live, renames)]  # after the EMA swap
    history = trainer.fit(
        _per_worker(placement, batches),
        validation_data=_per_worker(placement, validation_batches),
        epochs=params.max_epochs,
        callbacks=[*training_callbacks(stopper, params.ema_momentum), *loggers],
        shuffle=False,  # BucketedBatches already shuffles, seeded
        verbose=2,
    )
    epochs = pd.DataFrame(history.history)
    if vocabularies.ngrams:
        epochs = epochs.rename(columns=MULTI_VIEW_NAMES)
    epochs.insert(0, "epoch", np.arange(1, len(epochs) + 1))
    return TrainedMember(name, seed, classifier, epochs, stopper.best_epoch + 1)


def _fit_lstms_to_device(trainer: keras.Model, x_train: np.ndarray) -> None:
    """On a GPU, keep the LSTMs off cuDNN where it cannot take the data (it fails at run time
    on a left-padded mask); say which kernel trains."""
    if not gpu_visible():
        return
    blockers = cudnn_blockers(trainer, x_train)
    if blockers:
        keep_lstms_off_cudnn(trainer)
    kernel = "Keras' generic LSTM kernel: " + "; ".join(blockers) if blockers else "cuDNN"
    print(f"GPU visible: the LSTMs train on {kernel}", flush=True)


def _per_worker(placement: Placement, batches: BucketedBatches) -> tf.data.Dataset:
    """The batches as this worker's input: each worker's own, not a share of one global
    batch that tf.distribute would split (rebatch) across the workers."""
    dataset = batches.as_dataset()
    if placement.workers == 1:
        return dataset
    return placement.strategy.distribute_datasets_from_function(lambda _: dataset)


def decay_steps(params: NetworkParams, steps_per_epoch: int) -> int:
    """With ``learning_rate_schedule: linear``, the steps over which the rate falls to 0: all
    of the classifier's epoch limit, so its last planned step trains at the smallest rate (0
    for ``constant``: no decay)."""
    if params.learning_rate_schedule == "constant":
        return 0
    return params.max_epochs * steps_per_epoch


def loss_column(history: pd.DataFrame) -> str:
    """The history's training-objective column: multi_view_loss, or loss for one view."""
    return "multi_view_loss" if "multi_view_loss" in history else "loss"


def member_summary(member: TrainedMember, seconds: float) -> dict:
    """A classifier's best epoch and its validation figures there, and its training time."""
    best = member.history.iloc[member.best_epoch - 1]
    loss = f"val_{loss_column(member.history)}"
    return {
        "seed": member.seed,
        "best_epoch": member.best_epoch,
        "epochs_run": len(member.history),
        "best_val_accuracy": round(float(best["val_accuracy"]), 4),
        f"best_{loss}": round(float(best[loss]), 4),
        "train_seconds": round(seconds, 1),
    }


def summary(result: TrainingResult, reviews: int) -> dict:
    """metrics/train.json: the saved classifier's validation figures, time and epochs."""
    epochs_run = len(result.student.history)
    return {
        "val_accuracy": result.validation["accuracy"],
        "val_loss": result.validation["loss"],
        "epochs_run": epochs_run,
        "train_seconds": round(result.seconds, 1),
        "train_reviews_per_second": round(reviews * epochs_run / result.seconds, 1),
        "temperature": result.temperature,
        "student": member_summary(result.student, result.seconds),
        **({"linear_branch": result.blend} if result.blend else {}),
    }
