import json
import os
import stat
from pathlib import Path

import pytest

from imdb_sentiment import fileio
from imdb_sentiment.fileio import atomic_directory, atomic_file, write_json


def test_atomic_directory_replaces_target_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as scratch:
        (scratch / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_directory(target) as scratch:
        (scratch / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as scratch:
        scratch.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_write_json_is_sorted_and_keeps_suffix(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2, "b": 1}


def test_a_crash_before_the_swap_keeps_the_old_output_and_no_scratch(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def crash(_):
        raise OSError("disk gone")

    monkeypatch.setattr(fileio, "_fsync_tree", crash)
    with pytest.raises(OSError, match="disk gone"), atomic_directory(target) as scratch:
        (scratch / "new.txt").write_text("new")
    assert (target / "old.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [
        "out"
    ]


def test_the_swap_is_one_exchange_so_the_target_is_never_missing(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    seen = []
    real_exchange = fileio._exchange

    def watching(first, second):
        swapped = real_exchange(first, second)
        seen.append((swapped, second.exists()))
        return swapped

    monkeypatch.setattr(fileio, "_exchange", watching)
    monkeypatch.setattr(fileio.shutil, "rmtree", _rmtree_only_scratch(fileio.shutil.rmtree, target))
    with atomic_directory(target) as scratch:
        (scratch / "new.txt").write_text("new")
    assert seen == [(True, True)]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def _rmtree_only_scratch(rmtree, target):
    def guarded(path, *args, **kwargs):
        assert Path(path) != target, "the old output was deleted before the new one was in place"
        return rmtree(path, *args, **kwargs)

    return guarded


def test_files_and_folders_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        fileio.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_mode) or real_fsync(fd)
    )
    with atomic_directory(tmp_path / "out") as scratch:
        (scratch / "a.txt").write_text("a")
        (scratch / "b.txt").write_text("b")
    files = [mode for mode in synced if stat.S_ISREG(mode)]
    folders = [mode for mode in synced if stat.S_ISDIR(mode)]
    assert len(files) == 2 and len(folders) >= 2  # the scratch folder and the parent
    synced.clear()
    write_json(tmp_path / "m.json", {"a": 1})
    assert [stat.S_ISREG(m) for m in synced] == [True, False]


def test_scratch_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    (tmp_path / f".out{fileio.SCRATCH_MARK}dead").mkdir()
    (tmp_path / f".m.json{fileio.SCRATCH_MARK}dead.json").write_text("half")
    with atomic_directory(tmp_path / "out") as scratch:
        (scratch / "new.txt").write_text("new")
    write_json(tmp_path / "m.json", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "out"]


def test_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    def forbidden(mask):
        raise AssertionError("os.umask changed while writing")

    monkeypatch.setattr(fileio.os, "umask", forbidden)
    with atomic_file(tmp_path / "f.txt") as scratch:
        scratch.write_text("x")
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~fileio.UMASK


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replaced"])
def test_the_parent_is_fsynced_after_the_swap_and_the_contents_before(
    tmp_path, monkeypatch, existing
):
    # The swap is durable only once the parent folder is fsynced after it: a parent fsynced
    # first, then renamed into, may come back after a crash without the new output.
    target = tmp_path / "out"
    if existing:
        target.mkdir()
        (target / "old.txt").write_text("old")
    events = []
    real_tree, real_fsync = fileio._fsync_tree, fileio._fsync
    real_exchange, real_replace = fileio._exchange, fileio.os.replace

    def record(name, real):
        def wrapped(*args):
            events.append((name, Path(args[-1]).name))
            return real(*args)

        return wrapped

    monkeypatch.setattr(fileio, "_fsync_tree", record("tree", real_tree))
    monkeypatch.setattr(fileio, "_fsync", record("fsync", real_fsync))
    monkeypatch.setattr(fileio, "_exchange", record("swap", real_exchange))
    monkeypatch.setattr(fileio.os, "replace", record("swap", real_replace))
    with fileio.atomic_directory(target) as scratch:
        (scratch / "new.txt").write_text("new")
    names = [name for name, _ in events]
    assert names[0] == "tree"  # the contents first (its folders' fsyncs follow it)
    assert names[-2:] == ["swap", "fsync"] and events[-1][1] == tmp_path.name
    assert names.count("swap") == 1
    assert (target / "new.txt").read_text() == "new" and not (target / "old.txt").exists()


def test_parents_are_created_and_the_scratch_sits_beside_its_target(tmp_path):
    folder, file = tmp_path / "a" / "b" / "out", tmp_path / "c" / "d" / "m.json"
    with atomic_directory(folder) as scratch:
        assert scratch.parent == folder.parent  # same file system: the rename is atomic
        assert scratch.name.startswith(f".out{fileio.SCRATCH_MARK}")
        (scratch / "x.txt").write_text("x")
    with atomic_file(file) as scratch:
        assert scratch.parent == file.parent and scratch.suffix == ".json"
        assert scratch.name.startswith(f".m.json{fileio.SCRATCH_MARK}")
        scratch.write_text("{}")
    assert (folder / "x.txt").read_text() == "x" and file.read_text() == "{}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~fileio.UMASK


def test_without_an_atomic_exchange_the_old_output_is_replaced(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    monkeypatch.setattr(fileio, "_exchange", lambda first, second: False)
    with atomic_directory(target) as scratch:
        (scratch / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_exchange_swaps_relative_paths_and_says_so_where_unsupported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a").write_text("a")
    Path("b").write_text("b")
    assert fileio._exchange(Path("a"), Path("b")) is True
    assert (Path("a").read_text(), Path("b").read_text()) == ("b", "a")

    def no_libc(*args, **kwargs):
        raise OSError("no libc")

    monkeypatch.setattr(fileio.ctypes, "CDLL", no_libc)
    assert fileio._exchange(Path("a"), Path("b")) is False


@pytest.mark.parametrize(
    "proc", ["readable", "missing", "malformed"], ids=["from /proc", "no /proc", "odd /proc"]
)
def test_the_umask_is_read_with_and_without_proc(monkeypatch, proc):
    previous = os.umask(0o027)
    try:
        if proc == "readable":  # /proc shows it without setting it, as other threads need

            def forbidden(mask):
                raise AssertionError("os.umask called although /proc shows the umask")

            monkeypatch.setattr(fileio.os, "umask", forbidden)
        elif proc == "missing":

            def unreadable(self, *args, **kwargs):
                raise OSError("no /proc")

            monkeypatch.setattr(fileio.Path, "read_text", unreadable)
        else:
            monkeypatch.setattr(fileio.Path, "read_text", lambda self: "Umask:\tzz\n")
        assert fileio._read_umask() == 0o027
        monkeypatch.undo()
        assert os.umask(0o027) == 0o027  # and left as it was
    finally:
        os.umask(previous)
