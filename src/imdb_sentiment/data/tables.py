"""Labelled texts from your own CSV, JSON-lines or Parquet file, in the download stage's layout.

A table source names its text and label columns, how label values map to 0/1, and optionally a
group column (the movie, product or author) that keeps a group on one side of every split. The
result has the columns of the aclImdb tables (``id, rating, label, movie, text``), so that
preprocess, train, evaluate and serving never know which source was used: ``movie`` holds the
group ("" without one) and ``rating`` the original label value.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from imdb_sentiment.data import archive, dataset
from imdb_sentiment.data.archive import TABLE_COLUMNS, ArchiveError
from imdb_sentiment.params import ParamsError
from imdb_sentiment.schema import SHA256_PATTERN

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
EMPTY_TEXTS = ("drop", "error")


class TableError(ArchiveError):
    """A table file or its column params cannot give labelled texts; the message says why."""


@dataclass(frozen=True)
class LabelMapping:
    """Label values to 0/1: listed values (compared as text), or numbers at a threshold."""

    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    threshold: float | None = None  # value >= threshold is positive (stars, scores)

    def describe(self) -> str:
        if self.threshold is not None:
            return f"numbers, positive from {self.threshold:g}"
        return f"positive {list(self.positive)}, negative {list(self.negative)}"

    def labels(self, values: pd.Series, name: str) -> np.ndarray:
        """0/1 per value, or TableError naming the first value outside the mapping and its row."""
        if self.threshold is not None:
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna()
            labelled = (numbers >= self.threshold).astype(int)
        else:
            keys = values.map(_label_key)
            mapping = {**dict.fromkeys(self.negative, 0), **dict.fromkeys(self.positive, 1)}
            labelled = keys.map(mapping)
            bad = labelled.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            row = int(values.index[first]) + 1  # the file's row (1 = the first after a header)
            raise TableError(
                f"{name}: row {row}: label {values.iloc[first]!r} is not in the mapping "
                f"({self.describe()}); {int(bad.sum())} rows like it"
            )
        return labelled.to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class TableSpec:
    """Where a labelled table's texts, labels and groups are."""

    text_column: str
    label_column: str
    labels: LabelMapping
    group_column: str | None = None
    empty_texts: str = "drop"


