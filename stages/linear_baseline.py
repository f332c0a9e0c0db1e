"""Stage: the linear baseline (NB-weighted logistic regression on word n-grams).

Fits on the same training reviews as the LSTM (preprocess's split) and writes
data/linear_baseline/model.pkl, its out-of-fold P(positive) for every training review and
its P(positive) for every validation review (out_of_fold.npz, in data/prepared's row order:
the train stage may learn from them), and metrics/linear_baseline.json. Evaluate scores it
on the test set beside the LSTM. The logic lives in :mod:`imdb_sentiment.training.linear`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from imdb_sentiment.data import archive, dataset, text
from imdb_sentiment.fileio import atomic_directory, write_json
from imdb_sentiment.layout import LINEAR_DIR, LINEAR_METRICS, PREPARED_DIR, RAW_DIR
from imdb_sentiment.params import run_stage
from imdb_sentiment.schema import LinearBaselineParams
from imdb_sentiment.training import linear

SECTION = "linear_baseline"
Params = LinearBaselineParams


def run(
    params: Params,
    raw_dir: Path = RAW_DIR,
    prepared_dir: Path = PREPARED_DIR,
    out_dir: Path = LINEAR_DIR,
    metrics_file: Path = LINEAR_METRICS,
) -> dict:
    cleaning = text.load_encoder(prepared_dir / "encoder.json").cleaning
    table = archive.read_table(raw_dir, "train")
    splits = {}
    for split in ("train", "validation"):
        ids, _, y = dataset.load_arrays(prepared_dir, split)
        splits[split] = (archive.texts_of(table, ids, y, raw_dir / "train.csv"), y)
    (train_texts, y_train), (val_texts, y_val) = splits["train"], splits["validation"]

    started = time.perf_counter()
    cleaned = linear.clean_texts(train_texts, cleaning)
    pipeline, out_of_fold = linear.fit_nb_model(
        cleaned, y_train, params.ngram_max, params.C, params.nb_alpha, params.folds, params.seed
    )
    model = linear.LinearModel(pipeline, cleaning)
    validation = model.probabilities(val_texts)
    with atomic_directory(out_dir) as scratch:
        model.save(scratch / "model.pkl")
        np.savez(scratch / "out_of_fold.npz", train=out_of_fold, validation=validation)
    report = {
        "val_accuracy": round(float(np.mean((validation >= 0.5) == y_val)), 4),
        "out_of_fold_accuracy": round(float(np.mean((out_of_fold >= 0.5) == y_train)), 4),
        "features": int(len(model.pipeline[0].vocabulary_)),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(metrics_file, report)
    print(
        f"linear_baseline: validation accuracy {report['val_accuracy']:.4f} "
        f"({report['features']} n-grams; fitted, with {params.folds} out-of-fold models, "
        f"in {report['fit_seconds']:.1f} s)"
    )
    return report


def main() -> int:
    return run_stage(SECTION, Params, run, (FileNotFoundError, archive.ArchiveError))


if __name__ == "__main__":
    sys.exit(main())
