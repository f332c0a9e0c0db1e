import os

import pytest

from imdb_sentiment import archive
from stages import download
from tests.archive_factory import make_archive

WRONG_SHA = "f" * 64


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(archive.ARCHIVE_ENV, raising=False)
    return tmp_path


def test_writes_train_and_test_tables(workdir, tiny_archive):
    path, sha = tiny_archive
    download.run(download.Params(url=str(path), sha256=sha))
    assert sorted(p.name for p in (workdir / "data/raw").iterdir()) == ["test.csv", "train.csv"]


def test_wrong_hash_fails_and_leaves_nothing(workdir, tiny_archive, capsys, monkeypatch):
    path, sha = tiny_archive
    (workdir / "params.yaml").write_text(f"download:\n  url: {path}\n  sha256: '{WRONG_SHA}'\n")
    assert download.main() == 1
    message = capsys.readouterr().err
    assert f"expected {WRONG_SHA}, got {sha}" in message
    assert not (workdir / "data").exists()


def test_corrupt_archive_fails_and_leaves_nothing(workdir, tiny_archive, capsys):
    path, _ = tiny_archive
    path.write_bytes(path.read_bytes()[:300])
    sha = archive.hashlib.sha256(path.read_bytes()).hexdigest()
    (workdir / "params.yaml").write_text(f"download:\n  url: {path}\n  sha256: '{sha}'\n")
    assert download.main() == 1
    assert "corrupt or truncated archive" in capsys.readouterr().err
    assert not (workdir / "data").exists()


def test_offline_override_uses_sidecar_hash(workdir, tmp_path, monkeypatch):
    local = tmp_path / "mirror" / "aclImdb_copy.tar.gz"
    local.parent.mkdir()
    sha = make_archive(local, per_class=5, movies=2)
    local.with_name(local.name + ".sha256").write_text(f"{sha}  {local.name}\n")
    monkeypatch.setenv(archive.ARCHIVE_ENV, str(local))
    download.run(download.Params(url="https://unreachable.invalid/a.tar.gz", sha256=WRONG_SHA))
    assert (workdir / "data/raw/test.csv").read_text().count("\n") == 1 + 10


def test_bad_params_fail_before_any_work(workdir, capsys):
    (workdir / "params.yaml").write_text("download:\n  url: x\n  sha256: nothex\n")
    assert download.main() == 1
    assert "download.sha256 = 'nothex' is not valid" in capsys.readouterr().err
    assert not os.path.exists(workdir / "data")
