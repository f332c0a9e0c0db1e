"""Your own labelled tables: formats, label mappings, groups and the params of extra sets."""

from __future__ import annotations

import gzip
import hashlib
import io
import re

import numpy as np
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


def test_mapping_errors_describe_the_mapping_and_count_the_rows():
    with pytest.raises(tables.TableError) as raised:
        WORDS.labels(pd.Series(["positive", "meh", "meh"]), "f")
    assert str(raised.value) == (
        "f: row 2: label 'meh' is not in the mapping "
        "(positive ['positive', '1'], negative ['negative', '0']); 2 rows like it"
    )
    with pytest.raises(tables.TableError, match=r"\(numbers, positive from 7\); 1 rows like it$"):
        tables.LabelMapping(threshold=7).labels(pd.Series(["x"]), "f")
    assert tables.LabelMapping(threshold=7).labels(pd.Series([8]), "f").dtype == np.int64
    assert WORDS.labels(pd.Series(["1"]), "f").dtype == np.int64


def test_label_params_messages_and_the_threshold_as_a_number():
    with pytest.raises(ValueError, match=r"^download: give label_threshold or the label lists"):
        tables.label_mapping(["a"], None, 3, "download")
    with pytest.raises(ValueError) as raised:
        tables.label_mapping(None, ["b"], None, "download")
    assert str(raised.value) == (
        "download: give positive_labels and negative_labels (for example [positive] and "
        "[negative]), or label_threshold for numeric labels"
    )
    assert tables.label_mapping(None, None, 7, "k") == tables.LabelMapping(threshold=7.0)


def test_read_file_errors_name_the_file_and_the_problem():
    with pytest.raises(tables.TableError) as raised:
        tables.read_file(io.BytesIO(b"text,label\ncaf\xe9,1\n"), "t.csv")
    assert re.fullmatch(r"t\.csv: not valid UTF-8 \(.+ near byte \d+\)", str(raised.value))
    gz = io.BytesIO(gzip.compress(b"text,label\na,1\n")[:-12])
    with pytest.raises(tables.TableError, match=r"^t\.csv\.gz: the gzip stream is truncated"):
        tables.read_file(gz, "t.csv.gz")
    with pytest.raises(tables.TableError, match=r"^t\.parquet: cannot be read as parquet: "):
        tables.read_file(io.BytesIO(b"not parquet"), "t.parquet")
    with pytest.raises(tables.TableError, match=r"^t\.parquet\.gz: cannot tell the format"):
        tables.read_file(io.BytesIO(b""), "t.parquet.gz")


def test_text_files_keep_values_that_look_like_numbers_or_missing_as_text():
    lines = b'{"text": "007", "label": "01"}\n{"text": "NA", "label": "1"}\n'
    read = tables.read_file(io.BytesIO(lines), "t.jsonl")
    assert read["text"].tolist() == ["007", "NA"] and read["label"].tolist() == ["01", "1"]
    read = tables.read_file(io.BytesIO(b"text,label\n007,01\nNA,1\nnull,\n"), "t.csv")
    assert read.to_dict("list") == {"text": ["007", "NA", "null"], "label": ["01", "1", ""]}


def test_labelled_table_names_missing_columns_and_empty_texts():
    spec = tables.TableSpec("review", "sentiment", WORDS, empty_texts="error")
    with pytest.raises(tables.TableError) as raised:
        tables.labelled_table(pd.DataFrame({"a": [1], "b": [2]}), spec, "f")
    assert str(raised.value) == "f: no column 'review'; the columns are: a, b"
    with pytest.raises(tables.TableError, match="the columns are: none$"):
        tables.labelled_table(pd.DataFrame(), spec, "f")
    frame = pd.DataFrame({"review": ["good", None, " ", "bad"], "sentiment": [1, 0, 1, 0]})
    with pytest.raises(tables.TableError) as raised:
        tables.labelled_table(frame, spec, "f")
    assert str(raised.value) == (
        "f: 2 empty or whitespace-only texts in 'review', the first at row 2 "
        "(download.empty_texts: drop skips them)"
    )
    table, dropped = tables.labelled_table(
        frame, tables.TableSpec("review", "sentiment", WORDS), "f"
    )
    assert dropped == 2 and table.to_dict("list") == {
        "id": [0, 1], "rating": ["1", "0"], "label": [1, 0], "movie": ["", ""],
        "text": ["good", "bad"],
    }  # fmt: skip
    assert not tables.is_grouped(table)


def test_both_labels_are_required_and_named():
    with pytest.raises(tables.TableError) as raised:
        tables.check_both_labels(pd.DataFrame({"label": [1, 1]}), "f")
    assert str(raised.value) == "f: needs both labels, found {1: 2} (label: row count)"
    with pytest.raises(tables.TableError, match=r"found no rows \(label: row count\)$"):
        tables.check_both_labels(pd.DataFrame({"label": []}), "f")
    tables.check_both_labels(pd.DataFrame({"label": [0, 1]}), "f")


