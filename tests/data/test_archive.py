import io
import os
import re
import tarfile

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.data import archive
from tests.archive_factory import make_archive, sha256_of, unsafe_member

WRONG_SHA = "0" * 64


def test_reads_both_splits_in_fixed_order(tiny_archive):
    path, _ = tiny_archive
    tables = archive.read_reviews(path)
    train = tables["train"]
    assert list(train.columns) == archive.TABLE_COLUMNS
    assert len(train) == 48 and train["label"].tolist() == [0] * 24 + [1] * 24
    assert train["id"].tolist()[:24] == sorted(train["id"].tolist()[:24])
    assert train["movie"].str.fullmatch(r"tt\d{7}").all()
    assert "<br />" in train["text"].iloc[0]
    assert set(train["movie"]).isdisjoint(tables["test"]["movie"])


def test_same_reviews_give_byte_identical_tables(tmp_path, tiny_archive):
    path, _ = tiny_archive
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        archive.write_tables(archive.read_reviews(path), tmp_path / run)
    for split in archive.SPLITS:
        first = (tmp_path / "a" / f"{split}.csv").read_bytes()
        assert first == (tmp_path / "b" / f"{split}.csv").read_bytes()
    assert archive.read_table(tmp_path / "a", "test").equals(archive.read_reviews(path)["test"])


def test_local_archive_is_hash_checked(tiny_archive, tmp_path):
    path, sha = tiny_archive
    assert archive.fetch_archive(str(path), sha, tmp_path / "cache") == path
    assert archive.fetch_archive(f"file://{path}", sha, tmp_path / "cache") == path
    with archive.open_verified(path, sha) as stream:
        assert len(archive.read_reviews(stream, str(path))["train"]) == 48
    with pytest.raises(archive.ArchiveError) as error, archive.open_verified(path, WRONG_SHA):
        pass
    assert WRONG_SHA in str(error.value) and sha in str(error.value)
    assert not (tmp_path / "cache").exists()


def test_the_bytes_parsed_are_the_bytes_hashed_even_if_the_path_is_replaced(tmp_path):
    path, other = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    sha = make_archive(path, per_class=3)
    make_archive(other, per_class=5)
    with archive.open_verified(path, sha) as stream:
        os.replace(other, path)  # e.g. a download finishing into the same name
        tables = archive.read_reviews(stream, str(path))
    assert len(tables["train"]) == 6


def test_a_member_over_the_size_cap_is_refused_by_name(tmp_path, monkeypatch):
    path = tmp_path / "big.tar.gz"
    make_archive(path, per_class=2)
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 10)
    with pytest.raises(
        archive.ArchiveError,
        match=r"member aclImdb/train/neg/0_\d+\.txt is \d+ bytes, over the 10-byte limit",
    ):
        archive.read_reviews(path)


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "many.tar.gz"
    make_archive(path, per_class=2)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    with pytest.raises(archive.ArchiveError, match="more than 5 members"):
        archive.read_reviews(path)


def test_a_duplicate_review_id_is_refused_by_name(tmp_path):
    path = tmp_path / "twice.tar.gz"
    duplicate = tarfile.TarInfo("aclImdb/train/pos/1_10.txt")  # id 1 exists with a rating 7-10
    duplicate.size = 4
    make_archive(path, per_class=3, extra=[duplicate])
    with pytest.raises(
        archive.ArchiveError, match="review id 1 appears twice in aclImdb/train/pos/"
    ):
        archive.read_reviews(path)


def test_a_url_list_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin.tar.gz"
    make_archive(path, per_class=2)
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            if member.name == "aclImdb/test/urls_pos.txt":
                data = b"caf\xe9\n" * 2
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(archive.ArchiveError, match="urls_pos.txt is not valid UTF-8"):
        archive.read_reviews(path)


def test_missing_local_archive(tmp_path):
    with pytest.raises(archive.ArchiveError, match="archive not found: .*absent.tar.gz"):
        archive.fetch_archive(str(tmp_path / "absent.tar.gz"), WRONG_SHA, tmp_path / "cache")


