"""Stage 3: train the LSTM classifier with gradient clipping and early stopping.

With ``ensemble_size`` > 1, trains that many classifiers from consecutive seeds and saves
their average. With ``distill``, those classifiers are teachers: one more classifier (the
student) learns their averaged probabilities for the training reviews, and the student is
saved, at one classifier's serving cost (``students`` > 1: that many, from consecutive seeds,
saved as their average); teachers train for at most ``teacher_max_epochs``. Saves
models/classifier.keras (int ids in) and models/end_to_end.keras (raw strings in), each
member's per-epoch history to plots/train/history/, and metrics/train.json (validation
figures of the saved model, and of each member's best epoch).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from imdb_sentiment import dataset, evaluation, ngrams, plotting, text
from imdb_sentiment.fileio import atomic_directory, write_json
from imdb_sentiment.inference import predict_probabilities, scorer
from imdb_sentiment.model import (
    BucketedBatches,
    average_members,
    build_classifier,
    build_end_to_end,
    build_multi_view,
    compile_classifier,
    training_callbacks,
)
from imdb_sentiment.params import DEFAULT_PARAMS_FILE, ParamsError, run_stage

PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
METRICS_FILE = Path("metrics/train.json")
PLOTS_DIR = Path("plots/train")
CLASSIFIER_FILE = "classifier.keras"
END_TO_END_FILE = "end_to_end.keras"


SECTION = "train"
SCORING_BATCH = 256  # reviews per call when scoring the validation split with the saved model


@dataclass(frozen=True)
class Params:
    """The train section of params.yaml."""

    embedding_dim: int = field(metadata={"min": 1})
    lstm_units: int = field(metadata={"min": 1})
    lstm_layers: int = field(metadata={"min": 1})
    bidirectional: bool
    dropout: float = field(metadata={"min": 0.0, "lt": 1.0})
    embedding_dropout: float = field(metadata={"min": 0.0, "lt": 1.0})
    pooling: Literal["last", "max", "mean_max"]
    pair_vocab_size: int = field(metadata={"min": 0})
    triple_vocab_size: int = field(metadata={"min": 0})
    learning_rate: float = field(metadata={"gt": 0.0})
    clipnorm: float = field(metadata={"gt": 0.0})
    ema_momentum: float = field(metadata={"min": 0.0, "lt": 1.0})
    batch_size: int = field(metadata={"min": 1})
    max_epochs: int = field(metadata={"min": 1})
    teacher_max_epochs: int = field(metadata={"min": 1})
    bucket_by_length: bool
    early_stopping_monitor: Literal["val_loss", "val_accuracy"]
    early_stopping_patience: int = field(metadata={"min": 0})
    early_stopping_min_delta: float = field(metadata={"min": 0.0})
    ensemble_size: int = field(metadata={"min": 1})
    distill: bool
    students: int = field(metadata={"min": 1})
    seed: int = field(metadata={"min": 0})


def run(
    params: Params,
    prepared_dir: Path = PREPARED_DIR,
    models_dir: Path = MODELS_DIR,
    metrics_file: Path = METRICS_FILE,
    plots_dir: Path = PLOTS_DIR,
) -> None:
    _check_ngram_vocab_sizes(params)
    tf.config.experimental.enable_op_determinism()
    encoder = text.load_encoder(prepared_dir / "encoder.json")
    _, x_train, y_train = dataset.load_arrays(prepared_dir, "train")
    _, x_val, y_val = dataset.load_arrays(prepared_dir, "validation")
    started = time.perf_counter()
    vocabularies = _vocabularies(params, x_train, encoder.vocab_size)
    members = [
        _train_member(params, number, vocabularies, (x_train, y_train), (x_val, y_val))
        for number in range(1, params.ensemble_size + 1)
    ]
    classifier = average_members([member.model for member in members])
    if params.distill:
        # The teachers' probabilities say how sure they are of each review, which 0/1 labels
        # do not: the student learns more from them than from the labels alone.
        teacher = scorer(classifier, x_train.shape[1])
        training = (x_train, predict_probabilities(teacher, x_train, SCORING_BATCH).reshape(-1))
        del teacher, classifier
        for member in members:
            member.model = None  # teachers are never saved: free their weights for the students
        first = params.ensemble_size + 1
        students = [
            _train_member(params, number, vocabularies, training, (x_val, y_val))
            for number in range(first, first + params.students)
        ]
        members += students
        classifier = average_members([student.model for student in students])
    seconds = time.perf_counter() - started
    # Cut at 0.5 like Keras' accuracy, so it compares with the members' figures
    # (evaluate.threshold belongs to the evaluate stage).
    probabilities = predict_probabilities(scorer(classifier, x_val.shape[1]), x_val, SCORING_BATCH)
    validation = evaluation.classification_metrics(y_val, probabilities, threshold=0.5)

    with atomic_directory(models_dir) as scratch:
        classifier.save(scratch / CLASSIFIER_FILE)
        build_end_to_end(encoder, classifier).save(scratch / END_TO_END_FILE)
    with atomic_directory(plots_dir / "history") as scratch:
        for member in members:
            member.history.round(6).to_csv(
                scratch / f"{member.name}.csv", index=False, lineterminator="\n"
            )
    histories = {member.name: member.history for member in members}
    plotting.training_curves(histories, plots_dir / "curves.png")
    write_json(metrics_file, _summary(members, validation, seconds, len(y_train)))


@dataclass(frozen=True)
class Vocabularies:
    """What the classifiers embed: word ids, and the kept n-grams by n (none: words only)."""

    words: int
    ngrams: dict[int, np.ndarray]


NGRAM_KEYS = {2: "pair_vocab_size", 3: "triple_vocab_size"}  # n -> its key of the train section


def _check_ngram_vocab_sizes(params: Params) -> None:
    # "0 or more than 2" is not a single bound, so the schema's metadata cannot say it.
    for n, key in NGRAM_KEYS.items():
        size, view = getattr(params, key), ngrams.NAMES[n]
        if 0 < size <= text.RESERVED_IDS:
            raise ParamsError(
                f"{DEFAULT_PARAMS_FILE}: train.{key} = {size} is out of range: 0 (no {view} "
                f"branch) or more than {text.RESERVED_IDS} (padding, unknown, {view})"
            )


def _vocabularies(params: Params, x_train: np.ndarray, word_vocab_size: int) -> Vocabularies:
    kept = {}
    for n, key in NGRAM_KEYS.items():
        if size := getattr(params, key):
            kept[n] = ngrams.build_ngram_vocabulary(x_train, word_vocab_size, size, n)
            print(f"Kept the {len(kept[n])} most frequent word {ngrams.NAMES[n]} in training")
    return Vocabularies(word_vocab_size, kept)


def _build(params: Params, vocabularies: Vocabularies, name: str) -> tuple[keras.Model, ...]:
    """(model to save, model to fit): one and the same for a words-only classifier."""
    branch = {
        "embedding_dim": params.embedding_dim,
        "lstm_units": params.lstm_units,
        "lstm_layers": params.lstm_layers,
        "bidirectional": params.bidirectional,
        "dropout": params.dropout,
        "pooling": params.pooling,
        "embedding_dropout": params.embedding_dropout,
    }
    if not vocabularies.ngrams:
        classifier = build_classifier(vocabularies.words, **branch, name=name)
        return classifier, classifier
    return build_multi_view(vocabularies.words, vocabularies.ngrams, name, **branch)


@dataclass
class TrainedMember:
    """One trained classifier of the ensemble, with its per-epoch history."""

    name: str
    seed: int
    model: keras.Model | None  # None once a teacher has taught
    history: pd.DataFrame
    best_epoch: int  # 1-based: the epoch whose weights were kept


def _train_member(
    params: Params,
    number: int,
    vocabularies: Vocabularies,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
) -> TrainedMember:
    # Member 1 uses the seed itself, so a one-member ensemble is the plain classifier.
    seed = params.seed + number - 1
    is_student = number > params.ensemble_size
    name = _member_name(params, number)
    print(f"Training {name} (seed {seed})", flush=True)
    keras.utils.set_random_seed(seed)
    # A model saved alone keeps the plain name; averaged ones need names of their own.
    group_size = params.students if is_student else params.ensemble_size
    model_name = "lstm_classifier" if group_size == 1 else name
    classifier, trainer = _build(params, vocabularies, model_name)
    compile_classifier(
        trainer, params.learning_rate, params.clipnorm, params.ema_momentum, is_student
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor=params.early_stopping_monitor,
        patience=params.early_stopping_patience,
        min_delta=params.early_stopping_min_delta,
        restore_best_weights=True,
        verbose=1,
    )
    history = trainer.fit(
        BucketedBatches(*train, params.batch_size, seed, params.bucket_by_length).as_dataset(),
        validation_data=BucketedBatches(
            *validation, params.batch_size, None, params.bucket_by_length
        ).as_dataset(),
        epochs=_epoch_limit(params, is_student),
        callbacks=training_callbacks(stopper, params.ema_momentum),
        shuffle=False,  # BucketedBatches already shuffles, seeded
        verbose=2,
    )
    epochs = pd.DataFrame(history.history)
    epochs.insert(0, "epoch", np.arange(1, len(epochs) + 1))
    return TrainedMember(name, seed, classifier, epochs, stopper.best_epoch + 1)


def _member_name(params: Params, number: int) -> str:
    if number <= params.ensemble_size:
        return f"member_{number}"
    return "student" if params.students == 1 else f"student_{number - params.ensemble_size}"


def _epoch_limit(params: Params, is_student: bool) -> int:
    if params.distill and not is_student:
        # Teachers are never saved: an epoch past their usual best only confirms that it was.
        return min(params.max_epochs, params.teacher_max_epochs)
    return params.max_epochs


def _summary(members: list[TrainedMember], validation: dict, seconds: float, reviews: int) -> dict:
    epochs_run = sum(len(member.history) for member in members)
    return {
        "val_accuracy": validation["accuracy"],
        "val_loss": validation["loss"],
        "epochs_run": epochs_run,
        "train_seconds": round(seconds, 1),
        "train_reviews_per_second": round(reviews * epochs_run / seconds, 1),
        "members": {member.name: _member_summary(member) for member in members},
    }


def _member_summary(member: TrainedMember) -> dict:
    best = member.history.iloc[member.best_epoch - 1]
    return {
        "seed": member.seed,
        "best_epoch": member.best_epoch,
        "epochs_run": len(member.history),
        "best_val_accuracy": round(float(best["val_accuracy"]), 4),
        "best_val_loss": round(float(best["val_loss"]), 4),
    }


def main() -> int:
    return run_stage(SECTION, Params, run, (FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
