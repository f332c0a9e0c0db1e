"""Stage 2: clean and tokenise, build the vocabulary, split validation by movie, encode.

Without movies (a table source with no group column) the validation split is stratified.

Writes data/prepared/{train,validation,test}.npz, the training reviews' short views and
sentences that the linear branch also learns (train_short_views.npz, train_sentences.npz),
the encoder config (vocabulary and cleaning options) that the raw-text model reuses, and
metrics/preprocess.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_sentiment.data import archive, dataset, text
from imdb_sentiment.data.tables import is_grouped, split_off
from imdb_sentiment.fileio import atomic_directory, write_json
from imdb_sentiment.layout import PREPARED_DIR, PREPROCESS_METRICS, RAW_DIR
from imdb_sentiment.params import run_stage
from imdb_sentiment.schema import PreprocessParams
from imdb_sentiment.scoring import evaluation

ENCODER_FILE = "encoder.json"
SOURCE_FILE = "source.json"  # written by download: which source, grouped or not


SECTION = "preprocess"
Params = PreprocessParams


def save_short_views(folder: Path, table: pd.DataFrame, encoder: text.TextEncoder) -> None:
    """The training reviews' short views, as evaluate cuts the test reviews, encoded: what
    the linear branch also learns (train.linear_branch_short_views)."""
    views = evaluation.encode_views(evaluation.short_views(table["text"].tolist()), encoder)
    copies = len(views)
    dataset.save_arrays(
        folder / f"{dataset.SHORT_VIEWS_SPLIT}.npz",
        np.tile(table["id"].to_numpy(), copies),
        np.concatenate(list(views.values())),
        np.tile(table["label"].to_numpy(), copies),
    )


def save_sentences(folder: Path, table: pd.DataFrame, encoder: text.TextEncoder) -> None:
    """Every sentence of at least 4 words of each training review, encoded
    :data:`~imdb_sentiment.data.dataset.SENTENCE_TOKENS` ids wide (at most a review's width),
    with its review's id and label: what the linear branch also learns
    (train.linear_branch_sentences)."""
    cut = [evaluation.long_sentences(review) for review in table["text"]]
    counts = [len(parts) for parts in cut]
    narrow = text.with_max_length(encoder, min(dataset.SENTENCE_TOKENS, encoder.max_length))
    dataset.save_arrays(
        folder / f"{dataset.SENTENCES_SPLIT}.npz",
        np.repeat(table["id"].to_numpy(), counts),
        narrow.encode([sentence for parts in cut for sentence in parts]),
        np.repeat(table["label"].to_numpy(), counts),
    )


def run(
    params: Params,
    raw_dir: Path = RAW_DIR,
    prepared_dir: Path = PREPARED_DIR,
    stats_file: Path = PREPROCESS_METRICS,
) -> None:
    train_table = archive.read_table(raw_dir, "train")
    test_table = archive.read_table(raw_dir, "test")
    key, sides = "preprocess.validation_fraction", ("training", "validation")
    train_part, validation = split_off(
        train_table, params.validation_fraction, params.seed, key, sides
    )
    tables = {"train": train_part, "validation": validation, "test": test_table}
    tokens = {
        name: text.tokenize(table["text"].tolist(), **text.cleaning_options(params))
        for name, table in tables.items()
    }
    # Fit on the training part only: validation and test words must be able to be unseen.
    vocabulary = text.build_vocabulary(tokens["train"].to_list(), params.vocab_size)
    encoder = text.TextEncoder(
        vocabulary,
        params.max_length,
        params.padding,
        params.truncating,
        **text.cleaning_options(params),
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
        save_short_views(scratch, train_part, encoder)
        save_sentences(scratch, train_part, encoder)
        text.save_encoder(encoder, scratch / ENCODER_FILE)
    shared = set(tables["train"]["movie"]) & set(tables["validation"]["movie"]) - {""}
    stats["movies_in_train_and_validation"] = len(shared)
    stats["validation_grouped"] = is_grouped(train_table)
    stats["texts_in_train_and_test"] = int(test_table["text"].isin(set(train_table["text"])).sum())
    if stats["texts_in_train_and_test"]:
        print(f"preprocess: {stats['texts_in_train_and_test']} test texts also appear in train")
    source = raw_dir / SOURCE_FILE
    stats["source"] = json.loads(source.read_text()) if source.is_file() else None
    write_json(stats_file, stats)


def main() -> int:
    return run_stage(SECTION, Params, run, (archive.ArchiveError,))


if __name__ == "__main__":
    sys.exit(main())
