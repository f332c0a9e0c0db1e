"""Build tiny labelled tables (CSV, JSON lines, Parquet) for tests; never a real data set."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pandas as pd

from tests.archive_factory import review_text


def review_table(per_class: int = 24, groups: int = 8, seed: int = 0) -> pd.DataFrame:
    """Kaggle-style columns: ``review``, ``sentiment`` (positive/negative), ``product``."""
    rng = random.Random(seed)
    rows = [
        {
            "review": review_text(label, rng),
            "sentiment": "positive" if label else "negative",
            "stars": rng.choice([7, 8, 9, 10] if label else [1, 2, 3, 4]),
            "product": f"p{seed}-{k % groups}",
        }
        for k in range(per_class)
        for label in (0, 1)
    ]
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, path: Path) -> str:
    """Write ``frame`` in the format ``path``'s name says; return the file's sha256."""
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        text = (
            frame.to_json(orient="records", lines=True)
            if name.endswith(".jsonl")
            else frame.to_csv(index=False, lineterminator="\n")
        )
        data = text.encode("utf-8")
        path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return sha256_of(path)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


TABLE_PARAMS = {
    "format": "table",
    "text_column": "review",
    "label_column": "sentiment",
    "positive_labels": ["positive"],
    "negative_labels": ["negative"],
}
