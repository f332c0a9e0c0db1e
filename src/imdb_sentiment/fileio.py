"""Writes that either complete or leave the previous output in place.

A scratch file or folder beside the target is written, fsynced, then swapped in with one
rename (for a folder, an atomic exchange where the kernel offers it), and the parent folder is
fsynced, so after a crash or a power loss the target is the old output or the new one, never a
mix, never empty. Scratch left by a killed process (``.<name>.*``) is removed by the next write
of the same target.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCRATCH_MARK = ".scratch-"


def _read_umask() -> int:
    """The process umask, read once: /proc shows it without changing it for other threads."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)  # at import, before any thread of ours could create files
    os.umask(current)
    return current


UMASK = _read_umask()


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch folder that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(target)
    scratch = Path(tempfile.mkdtemp(prefix=_scratch_prefix(target), dir=target.parent))
    scratch.chmod(0o777 & ~UMASK)  # mkdtemp makes it private; outputs should not be
    try:
        yield scratch
        _fsync_tree(scratch)
        if target.exists() and _exchange(scratch, target):
            pass  # the old output now sits in scratch, removed below
        else:
            if target.exists():
                shutil.rmtree(target)  # no atomic exchange here: the shortest gap we can
            os.replace(scratch, target)
        _fsync(target.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a scratch path that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(target)
    handle, scratch_name = tempfile.mkstemp(
        prefix=_scratch_prefix(target), suffix=target.suffix, dir=target.parent
    )
    os.close(handle)
    scratch = Path(scratch_name)
    scratch.chmod(0o666 & ~UMASK)
    try:
        yield scratch
        _fsync(scratch)
        os.replace(scratch, target)
        _fsync(target.parent)
    finally:
        scratch.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as stable, diff-friendly JSON."""
    with atomic_file(path) as scratch:
        scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _scratch_prefix(target: Path) -> str:
    return f".{target.name}{SCRATCH_MARK}"


def _remove_stale_scratch(target: Path) -> None:
    """Scratch of an earlier write of ``target`` that was killed before it could clean up
    (DVC runs one stage at a time, so no live write owns it)."""
    for stale in target.parent.glob(f"{_scratch_prefix(target)}*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    return result == 0
