"""Stage teacher@<seed>: one LSTM teacher, trained on the labels from its seed.

dvc.yaml runs one such stage per seed of ``teachers.seeds`` (a ``matrix:``), each in its own
process, reading the teacher section of params.yaml. A teacher is never served: it keeps its
P(positive) of every training and validation review in data/teachers/<seed>.npz, which the
train stage's student learns from. Each epoch's figures go to dvclive/teacher-<seed>/ as the
epoch ends (DVCLive), with the best epoch's in its metrics.json.

    python stages/teacher.py --seed 42
"""

from __future__ import annotations

import os

# Before TensorFlow loads OpenMP (through Keras and scikit-learn), which fixes its settings:
# numba's training loops run on OpenMP, and idle threads that spin hold the cores that the
# other view's loop and TensorFlow's ops need (docs/benchmarks.md). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import imdb_sentiment  # noqa: F401  (first: quiets TensorFlow before it loads)

# isort: split
import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from imdb_sentiment.data import dataset, text
from imdb_sentiment.fileio import atomic_file
from imdb_sentiment.layout import LIVE_DIR, PREPARED_DIR, TEACHERS_DIR
from imdb_sentiment.params import run_stage
from imdb_sentiment.schema import NetworkParams
from imdb_sentiment.training import distribute, fitting, live

SECTION = "teacher"
Params = NetworkParams


def scores_file(teachers_dir: Path, seed: int) -> Path:
    return teachers_dir / f"{seed}.npz"


def run(
    params: Params,
    seed: int,
    prepared_dir: Path = PREPARED_DIR,
    teachers_dir: Path = TEACHERS_DIR,
    live_dir: Path = LIVE_DIR,
) -> dict:
    fitting.check_ngram_vocab_sizes(params, SECTION)
    placement = distribute.placement_from_environment()  # before any other TensorFlow op
    tf.config.experimental.enable_op_determinism()
    encoder = text.load_encoder(prepared_dir / "encoder.json")
    train = dataset.load_arrays(prepared_dir, "train")[1:]
    validation = dataset.load_arrays(prepared_dir, "validation")[1:]
    logger = live.start(live_dir / f"teacher-{seed}", placement.writes_outputs)
    taught = fitting.train_teacher(
        params, seed, train, validation, encoder.vocab_size, placement, logger
    )
    summary = fitting.member_summary(taught.member, taught.seconds)
    live.finish(logger, summary)
    if placement.writes_outputs:  # the chief writes; the other workers leave no trace
        with atomic_file(scores_file(teachers_dir, seed)) as scratch, open(scratch, "wb") as out:
            np.savez(out, train=taught.train, validation=taught.validation)
    return summary


def parse_seed(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Train one LSTM teacher (a dvc.yaml stage).")
    parser.add_argument("--seed", type=int, required=True, help="its seed: one of teachers.seeds")
    return parser.parse_args(argv).seed


def main(argv: list[str] | None = None) -> int:
    seed = parse_seed(sys.argv[1:] if argv is None else argv)
    errors = (FileNotFoundError, distribute.ClusterError, live.LiveLoggingError)
    return run_stage(SECTION, Params, functools.partial(run, seed=seed), errors)


if __name__ == "__main__":
    sys.exit(main())