def _label_key(value: Any) -> str:
    """1, 1.0 and "1" are one label: JSON and Parquet keep numbers, CSV gives text."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def label_mapping(
    positive: Sequence[Any] | None,
    negative: Sequence[Any] | None,
    threshold: float | None,
    key: str,
) -> LabelMapping:
    """A LabelMapping from params, or ValueError naming ``key`` when they do not define one."""
    if threshold is not None:
        if positive or negative:
            raise ValueError(f"{key}: give label_threshold or the label lists, not both")
        return LabelMapping(threshold=float(threshold))
    if not positive or not negative:
        raise ValueError(
            f"{key}: give positive_labels and negative_labels (for example [positive] and "
            "[negative]), or label_threshold for numeric labels"
        )
    mapping = LabelMapping(tuple(map(_label_key, positive)), tuple(map(_label_key, negative)))
    if overlap := set(mapping.positive) & set(mapping.negative):
        raise ValueError(f"{key}: {sorted(overlap)} listed as both positive and negative")
    return mapping


def read_file(stream: BinaryIO, name: str) -> pd.DataFrame:
    """Every row and column of a .csv, .jsonl or .parquet file (.csv.gz, .jsonl.gz too)."""
    lower = name.lower()
    compression = "gzip" if lower.endswith(".gz") else None
    base = lower.removesuffix(".gz")
    kind = next((k for suffix, k in SUFFIXES.items() if base.endswith(suffix)), None)
    if kind is None or (kind == "parquet" and compression):
        raise TableError(
            f"{name}: cannot tell the format from the name; expected .csv, .jsonl or .parquet "
            "(.csv.gz and .jsonl.gz too)"
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(stream)
        if kind == "jsonl":
            return pd.read_json(stream, lines=True, compression=compression, dtype=False)
        return pd.read_csv(stream, compression=compression, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as error:
        reason = f"{error.reason} near byte {error.start}"
        raise TableError(f"{name}: not valid UTF-8 ({reason})") from error
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise TableError(f"{name}: the gzip stream is truncated or corrupt ({error})") from error
    except Exception as error:  # pandas and pyarrow raise many kinds for a damaged file
        raise TableError(f"{name}: cannot be read as {kind}: {error}") from error


def labelled_table(frame: pd.DataFrame, spec: TableSpec, name: str) -> tuple[pd.DataFrame, int]:
    """The file's rows in the download layout, and how many empty texts were dropped."""
    wanted = [spec.text_column, spec.label_column] + [spec.group_column] * bool(spec.group_column)
    for column in wanted:
        if column not in frame.columns:
            present = ", ".join(map(str, frame.columns)) or "none"
            raise TableError(f"{name}: no column {column!r}; the columns are: {present}")
    texts = frame[spec.text_column].map(lambda v: "" if _missing(v) else str(v))
    empty = texts.str.strip() == ""
    if empty.any() and spec.empty_texts == "error":
        first = int(np.flatnonzero(empty.to_numpy())[0]) + 1
        raise TableError(
            f"{name}: {int(empty.sum())} empty or whitespace-only texts in {spec.text_column!r}, "
            f"the first at row {first} (download.empty_texts: drop skips them)"
        )
    kept = frame[~empty.to_numpy()]
    table = pd.DataFrame(
        {
            "id": np.arange(len(kept)),
            "rating": kept[spec.label_column].map(_label_key).to_numpy(),
            "label": spec.labels.labels(kept[spec.label_column], name),
            "movie": _groups(kept, spec.group_column),
            "text": texts[~empty].to_numpy(),
        }
    )
    return table[TABLE_COLUMNS], int(empty.sum())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _groups(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None:
        return np.full(len(frame), "", dtype=object)
    return frame[column].map(lambda v: "" if _missing(v) else _label_key(v)).to_numpy(dtype=object)


def check_both_labels(table: pd.DataFrame, name: str) -> None:
    """Refuse a set with one class only: nothing can be learnt or measured from it."""
    counts = table["label"].value_counts()
    if len(counts) < 2:  # no rows at all: no label either
        found = {int(k): int(v) for k, v in counts.items()}
        raise TableError(
            f"{name}: needs both labels, found {found or 'no rows'} (label: row count)"
        )


def group_keys(table: pd.DataFrame) -> pd.Series:
    """What a split keeps together: the group, or each row alone where there is none."""
    ids = "row-" + table["id"].astype(str)
    return table["movie"].where(table["movie"] != "", ids)


def split_off(
    table: pd.DataFrame, fraction: float, seed: int, key: str, sides: tuple[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, part): about ``fraction`` of each label split off by whole groups, seeded.

    Without a group column every row is its own group, so the split is a stratified one.
    ``sides`` names the two parts in the error for a fraction that leaves one empty.
    """
    groups = group_keys(table)
    in_part = dataset.split_by_movie(table.assign(movie=groups), fraction, seed)
    if in_part.all() or not in_part.any():
        raise ParamsError(
            f"{key} = {fraction} leaves an empty {sides[0] if in_part.all() else sides[1]} set "
            f"({len(table)} rows in {groups.nunique()} groups); it needs more rows or groups, "
            "or another fraction"
        )
    return table[~in_part], table[in_part]


def is_grouped(table: pd.DataFrame) -> bool:
    return bool((table["movie"] != "").any())


def load_labelled(
    source: str, sha256: str, spec: TableSpec, cache_dir: Path
) -> tuple[pd.DataFrame, int]:
    """Fetch a table file (a path, file:// or http(s) URL), check its sha256, and read the
    very bytes that were hashed into the download layout; with the count of dropped texts."""
    print(f"{source} (expecting sha256 {sha256.lower()})")
    path = archive.fetch_archive(source, sha256.lower(), cache_dir)
    with archive.open_verified(path, sha256.lower()) as stream:
        frame = read_file(stream, str(path))
    table, dropped = labelled_table(frame, spec, str(path))
    if dropped:
        print(f"{path}: dropped {dropped} empty or whitespace-only texts")
    return table, dropped


@dataclass(frozen=True)
class ExtraSet:
    """A further labelled test set that evaluate scores under its own name."""

    name: str
    url: str
    sha256: str
    spec: TableSpec


EXTRA_SET_KEYS = {
    "name", "url", "sha256", "text_column", "label_column",
    "positive_labels", "negative_labels", "label_threshold", "empty_texts",
}  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def extra_set(entry: Any, key: str) -> ExtraSet:
    """An ExtraSet from one params entry, or ParamsError naming ``key`` and what is wrong."""
    if not isinstance(entry, dict):
        raise ParamsError(f"{key} must be a mapping with name, url, sha256, ..., got {entry!r}")
    if unknown := sorted(set(entry) - EXTRA_SET_KEYS):
        raise ParamsError(f"{key}: unknown key {unknown[0]!r}; known: {sorted(EXTRA_SET_KEYS)}")
    for required in ("name", "url", "sha256", "text_column", "label_column"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise ParamsError(f"{key}.{required} is required (a string)")
    if not _NAME.fullmatch(entry["name"]):
        raise ParamsError(f"{key}.name = {entry['name']!r}: letters, digits, - and _ only")
    if not re.fullmatch(SHA256_PATTERN, entry["sha256"]):
        raise ParamsError(f"{key}.sha256 = {entry['sha256']!r}: expected 64 hex digits")
    if entry.get("empty_texts", "drop") not in EMPTY_TEXTS:
        raise ParamsError(f"{key}.empty_texts = {entry['empty_texts']!r}: drop or error")
    try:
        labels = label_mapping(
            entry.get("positive_labels"), entry.get("negative_labels"),
            entry.get("label_threshold"), key,
        )  # fmt: skip
    except ValueError as error:
        raise ParamsError(str(error)) from error
    spec = TableSpec(
        entry["text_column"], entry["label_column"], labels,
        empty_texts=entry.get("empty_texts", "drop"),
    )  # fmt: skip
    return ExtraSet(entry["name"], entry["url"], entry["sha256"], spec)


def extra_sets(entries: list, key: str) -> list[ExtraSet]:
    """Every entry checked, names unique, before any file is read."""
    found = [extra_set(entry, f"{key}[{index}]") for index, entry in enumerate(entries)]
    names = [item.name for item in found]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ParamsError(f"{key}: the name {duplicated[0]!r} is used twice")
    return found
