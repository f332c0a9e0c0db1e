"""Stage 2: clean and tokenise, build the vocabulary, split validation by movie, encode.

Writes data/prepared/{train,validation,test}.npz, the encoder config (vocabulary and
cleaning options) that the raw-text model reuses, and metrics/preprocess.json.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imdb_sentiment import archive, dataset, text
from imdb_sentiment.fileio import atomic_directory, write_json
from imdb_sentiment.params import ParamsError, run_stage

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
STATS_FILE = Path("metrics/preprocess.json")
ENCODER_FILE = "encoder.json"


SECTION = "preprocess"


@dataclass(frozen=True)
class Params:
    """The preprocess section of params.yaml."""

    vocab_size: int = field(metadata={"min": 3})
    max_length: int = field(metadata={"min": 1})
    padding: Literal["pre", "post"]
    truncating: Literal["pre", "post"]
    validation_fraction: float = field(metadata={"gt": 0.0, "lt": 1.0})
    seed: int = field(metadata={"min": 0})
    lowercase: bool
    strip_html: bool
    strip_punctuation: bool

    @property
    def cleaning(self) -> dict[str, bool]:
        return text.cleaning_options(self)


def run(
    params: Params,
    raw_dir: Path = RAW_DIR,
    prepared_dir: Path = PREPARED_DIR,
    stats_file: Path = STATS_FILE,
) -> None:
    train_table = archive.read_table(raw_dir, "train")
    test_table = archive.read_table(raw_dir, "test")
    in_validation = dataset.split_by_movie(train_table, params.validation_fraction, params.seed)
    if in_validation.all() or not in_validation.any():
        raise ParamsError(
            f"preprocess.validation_fraction = {params.validation_fraction} leaves an empty "
            f"{'training' if in_validation.all() else 'validation'} set "
            f"({train_table['movie'].nunique()} movies in {raw_dir / 'train.csv'})"
        )
    tables = {
        "train": train_table[~in_validation],
        "validation": train_table[in_validation],
        "test": test_table,
    }
    tokens = {
        name: text.tokenize(table["text"].tolist(), **params.cleaning)
        for name, table in tables.items()
    }
    # Fit on the training part only: validation and test words must be able to be unseen.
    vocabulary = text.build_vocabulary(tokens["train"].to_list(), params.vocab_size)
    encoder = text.TextEncoder(
        vocabulary, params.max_length, params.padding, params.truncating, **params.cleaning
    )
    stats = {"vocabulary_words": len(vocabulary), "movies": {}}
    with atomic_directory(prepared_dir) as scratch:
        for name, table in tables.items():
            x = encoder.encode(table["text"].tolist())
            y = table["label"].to_numpy()
            dataset.save_arrays(scratch / f"{name}.npz", table["id"].to_numpy(), x, y)
            stats[name] = dataset.sequence_stats(tokens[name].row_lengths().numpy(), x, y)
            stats["movies"][name] = int(table["movie"].nunique())
            print(f"preprocess: {name}: {len(table)} reviews, {stats['movies'][name]} movies")
        text.save_encoder(encoder, scratch / ENCODER_FILE)
    shared = set(tables["train"]["movie"]) & set(tables["validation"]["movie"])
    stats["movies_in_train_and_validation"] = len(shared)
    write_json(stats_file, stats)


def main() -> int:
    return run_stage(SECTION, Params, run, (archive.ArchiveError,))


if __name__ == "__main__":
    sys.exit(main())
