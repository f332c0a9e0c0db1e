import json
import os
import shutil

import pytest
import yaml

from imdb_sentiment.data import archive
from stages import download
from tests.archive_factory import make_archive
from tests.conftest import REPO_ROOT
from tests.table_factory import TABLE_PARAMS, review_table, sha256_of, write_table

WRONG_SHA = "f" * 64


def write_params(folder, **download_values) -> None:
    """params.yaml with the committed download section, these keys replaced."""
    section = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["download"]
    (folder / "params.yaml").write_text(yaml.safe_dump({"download": section | download_values}))


def archive_params(url: str, sha256: str) -> download.Params:
    """The committed download section with this archive."""
    section = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["download"]
    return download.Params(**{**section, "url": url, "sha256": sha256})


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(archive.ARCHIVE_ENV, raising=False)
    return tmp_path


def test_writes_train_and_test_tables(workdir, tiny_archive):
    path, sha = tiny_archive
    download.run(archive_params(str(path), sha))
    written = sorted(p.name for p in (workdir / "data/raw").iterdir())
    assert written == ["source.json", "test.csv", "train.csv"]


def test_wrong_hash_fails_and_leaves_nothing(workdir, tiny_archive, capsys, monkeypatch):
    path, sha = tiny_archive
    write_params(workdir, url=str(path), sha256=WRONG_SHA)
    assert download.main() == 1
    message = capsys.readouterr().err
    assert f"expected {WRONG_SHA}, got {sha}" in message
    assert not (workdir / "data").exists()


def test_corrupt_archive_fails_and_leaves_nothing(workdir, tiny_archive, capsys):
    path, _ = tiny_archive
    path.write_bytes(path.read_bytes()[:300])
    sha = archive.hashlib.sha256(path.read_bytes()).hexdigest()
    write_params(workdir, url=str(path), sha256=sha)
    assert download.main() == 1
    assert "corrupt or truncated archive" in capsys.readouterr().err
    assert not (workdir / "data").exists()


def test_offline_override_uses_sidecar_hash(workdir, tmp_path, monkeypatch):
    local = tmp_path / "mirror" / "aclImdb_copy.tar.gz"
    local.parent.mkdir()
    sha = make_archive(local, per_class=5, movies=2)
    local.with_name(local.name + ".sha256").write_text(f"{sha}  {local.name}\n")
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(local))
    download.run(archive_params("https://unreachable.invalid/a.tar.gz", WRONG_SHA))
    assert (workdir / "data/raw/test.csv").read_text().count("\n") == 1 + 10


def test_bad_params_fail_before_any_work(workdir, capsys):
    write_params(workdir, url="x", sha256="nothex")
    assert download.main() == 1
    assert "download.sha256 = 'nothex' is not valid" in capsys.readouterr().err
    assert not os.path.exists(workdir / "data")


# --- your own table (format: table) -------------------------------------------------------


def run_table(workdir, capsys, file, sha, **values) -> tuple[int, str]:
    write_params(workdir, url=str(file), sha256=sha, **(TABLE_PARAMS | values))
    code = download.main()
    return code, capsys.readouterr().err


def raw_table(workdir, split):
    return archive.read_table(workdir / "data/raw", split)


def test_a_csv_with_a_grouped_test_fraction_gives_the_archive_layout(workdir, capsys):
    file = workdir / "reviews.csv"
    sha = write_table(review_table(per_class=40, groups=10), file)
    code, err = run_table(workdir, capsys, file, sha, group_column="product", test_fraction=0.2)
    assert code == 0, err
    train, test = raw_table(workdir, "train"), raw_table(workdir, "test")
    assert list(train.columns) == archive.TABLE_COLUMNS and len(train) + len(test) == 80
    assert set(train.movie).isdisjoint(test.movie)  # whole products on one side
    assert sorted(test.label.unique()) == [0, 1] and 8 <= len(test) <= 24
    source = json.loads((workdir / "data/raw/source.json").read_text())
    assert source["grouped"] is True and source["group_column"] == "product"


def test_the_same_params_give_byte_identical_tables(workdir, capsys):
    file = workdir / "reviews.csv"
    sha = write_table(review_table(), file)
    contents = []
    for _ in range(2):
        assert run_table(workdir, capsys, file, sha, test_fraction=0.25)[0] == 0
        contents.append((workdir / "data/raw/test.csv").read_bytes())
    assert contents[0] == contents[1]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv.gz", ".jsonl.gz"])
def test_json_lines_parquet_and_gzip_files_with_a_second_test_file(workdir, capsys, suffix):
    train_file, test_file = workdir / f"train{suffix}", workdir / f"test{suffix}"
    sha = write_table(review_table(per_class=10), train_file)
    test_sha = write_table(review_table(per_class=6, seed=1), test_file)
    values = {"test_url": f"file://{test_file}", "test_sha256": test_sha}
    code, err = run_table(workdir, capsys, train_file, sha, **values)
    assert code == 0, err
    assert len(raw_table(workdir, "train")) == 20 and len(raw_table(workdir, "test")) == 12
    assert raw_table(workdir, "train").movie.eq("").all()  # no group column: no groups


