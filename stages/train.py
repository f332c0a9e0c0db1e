"""Stage: train the student, the LSTM classifier that is saved and served.

It learns the average P(positive) of the teachers named by ``teachers.seeds`` (their stages'
data/teachers/<seed>.npz; the labels if there are none), blended with weight
``linear_teacher_weight`` with the linear baseline's out-of-fold scores
(data/linear_baseline/out_of_fold.npz). It reads the train section of params.yaml, and the
seed list only to know which teachers to read. With ``linear_branch_short_views`` the linear
branch also learns the training reviews' short views that preprocess cut
(data/prepared/train_short_views.npz), and with ``linear_branch_sentences`` their sentences
(data/prepared/train_sentences.npz).

Saves models/classifier.keras (int ids in) and models/end_to_end.keras (raw strings in; both
:mod:`imdb_sentiment.training.export`), models/model_card.json
(:mod:`imdb_sentiment.network.model_card`), metrics/train.json, and each epoch's figures in
dvclive/student/ as the epoch ends (DVCLive).
The orchestration lives in :mod:`imdb_sentiment.training.fitting`.
"""

from __future__ import annotations

import os

# Before TensorFlow loads OpenMP (through Keras and scikit-learn), which fixes its settings:
# numba's training loops run on OpenMP, and idle threads that spin hold the cores that the
# other view's loop and TensorFlow's ops need (docs/benchmarks.md). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import imdb_sentiment  # noqa: F401  (first: quiets TensorFlow before it loads)

# isort: split
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from imdb_sentiment import layout
from imdb_sentiment.data import dataset, text
from imdb_sentiment.fileio import atomic_directory, write_json
from imdb_sentiment.layout import (
    LINEAR_SCORES,
    MODELS_DIR,
    PREPARED_DIR,
    TEACHERS_DIR,
    TRAIN_METRICS,
)
from imdb_sentiment.network import model_card
from imdb_sentiment.params import DEFAULT_PARAMS_FILE, load_stage_params, run_stage
from imdb_sentiment.schema import StudentParams, TeachersParams
from imdb_sentiment.training import distribute, export, fitting, live

LIVE_DIR = layout.LIVE_DIR / "student"
SECTION = "train"
Params = StudentParams


class TeacherScoresError(Exception):
    """A teacher's scores file that does not fit the prepared data (made from other data)."""


class PreparedDataError(Exception):
    """Prepared files that do not fit each other (made from other data)."""


def teacher_seeds(params_file: Path = DEFAULT_PARAMS_FILE) -> list[int]:
    return load_stage_params("teachers", TeachersParams, params_file).seeds


def load_teachers(teachers_dir: Path, seeds: list[int], reviews: int) -> np.ndarray | None:
    """The teachers' average P(positive) of each training review (None without teachers)."""
    scores = []
    for seed in seeds:
        path = teachers_dir / f"{seed}.npz"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not found; run its stage first (dvc repro teacher@{seed})"
            )
        with np.load(path) as saved:
            scores.append(saved["train"])
        if len(scores[-1]) != reviews:
            raise TeacherScoresError(
                f"{path}: holds {len(scores[-1])} training reviews' scores, not {reviews}; "
                f"run its stage again (dvc repro teacher@{seed})"
            )
    return fitting.average_teachers(scores) if scores else None


def load_linear_scores(params: Params, linear_scores: Path) -> np.ndarray | None:
    if not params.linear_teacher_weight:
        return None
    if not linear_scores.is_file():
        raise FileNotFoundError(
            f"{linear_scores}: not found; run the linear_baseline stage first (or set "
            "train.linear_teacher_weight: 0)"
        )
    with np.load(linear_scores) as scores:
        return scores["train"]


def load_short_views(params: Params, prepared_dir: Path, ids: np.ndarray) -> np.ndarray | None:
    """The training reviews' short views (preprocess), where the linear branch learns them."""
    if not (params.linear_branch and params.linear_branch_short_views):
        return None
    view_ids, x, _ = dataset.load_arrays(prepared_dir, dataset.SHORT_VIEWS_SPLIT)
    if len(view_ids) % len(ids) or not np.array_equal(view_ids, np.resize(ids, len(view_ids))):
        raise PreparedDataError(
            f"{prepared_dir / dataset.SHORT_VIEWS_SPLIT}.npz: its reviews are not the training "
            "split's, view after view; run the preprocess stage again (dvc repro preprocess)"
        )
    return x


