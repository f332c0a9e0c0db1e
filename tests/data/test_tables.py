"""Your own labelled tables: formats, label mappings, groups and the params of extra sets."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from imdb_sentiment.data import tables
from imdb_sentiment.params import ParamsError
from tests.table_factory import review_table, write_table

WORDS = tables.LabelMapping(positive=("positive", "1"), negative=("negative", "0"))


def test_numbers_and_their_text_are_one_label_value():
    values = pd.Series(["positive", 1, 1.0, "0", 0.0, " negative "])
    assert WORDS.labels(values, "f").tolist() == [1, 1, 1, 0, 0, 0]


def test_a_threshold_maps_numbers_and_refuses_text_by_row():
    stars = tables.LabelMapping(threshold=7)
    assert stars.labels(pd.Series(["7", 6.5, 10]), "f").tolist() == [1, 0, 1]
    with pytest.raises(tables.TableError, match=r"f: row 2: label 'ten' is not in the mapping"):
        stars.labels(pd.Series(["7", "ten"]), "f")


@pytest.mark.parametrize(
    "positive, negative, threshold, message",
    [
        (None, None, None, "give positive_labels and negative_labels"),
        (["a"], None, None, "give positive_labels and negative_labels"),
        (["a"], ["b"], 3, "not both"),
        (["a", "b"], ["b"], None, r"\['b'\] listed as both positive and negative"),
    ],
)
def test_label_params_that_define_no_mapping_are_refused(positive, negative, threshold, message):
    with pytest.raises(ValueError, match=message):
        tables.label_mapping(positive, negative, threshold, "download")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".csv.gz", ".jsonl.gz"])
def test_every_format_reads_back_the_same_rows(tmp_path, suffix):
    frame = review_table(per_class=3)
    path = tmp_path / f"t{suffix}"
    write_table(frame, path)
    with open(path, "rb") as stream:
        read = tables.read_file(stream, str(path))
    assert read["review"].tolist() == frame["review"].tolist()
    assert read["sentiment"].tolist() == frame["sentiment"].tolist()


def test_an_unknown_file_type_is_named():
    with pytest.raises(tables.TableError, match="t.xlsx: cannot tell the format"):
        tables.read_file(io.BytesIO(b""), "t.xlsx")


def test_groups_keep_their_rows_together_and_rows_without_one_stand_alone():
    spec = tables.TableSpec("review", "sentiment", WORDS, group_column="product")
    frame = review_table(per_class=4, groups=2)
    frame.loc[0, "product"] = None
    table, dropped = tables.labelled_table(frame, spec, "f")
    keys = tables.group_keys(table)
    assert dropped == 0 and keys.iloc[0] == "row-0" and keys.iloc[1:].nunique() == 2


def entry(**changes) -> dict:
    base = {"name": "a", "url": "a.csv", "sha256": "0" * 64, "text_column": "t",
            "label_column": "l", "positive_labels": [1], "negative_labels": [0]}  # fmt: skip
    return base | changes


@pytest.mark.parametrize(
    "entries, message",
    [
        ([entry(), entry()], "evaluate.extra_sets: the name 'a' is used twice"),
        ([entry(name="a b")], r"extra_sets\[0\].name = 'a b': letters, digits"),
        ([entry(), entry(url=None)], r"extra_sets\[1\].url is required"),
        ([entry(sha256="abc")], r"extra_sets\[0\].sha256 = 'abc': expected 64 hex digits"),
        ([entry(empty_texts="keep")], r"extra_sets\[0\].empty_texts = 'keep'"),
        (["a.csv"], r"extra_sets\[0\] must be a mapping"),
    ],
)
def test_extra_set_params_are_checked_before_any_file_is_read(entries, message):
    with pytest.raises(ParamsError, match=message):
        tables.extra_sets(entries, "evaluate.extra_sets")
