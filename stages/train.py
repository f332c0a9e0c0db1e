"""Stage: train the LSTM classifier (by default two teachers distilled into one student).

With ``linear_teacher_weight`` > 0 the student also learns from the linear baseline stage's
out-of-fold scores (data/linear_baseline/out_of_fold.npz).

Saves models/classifier.keras (int ids in) and models/end_to_end.keras (raw strings in), each
member's per-epoch history to plots/train/history/, every member's curves in
plots/train/{loss,accuracy}.csv and curves.png, and metrics/train.json. The orchestration
lives in :mod:`imdb_sentiment.training`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Before TensorFlow, which loads OpenMP (through Keras and scikit-learn) and so fixes its
# settings. numba's training loops run on OpenMP, and its idle threads spin before they sleep:
# with two views' loops at once, spinning threads hold the cores that the other loop and
# TensorFlow's ops need (docs/benchmarks.md). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from imdb_sentiment import dataset, distribute, plotting, text, training
from imdb_sentiment.fileio import atomic_directory, atomic_file, write_json
from imdb_sentiment.model import build_end_to_end, save_model
from imdb_sentiment.params import run_stage

PREPARED_DIR = Path("data/prepared")
LINEAR_SCORES = Path("data/linear_baseline/out_of_fold.npz")
MODELS_DIR = Path("models")
METRICS_FILE = Path("metrics/train.json")
PLOTS_DIR = Path("plots/train")
CLASSIFIER_FILE = "classifier.keras"
END_TO_END_FILE = "end_to_end.keras"
SECTION = "train"


@dataclass(frozen=True)
class Params:
    """The train section of params.yaml (docs/parameters.md)."""

    embedding_dim: int = field(metadata={"min": 1})
    lstm_units: int = field(metadata={"min": 1})
    lstm_layers: int = field(metadata={"min": 1})
    bidirectional: bool
    lstm_kernel: Literal["hoisted", "keras"]
    dropout: float = field(metadata={"min": 0.0, "lt": 1.0})
    embedding_dropout: float = field(metadata={"min": 0.0, "lt": 1.0})
    pooling: Literal["last", "max", "mean_max"]
    pair_vocab_size: int = field(metadata={"min": 0})
    triple_vocab_size: int = field(metadata={"min": 0})
    learning_rate: float = field(metadata={"gt": 0.0})
    learning_rate_schedule: Literal["constant", "linear"]
    clipnorm: float = field(metadata={"gt": 0.0})
    rowwise_embedding_updates: bool
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
    linear_teacher_weight: float = field(metadata={"min": 0.0, "max": 1.0})
    window_copies: int = field(metadata={"min": 0})
    window_min_tokens: int = field(metadata={"min": 1})
    window_max_tokens: int = field(metadata={"min": 1})
    calibrate: bool
    seed: int = field(metadata={"min": 0})


def run(
    params: Params,
    prepared_dir: Path = PREPARED_DIR,
    models_dir: Path = MODELS_DIR,
    metrics_file: Path = METRICS_FILE,
    plots_dir: Path = PLOTS_DIR,
    linear_scores: Path = LINEAR_SCORES,
) -> None:
    training.check_ngram_vocab_sizes(params)
    training.check_windows(params)
    placement = distribute.placement_from_environment()  # before any other TensorFlow op
    tf.config.experimental.enable_op_determinism()
    encoder = text.load_encoder(prepared_dir / "encoder.json")
    _, x_train, y_train = dataset.load_arrays(prepared_dir, "train")
    _, x_val, y_val = dataset.load_arrays(prepared_dir, "validation")
    linear_teacher = None
    if params.distill and params.linear_teacher_weight:
        if not linear_scores.is_file():
            raise FileNotFoundError(
                f"{linear_scores}: not found; run the linear_baseline stage first (or set "
                "train.linear_teacher_weight: 0)"
            )
        with np.load(linear_scores) as scores:
            linear_teacher = scores["train"]
    result = training.train_classifier(
        params, (x_train, y_train), (x_val, y_val), encoder.vocab_size, placement, linear_teacher
    )
    if not placement.writes_outputs:  # the chief writes; the other workers leave no trace
        return
    with atomic_directory(models_dir) as scratch:
        save_model(result.classifier, scratch / CLASSIFIER_FILE)
        save_model(build_end_to_end(encoder, result.classifier), scratch / END_TO_END_FILE)
    with atomic_directory(plots_dir / "history") as scratch:
        training.write_histories(result.members, scratch)
    for name, table in training.curve_tables(result.members).items():
        with atomic_file(plots_dir / f"{name}.csv") as scratch:
            table.to_csv(scratch, index=False, lineterminator="\n")
    histories = {member.name: member.history for member in result.members}
    charts = (training.loss_column(result.members[0].history), "accuracy")
    plotting.training_curves(histories, plots_dir / "curves.png", charts)
    write_json(metrics_file, training.summary(result, len(y_train)))


def main() -> int:
    return run_stage(SECTION, Params, run, (FileNotFoundError, distribute.ClusterError))


if __name__ == "__main__":
    sys.exit(main())