def load_sentences(
    params: Params, prepared_dir: Path, ids: np.ndarray, labels: np.ndarray
) -> fitting.Sentences | None:
    """The training reviews' sentences (preprocess) and their weights, where the linear branch
    learns them."""
    if not (params.linear_branch and params.linear_branch_sentences):
        return None
    sentence_ids, x, y = dataset.load_arrays(prepared_dir, dataset.SENTENCES_SPLIT)
    review = sentence_reviews(ids, labels, sentence_ids, y)
    if (review < 0).any():
        raise PreparedDataError(
            f"{prepared_dir / dataset.SENTENCES_SPLIT}.npz: its sentences are not the training "
            "split's reviews'; run the preprocess stage again (dvc repro preprocess)"
        )
    weights = fitting.sentence_weights(params.linear_branch_sentences, review)
    return fitting.Sentences(x, y, weights)


def sentence_reviews(
    ids: np.ndarray, labels: np.ndarray, sentence_ids: np.ndarray, sentence_labels: np.ndarray
) -> np.ndarray:
    """Each sentence's review, as its index in the training split (-1: not in it)."""
    # An id alone is not unique (the archive numbers each label's reviews apart): id and label.
    keys = ids.astype(np.int64) * 2 + labels.astype(np.int64)
    return pd.Index(keys).get_indexer(sentence_ids.astype(np.int64) * 2 + sentence_labels)


def run(
    params: Params,
    seeds: list[int] | None = None,
    prepared_dir: Path = PREPARED_DIR,
    models_dir: Path = MODELS_DIR,
    metrics_file: Path = TRAIN_METRICS,
    live_dir: Path = LIVE_DIR,
    linear_scores: Path = LINEAR_SCORES,
    teachers_dir: Path = TEACHERS_DIR,
) -> dict:
    """``seeds``: the teachers to learn from (None: teachers.seeds of params.yaml)."""
    fitting.check_ngram_vocab_sizes(params, SECTION)
    fitting.check_windows(params)
    seeds = teacher_seeds() if seeds is None else seeds
    placement = distribute.placement_from_environment()  # before any other TensorFlow op
    tf.config.experimental.enable_op_determinism()
    encoder = text.load_encoder(prepared_dir / "encoder.json")
    ids, *train = dataset.load_arrays(prepared_dir, "train")
    validation = dataset.load_arrays(prepared_dir, "validation")[1:]
    teachers = load_teachers(teachers_dir, seeds, len(train[1]))
    linear_teacher = load_linear_scores(params, linear_scores)
    short_views = load_short_views(params, prepared_dir, ids)
    sentences = load_sentences(params, prepared_dir, ids, train[1])
    logger = live.start(live_dir, placement.writes_outputs)
    result = fitting.train_student(
        params, tuple(train), validation, encoder.vocab_size, placement, teachers,
        linear_teacher, logger, short_views, sentences,
    )  # fmt: skip
    summary = fitting.summary(result, len(train[1]))
    live.finish(logger, {"val_accuracy": summary["val_accuracy"], **summary["student"]})
    if placement.writes_outputs:  # the chief writes; the other workers leave no trace
        with atomic_directory(models_dir) as scratch:
            export.write_models(result.classifier, encoder, scratch)
            made_by = {"train": params, "teachers": {"seeds": seeds}}
            model_card.write_card(scratch, made_by, summary, len(train[1]))
        write_json(metrics_file, summary)
    return summary


def main() -> int:
    errors = (
        FileNotFoundError,
        TeacherScoresError,
        PreparedDataError,
        distribute.ClusterError,
        live.LiveLoggingError,
    )
    return run_stage(SECTION, Params, run, errors)


if __name__ == "__main__":
    sys.exit(main())
