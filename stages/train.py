"""Stage 3: train the LSTM classifier with gradient clipping and early stopping.

Saves models/classifier.keras (int ids in) and models/end_to_end.keras (raw strings in),
the per-epoch history to plots/train/, and metrics/train.json.
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

from imdb_sentiment import dataset, plotting, text
from imdb_sentiment.fileio import atomic_directory, atomic_file, write_json
from imdb_sentiment.model import (
    BucketedBatches,
    build_classifier,
    build_end_to_end,
    compile_classifier,
    training_callbacks,
)
from imdb_sentiment.params import run_stage

PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
METRICS_FILE = Path("metrics/train.json")
PLOTS_DIR = Path("plots/train")
CLASSIFIER_FILE = "classifier.keras"
END_TO_END_FILE = "end_to_end.keras"


SECTION = "train"


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
    learning_rate: float = field(metadata={"gt": 0.0})
    clipnorm: float = field(metadata={"gt": 0.0})
    ema_momentum: float = field(metadata={"min": 0.0, "lt": 1.0})
    batch_size: int = field(metadata={"min": 1})
    max_epochs: int = field(metadata={"min": 1})
    bucket_by_length: bool
    early_stopping_monitor: Literal["val_loss", "val_accuracy"]
    early_stopping_patience: int = field(metadata={"min": 0})
    early_stopping_min_delta: float = field(metadata={"min": 0.0})
    seed: int = field(metadata={"min": 0})


def run(
    params: Params,
    prepared_dir: Path = PREPARED_DIR,
    models_dir: Path = MODELS_DIR,
    metrics_file: Path = METRICS_FILE,
    plots_dir: Path = PLOTS_DIR,
) -> None:
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    encoder = text.load_encoder(prepared_dir / "encoder.json")
    _, x_train, y_train = dataset.load_arrays(prepared_dir, "train")
    _, x_val, y_val = dataset.load_arrays(prepared_dir, "validation")
    classifier = build_classifier(
        encoder.vocab_size,
        params.embedding_dim,
        params.lstm_units,
        params.lstm_layers,
        params.bidirectional,
        params.dropout,
        params.pooling,
        params.embedding_dropout,
    )
    compile_classifier(classifier, params.learning_rate, params.clipnorm, params.ema_momentum)
    stopper = keras.callbacks.EarlyStopping(
        monitor=params.early_stopping_monitor,
        patience=params.early_stopping_patience,
        min_delta=params.early_stopping_min_delta,
        restore_best_weights=True,
        verbose=1,
    )
    started = time.perf_counter()
    history = classifier.fit(
        BucketedBatches(
            x_train, y_train, params.batch_size, params.seed, params.bucket_by_length
        ).as_dataset(),
        validation_data=BucketedBatches(
            x_val, y_val, params.batch_size, None, params.bucket_by_length
        ).as_dataset(),
        epochs=params.max_epochs,
        callbacks=training_callbacks(stopper, params.ema_momentum),
        shuffle=False,  # BucketedBatches already shuffles, seeded
        verbose=2,
    )
    seconds = time.perf_counter() - started
    epochs = pd.DataFrame(history.history)
    epochs.insert(0, "epoch", np.arange(1, len(epochs) + 1))

    with atomic_directory(models_dir) as scratch:
        classifier.save(scratch / CLASSIFIER_FILE)
        build_end_to_end(encoder, classifier).save(scratch / END_TO_END_FILE)
    with atomic_file(plots_dir / "history.csv") as scratch:
        epochs.round(6).to_csv(scratch, index=False, lineterminator="\n")
    plotting.training_curves(epochs, plots_dir / "curves.png")
    write_json(metrics_file, _summary(epochs, stopper, params, seconds, len(y_train)))


def _summary(
    epochs: pd.DataFrame,
    stopper: keras.callbacks.EarlyStopping,
    params: Params,
    seconds: float,
    reviews: int,
) -> dict:
    best = epochs.iloc[stopper.best_epoch]
    return {
        "best_epoch": int(best["epoch"]),
        "epochs_run": len(epochs),
        "stopped_early": len(epochs) < params.max_epochs,
        "best_val_loss": round(float(best["val_loss"]), 4),
        "best_val_accuracy": round(float(best["val_accuracy"]), 4),
        "train_seconds": round(seconds, 1),
        "train_reviews_per_second": round(reviews * len(epochs) / seconds, 1),
    }


def main() -> int:
    return run_stage(SECTION, Params, run, (FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main())