def test_download_over_http(http_root, tmp_path):
    root, base = http_root
    sha = make_archive(root / "tiny.tar.gz")
    cache = tmp_path / "cache"
    local = archive.fetch_archive(f"{base}/tiny.tar.gz", sha, cache)
    assert local == cache / "tiny.tar.gz" and sha256_of(local) == sha
    assert len(archive.read_reviews(local)["test"]) == 48


def test_wrong_hash_over_http_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    sha = make_archive(root / "tiny.tar.gz")
    cache = tmp_path / "cache"
    with pytest.raises(archive.ArchiveError) as error:
        archive.fetch_archive(f"{base}/tiny.tar.gz", WRONG_SHA, cache)
    assert WRONG_SHA in str(error.value) and sha in str(error.value)
    assert not cache.exists()


def test_http_error_is_reported(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(archive.ArchiveError, match="download of .*missing.tar.gz failed"):
        archive.fetch_archive(f"{base}/missing.tar.gz", WRONG_SHA, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_offline_override_prefers_sidecar_hash(tiny_archive):
    path, sha = tiny_archive
    url, official = "https://example.org/a.tar.gz", "a" * 64
    assert archive.resolve_source(url, official, environ={}) == (url, official)
    env = {archive.ARCHIVE_ENV: str(path)}
    assert archive.resolve_source(url, official, environ=env) == (str(path), official)
    path.with_name(path.name + ".sha256").write_text(f"{sha.upper()}  {path.name}\n")
    assert archive.resolve_source(url, official, environ=env) == (str(path), sha)


def test_malformed_sidecar_is_named(tiny_archive):
    path, _ = tiny_archive
    path.with_name(path.name + ".sha256").write_text("not-a-hash\n")
    with pytest.raises(archive.ArchiveError, match=r"\.sha256: expected a sha256 hex digest"):
        archive.resolve_source("u", "a" * 64, environ={archive.ARCHIVE_ENV: str(path)})


def test_truncated_archive(tiny_archive, tmp_path):
    path, _ = tiny_archive
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(archive.ArchiveError, match="corrupt or truncated archive"):
        archive.read_reviews(truncated)


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball" * 100)
    with pytest.raises(archive.ArchiveError, match="corrupt or truncated archive"):
        archive.read_reviews(junk)


def test_archive_without_test_split(tmp_path):
    path = tmp_path / "train_only.tar.gz"
    make_archive(path, splits=("train",))
    with pytest.raises(archive.ArchiveError, match="no reviews under aclImdb/test/neg/"):
        archive.read_reviews(path)


def test_archive_without_url_lists(tmp_path):
    source, stripped = tmp_path / "full.tar.gz", tmp_path / "stripped.tar.gz"
    make_archive(source)
    with tarfile.open(source) as full, tarfile.open(stripped, "w:gz") as out:
        for member in full:
            if "urls_pos" not in member.name:
                out.addfile(member, full.extractfile(member))
    with pytest.raises(
        archive.ArchiveError, match=r"^stripped\.tar\.gz: missing aclImdb/train/urls_pos\.txt"
    ):
        archive.read_reviews(stripped)


@pytest.mark.parametrize("kind", ["absolute", "parent", "symlink", "hardlink"])
def test_unsafe_members_are_refused(tmp_path, kind):
    path = tmp_path / f"{kind}.tar.gz"
    make_archive(path, extra=[unsafe_member(kind)])
    with pytest.raises(archive.ArchiveError, match="refusing"):
        archive.read_reviews(path)
    assert not (tmp_path / "evil.txt").exists()


def test_each_review_gets_the_movie_of_its_own_url_line(tmp_path):
    path = tmp_path / "movies.tar.gz"
    make_archive(path, per_class=6, movies=4)
    tables = archive.read_reviews(path)
    for split_index, split in enumerate(("train", "test")):
        expected = [f"tt{split_index * 1000 + review_id % 4:07d}" for review_id in tables[split].id]
        assert tables[split].movie.tolist() == expected


def test_a_url_file_too_short_for_its_reviews_is_named(tmp_path):
    path = tmp_path / "short.tar.gz"
    make_archive(path, per_class=6, url_lines=5)
    with pytest.raises(archive.ArchiveError, match=r"urls_neg\.txt has 5 lines"):
        archive.read_reviews(path)


def test_member_order_does_not_change_the_tables(tmp_path):
    tables = []
    for order in (None, 1, 2):
        path = tmp_path / f"order-{order}.tar.gz"
        make_archive(path, shuffle_members=order)
        (tmp_path / f"raw-{order}").mkdir()
        archive.write_tables(archive.read_reviews(path), tmp_path / f"raw-{order}")
        tables.append(
            {
                split: (tmp_path / f"raw-{order}" / f"{split}.csv").read_bytes()
                for split in ("train", "test")
            }
        )
    assert tables[0] == tables[1] == tables[2]


def _rewritten(path, change):
    """Rewrite the archive at ``path``, passing each (member, data) through ``change``."""
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            member, data = change(member, data)
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("absolute", "refusing member outside the target folder: '/tmp/evil.txt'"),
        ("backslash", "refusing member outside the target folder: " + repr("\\evil.txt")),
        ("symlink", "refusing link member 'aclImdb/train/pos/999_9.txt' -> '/etc/passwd'"),
        ("hardlink", "refusing link member 'aclImdb/train/pos/998_9.txt' -> '/etc/passwd'"),
        ("fifo", "refusing special member 'aclImdb/train/pos/997_9.txt'"),
    ],
)
def test_each_unsafe_member_is_refused_with_the_archive_and_its_name(tmp_path, kind, message):
    path = tmp_path / f"{kind}.tar.gz"
    if kind == "backslash":
        member = tarfile.TarInfo("\\evil.txt")
        member.size = 1
    elif kind == "fifo":
        member = tarfile.TarInfo("aclImdb/train/pos/997_9.txt")
        member.type = tarfile.FIFOTYPE
    else:
        member = unsafe_member(kind)
    make_archive(path, per_class=2, extra=[member])
    with pytest.raises(archive.ArchiveError) as raised:
        archive.read_reviews(path)
    assert str(raised.value) == f"{path.name}: {message}"