def test_split_off_takes_whole_groups_and_names_the_empty_side():
    table = pd.DataFrame(
        {"id": range(8), "label": [0, 1] * 4, "movie": ["a", "a", "b", "b", "", "", "", ""]}
    )
    rest, part = tables.split_off(table, 0.5, 0, "download.test_fraction", ("training", "test"))
    assert len(rest) + len(part) == 8 and set(rest.id).isdisjoint(part.id)
    assert part.label.value_counts().to_dict() == {0: 2, 1: 2}
    for group in ("a", "b"):
        assert (rest.movie == group).sum() in (0, 2)
    assert tables.is_grouped(table)
    with pytest.raises(ParamsError) as raised:
        tables.split_off(table, 0.01, 0, "download.test_fraction", ("training", "test"))
    assert str(raised.value) == (
        "download.test_fraction = 0.01 leaves an empty test set (8 rows in 6 groups); it needs "
        "more rows or groups, or another fraction"
    )


def test_an_extra_set_entry_becomes_its_spec():
    found = tables.extra_set(entry(), "k")
    assert found == tables.ExtraSet(
        "a", "a.csv", "0" * 64,
        tables.TableSpec("t", "l", tables.LabelMapping(("1",), ("0",)), empty_texts="drop"),
    )  # fmt: skip
    stars = tables.extra_set(
        entry(positive_labels=None, negative_labels=None, label_threshold=7, empty_texts="error"),
        "k",
    )
    assert stars.spec == tables.TableSpec(
        "t", "l", tables.LabelMapping(threshold=7.0), empty_texts="error"
    )
    assert [item.name for item in tables.extra_sets([entry(), entry(name="b")], "k")] == ["a", "b"]


def test_extra_set_errors_name_the_key_exactly():
    with pytest.raises(ParamsError) as raised:
        tables.extra_set(entry(zeta=1, alpha=2), "k[0]")
    assert str(raised.value) == f"k[0]: unknown key 'alpha'; known: {sorted(tables.EXTRA_SET_KEYS)}"
    with pytest.raises(ParamsError, match=r"^k\[0\]\.text_column is required"):
        tables.extra_set(entry(text_column=""), "k[0]")
    with pytest.raises(ParamsError) as raised:
        tables.extra_set(entry(negative_labels=None), "k[0]")
    assert str(raised.value).startswith("k[0]: give positive_labels and negative_labels")


def test_more_read_and_label_messages():
    with pytest.raises(tables.TableError) as raised:
        tables.read_file(io.BytesIO(b""), "t.xlsx")
    assert str(raised.value) == (
        "t.xlsx: cannot tell the format from the name; expected .csv, .jsonl or .parquet "
        "(.csv.gz and .jsonl.gz too)"
    )
    assert tables.read_file(io.BytesIO(b"text,label\n007,1\n"), "t.csv").to_dict("list") == {
        "text": ["007"], "label": ["1"]
    }  # fmt: skip
    grouped = tables.TableSpec("t", "l", WORDS, group_column="product")
    with pytest.raises(tables.TableError, match="f: no column 'product'; the columns are: t, l"):
        tables.labelled_table(pd.DataFrame({"t": ["x"], "l": [1]}), grouped, "f")
    with pytest.raises(tables.TableError, match=r"^f: row 1: label 'maybe'"):
        plain = tables.TableSpec("t", "l", WORDS)
        tables.labelled_table(pd.DataFrame({"t": ["x"], "l": ["maybe"]}), plain, "f")


def test_split_off_is_seeded_and_names_an_empty_training_side():
    table = pd.DataFrame({"id": range(40), "label": [0, 1] * 20, "movie": [""] * 40})
    first = tables.split_off(table, 0.3, 5, "k", ("training", "test"))[1]
    again = tables.split_off(table, 0.3, 5, "k", ("training", "test"))[1]
    assert first.id.tolist() == again.id.tolist()
    with pytest.raises(ParamsError, match=r"^k = 1\.0 leaves an empty training set"):
        tables.split_off(table, 1.0, 5, "k", ("training", "test"))


def test_load_labelled_reads_the_hashed_file_and_counts_dropped_texts(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("t,l\ngood,1\n ,0\nbad,0\n")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = tables.TableSpec("t", "l", WORDS)
    table, dropped = tables.load_labelled(str(path), sha.upper(), spec, tmp_path / "cache")
    assert dropped == 1 and table["text"].tolist() == ["good", "bad"]
    assert capsys.readouterr().out == (
        f"{path} (expecting sha256 {sha})\n{path}: dropped 1 empty or whitespace-only texts\n"
    )


def test_load_labelled_downloads_into_its_cache_and_names_the_file_in_errors(http_root, tmp_path):
    root, base = http_root
    (root / "mine.csv").write_text("t,l\ngood,1\nbad,0\n")
    sha = hashlib.sha256((root / "mine.csv").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    spec = tables.TableSpec("t", "l", WORDS)
    table, _ = tables.load_labelled(f"{base}/mine.csv", sha, spec, cache)
    assert table["text"].tolist() == ["good", "bad"] and (cache / "mine.csv").is_file()
    (root / "odd.csv").write_text("t,l\ngood,maybe\n")
    odd = hashlib.sha256((root / "odd.csv").read_bytes()).hexdigest()
    with pytest.raises(tables.TableError, match=rf"^{re.escape(str(cache / 'odd.csv'))}: row 1"):
        tables.load_labelled(f"{base}/odd.csv", odd, spec, cache)