def test_numeric_stars_map_to_labels_at_the_threshold(workdir, capsys):
    file = workdir / "stars.parquet"
    sha = write_table(review_table(), file)
    values = {"label_column": "stars", "positive_labels": None, "negative_labels": None}
    code, err = run_table(
        workdir, capsys, file, sha, label_threshold=7, test_fraction=0.25, **values
    )
    assert code == 0, err
    train = raw_table(workdir, "train")
    assert ((train.rating.astype(int) >= 7) == (train.label == 1)).all()


def test_empty_texts_are_dropped_and_counted_or_refused(workdir, capsys):
    frame = review_table()
    frame.loc[[3, 5], "review"] = ["", "   \n"]
    file = workdir / "gaps.csv"
    sha = write_table(frame, file)
    assert run_table(workdir, capsys, file, sha, test_fraction=0.25)[0] == 0
    source = json.loads((workdir / "data/raw/source.json").read_text())
    assert source["empty_texts_dropped"] == {"train": 2, "test": 0}
    shutil.rmtree(workdir / "data")
    code, err = run_table(workdir, capsys, file, sha, test_fraction=0.25, empty_texts="error")
    assert code == 1 and "2 empty or whitespace-only texts in 'review', the first at row 4" in err
    assert not (workdir / "data").exists()


def damaged(path, frame):
    """Write ``frame`` to ``path``, then cut off its second half."""
    write_table(frame, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return sha256_of(path)


def not_utf8(path, frame):
    write_table(frame, path)
    path.write_bytes(path.read_bytes() + b"\xff\xfe broken, positive, 1, p\n")
    return sha256_of(path)


BAD_TABLES = {
    "missing column": (
        {"text_column": "text", "test_fraction": 0.25},
        lambda p, f: write_table(f, p),
        "no column 'text'; the columns are: review, sentiment, stars, product",
    ),
    "label outside the mapping": (
        {"test_fraction": 0.25},
        lambda p, f: write_table(f.assign(sentiment=f.sentiment.where(f.index != 6, "meh")), p),
        "row 7: label 'meh' is not in the mapping (positive ['positive'], negative ['negative'])",
    ),
    "not UTF-8": ({"test_fraction": 0.25}, lambda p, f: not_utf8(p, f), "not valid UTF-8"),
    "one class only": (
        {"test_fraction": 0.25},
        lambda p, f: write_table(f[f.sentiment == "positive"], p),
        "the train set: needs both labels, found {1: ",
    ),
    "too few rows for the test fraction": (
        {"test_fraction": 0.1},
        lambda p, f: write_table(f.head(4), p),
        "download.test_fraction = 0.1 leaves an empty test set (4 rows in 4 groups)",
    ),
    "archive-only key missing for a table": (
        {"text_column": None, "test_fraction": 0.25},
        lambda p, f: write_table(f, p),
        "download.text_column is required with download.format: table",
    ),
    "no test set named": ({}, lambda p, f: write_table(f, p), "exactly one of test_url"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_a_bad_table_is_refused_by_name_and_nothing_is_written(workdir, capsys, case):
    values, write, message = BAD_TABLES[case]
    file = workdir / "reviews.csv"
    sha = write(file, review_table())
    code, err = run_table(workdir, capsys, file, sha, **values)
    assert code == 1 and message in err, err
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("suffix, message", [
    (".parquet", "cannot be read as parquet"),
    (".csv.gz", "the gzip stream is truncated or corrupt"),
])  # fmt: skip
def test_a_truncated_parquet_or_gzip_file_is_refused(workdir, capsys, suffix, message):
    file = workdir / f"reviews{suffix}"
    sha = damaged(file, review_table(per_class=200))
    code, err = run_table(workdir, capsys, file, sha, test_fraction=0.25)
    assert code == 1 and message in err and str(file) in err, err
    assert not (workdir / "data").exists()


def test_a_test_file_of_one_class_is_refused_and_nothing_is_written(workdir, capsys):
    frame = review_table(per_class=6)
    sha = write_table(frame, workdir / "train.csv")
    test_sha = write_table(frame[frame.sentiment == "negative"], workdir / "test.csv")
    values = {"test_url": str(workdir / "test.csv"), "test_sha256": test_sha}
    code, err = run_table(workdir, capsys, workdir / "train.csv", sha, **values)
    assert code == 1 and "the test set: needs both labels, found {0: 6}" in err, err
    assert not (workdir / "data").exists()


def test_table_keys_with_the_archive_source_are_refused_by_name(workdir, capsys, tiny_archive):
    path, sha = tiny_archive
    write_params(workdir, url=str(path), sha256=sha, text_column="review")
    assert download.main() == 1
    err = capsys.readouterr().err
    assert "download.text_column = 'review' is for format: table" in err
    assert not (workdir / "data").exists()


def test_a_table_comes_over_http_and_offline_through_imdb_archive(
    workdir, capsys, http_root, monkeypatch
):
    folder, base = http_root
    sha = write_table(review_table(per_class=10), folder / "reviews.csv")
    code, err = run_table(workdir, capsys, f"{base}/reviews.csv", sha, test_fraction=0.25)
    assert code == 0, err
    online = (workdir / "data/raw/train.csv").read_bytes()

    shutil.rmtree(workdir / "data")
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(folder / "reviews.csv"))
    unreachable = "https://unreachable.invalid/reviews.csv"
    assert run_table(workdir, capsys, unreachable, sha, test_fraction=0.25)[0] == 0
    assert (workdir / "data/raw/train.csv").read_bytes() == online