def test_member_and_size_limits_are_inclusive(tmp_path, monkeypatch):
    path = tmp_path / "exact.tar.gz"
    make_archive(path, per_class=2)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    monkeypatch.setattr(archive, "MAX_MEMBERS", len(members))
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", max(m.size for m in members))
    assert len(archive.read_reviews(path)["train"]) == 4
    monkeypatch.setattr(archive, "MAX_MEMBERS", len(members) - 1)
    with pytest.raises(archive.ArchiveError, match=f"more than {len(members) - 1} members"):
        archive.read_reviews(path)


def test_bad_bytes_in_a_review_are_replaced_and_a_folder_named_like_one_is_skipped(tmp_path):
    path = tmp_path / "odd.tar.gz"
    folder = tarfile.TarInfo("aclImdb/train/pos/500_9.txt")
    folder.type = tarfile.DIRTYPE
    make_archive(path, per_class=2, extra=[folder])

    def latin(member, data):
        if member.name.startswith("aclImdb/train/pos/0_"):
            data = b"caf\xe9 good"
        return member, data

    _rewritten(path, latin)
    train = archive.read_reviews(path)["train"]
    assert len(train) == 4 and "caf\ufffd good" in train["text"].tolist()


def test_a_url_line_without_a_title_id_is_the_movie_itself(tmp_path):
    path = tmp_path / "plain.tar.gz"
    make_archive(path, per_class=2)

    def plain(member, data):
        if member.name == "aclImdb/train/urls_pos.txt":
            data = b"  some-movie  \nother\n"
        return member, data

    _rewritten(path, plain)
    train = archive.read_reviews(path)["train"]
    assert train[train.label == 1].movie.tolist() == ["some-movie", "other"]


