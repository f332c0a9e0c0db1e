"""Stage 1: read the labelled reviews, verify their sha256, write data/raw/{train,test}.csv.

The source is the aclImdb archive (the default) or, with `format: table`, your own CSV,
JSON-lines or Parquet file of labelled texts (docs/own-data.md). Offline: set IMDB_ARCHIVE to
a local copy of the file `url` names; it is hash-checked against <file>.sha256 beside it, or
against download.sha256 when there is no such file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from imdb_sentiment.data import archive, tables
from imdb_sentiment.fileio import atomic_directory, write_json
from imdb_sentiment.layout import CACHE_DIR, RAW_DIR
from imdb_sentiment.params import ParamsError, run_stage
from imdb_sentiment.schema import DownloadParams

SOURCE_FILE = "source.json"


SECTION = "download"
Params = DownloadParams


def run(params: Params, raw_dir: Path = RAW_DIR, cache_dir: Path = CACHE_DIR) -> None:
    if params.format == "aclimdb":
        found, source = _read_archive(params, cache_dir), {"format": "aclimdb", "grouped": True}
    else:
        found, source = _read_tables(params, cache_dir)
    with atomic_directory(raw_dir) as scratch:
        archive.write_tables(found, scratch)
        write_json(scratch / SOURCE_FILE, source)
    for split, table in found.items():
        print(f"download: {split}: {len(table)} reviews -> {raw_dir / (split + '.csv')}")


def _read_archive(params: Params, cache_dir: Path) -> dict[str, pd.DataFrame]:
    if given := [k for k in params.table_keys() if getattr(params, k) is not None]:
        raise ParamsError(
            f"download.{given[0]} = {getattr(params, given[0])!r} is for format: table, but "
            "download.format is aclimdb; set it to null, or set format: table"
        )
    source, sha256 = archive.resolve_source(params.url, params.sha256)
    print(f"download: {source} (expecting sha256 {sha256})")
    path = archive.fetch_archive(source, sha256, cache_dir)
    with archive.open_verified(path, sha256) as stream:  # parse the very bytes that were hashed
        return archive.read_reviews(stream, str(path))


def _read_tables(params: Params, cache_dir: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    spec = _table_spec(params)
    source, sha256 = archive.resolve_source(params.url, params.sha256)
    train, dropped = tables.load_labelled(source, sha256, spec, cache_dir)
    dropped_test = 0
    if params.test_url is not None:
        test, dropped_test = tables.load_labelled(
            params.test_url, params.test_sha256, spec, cache_dir
        )
    else:
        seed = 42 if params.test_seed is None else params.test_seed
        key, sides = "download.test_fraction", ("training", "test")
        train, test = tables.split_off(train, params.test_fraction, seed, key, sides)
    found = {"train": train.reset_index(drop=True), "test": test.reset_index(drop=True)}
    for split, table in found.items():
        tables.check_both_labels(table, f"the {split} set")
    report = {
        "format": "table",
        "grouped": spec.group_column is not None,
        "group_column": spec.group_column,
        "test": "file" if params.test_url else f"fraction {params.test_fraction}",
        "empty_texts_dropped": {"train": dropped, "test": dropped_test},
    }
    return found, report


def _table_spec(params: Params) -> tables.TableSpec:
    for key in ("text_column", "label_column"):
        if getattr(params, key) is None:
            raise ParamsError(f"download.{key} is required with download.format: table")
    if (params.test_url is None) == (params.test_fraction is None):
        raise ParamsError(
            "download: give exactly one of test_url (a second file) and test_fraction "
            "(split off the one file)"
        )
    if (params.test_url is None) != (params.test_sha256 is None):
        raise ParamsError("download.test_url and download.test_sha256 go together")
    if params.test_seed is not None and params.test_fraction is None:
        raise ParamsError("download.test_seed is for test_fraction; set it to null")
    try:
        labels = tables.label_mapping(
            params.positive_labels, params.negative_labels, params.label_threshold, "download"
        )
    except ValueError as error:
        raise ParamsError(str(error)) from error
    return tables.TableSpec(
        params.text_column, params.label_column, labels, params.group_column,
        params.empty_texts or "drop",
    )  # fmt: skip


def main() -> int:
    return run_stage(SECTION, Params, run, (archive.ArchiveError,))


if __name__ == "__main__":
    sys.exit(main())