@pytest.mark.parametrize(
    ("movies", "texts"),
    [(["007", "NA"], ["NA", "null"]), (["007", "0012"], ["10", "3"])],
    ids=["look missing", "all digits"],
)
def test_tables_keep_codes_and_texts_as_text(tmp_path, movies, texts):
    table = pd.DataFrame(
        {"id": [1, 2], "rating": [8, 2], "label": [1, 0], "movie": movies, "text": texts}
    )
    archive.write_tables({"train": table}, tmp_path)
    assert (tmp_path / "train.csv").read_text().splitlines()[0] == "id,rating,label,movie,text"
    assert archive.read_table(tmp_path, "train").equals(table)
    with pytest.raises(archive.ArchiveError, match=r"test\.csv: not found; run the download"):
        archive.read_table(tmp_path, "test")


def test_the_environment_is_read_when_none_is_given_and_a_bad_sidecar_is_quoted(
    tiny_archive, monkeypatch
):
    path, sha = tiny_archive
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(path))
    assert archive.resolve_source("https://example.org/a.tar.gz", "a" * 64)[0] == str(path)
    path.with_name(path.name + ".sha256").write_text("not-a-hash  extra\n")
    with pytest.raises(archive.ArchiveError, match=r"got \['not-a-hash'\]$"):
        archive.resolve_source("u", "a" * 64)


def test_https_urls_are_downloaded_not_looked_up_on_disk(tmp_path):
    with pytest.raises(archive.ArchiveError, match="download of https://127.0.0.1:9/a.tar.gz"):
        archive.fetch_archive("https://127.0.0.1:9/a.tar.gz", WRONG_SHA, tmp_path / "cache")


def test_downloads_make_nested_caches_reuse_them_and_show_progress(http_root, tmp_path, capsys):
    root, base = http_root
    sha = make_archive(root / "tiny.tar.gz")
    cache = tmp_path / "a" / "b" / "cache"
    for _ in range(2):
        assert archive.fetch_archive(f"{base}/tiny.tar.gz", sha, cache) == cache / "tiny.tar.gz"
    assert "100%" in capsys.readouterr().err  # pooch's progress bar
    (root / "index.html").write_bytes((root / "tiny.tar.gz").read_bytes())  # what "/" serves
    assert archive.fetch_archive(f"{base}/", sha, cache) == cache / "archive.tar.gz"


def test_progress_shows_what_is_read_and_hashed(tiny_archive, capsys):
    path, sha = tiny_archive
    archive.read_reviews(path)
    with archive.open_verified(path, sha):
        pass
    err = capsys.readouterr().err
    assert re.search(rf"reading {re.escape(path.name)}: \d+ files \[", err)
    assert f"sha256 {path.name}: 100%" in err and re.search(r"\d\.\d+k/\d\.\d+k \[.*B/s\]", err)


def test_texts_of_finds_each_review_by_id_and_label_and_names_a_missing_one(tmp_path):
    table = pd.DataFrame(
        {"id": [0, 0, 1], "rating": [2, 9, 8], "label": [0, 1, 1], "movie": ["a", "b", "c"],
         "text": ["bad", "good", "fine"]}
    )  # fmt: skip
    ids, labels = np.array([1, 0, 0]), np.array([1, 1, 0], dtype=np.int8)
    assert archive.texts_of(table, ids, labels, tmp_path) == ["fine", "good", "bad"]
    with pytest.raises(archive.ArchiveError) as raised:
        archive.texts_of(table, np.array([0, 5]), np.array([0, 1]), tmp_path / "test.csv")
    where = tmp_path / "test.csv"
    assert str(raised.value) == f"{where}: review (id, label) (5, 1) of the split is missing"


def test_a_path_given_as_text_names_the_archive_in_its_errors(tmp_path, monkeypatch):
    path = tmp_path / "big.tar.gz"
    make_archive(path, per_class=2)
    assert len(archive.read_reviews(str(path))["train"]) == 4
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 10)
    with pytest.raises(archive.ArchiveError, match=rf"^{re.escape(str(path))}: member aclImdb/"):
        archive.read_reviews(str(path))
