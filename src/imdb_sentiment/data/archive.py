"""Fetch the aclImdb archive, verify its sha256, and read the labelled reviews out of it.

Reviews are read straight from the tar stream into memory: nothing is extracted to disk,
so a hostile member name cannot write anywhere. Unsafe members are still refused loudly,
because an archive that carries them is not the archive we asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pooch
from tqdm import tqdm

from imdb_sentiment.schema import SHA256_PATTERN

ARCHIVE_ENV = "IMDB_ARCHIVE"
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
TABLE_COLUMNS = ["id", "rating", "label", "movie", "text"]
_REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")
_URLS = re.compile(r"(?:\./)?aclImdb/(train|test)/urls_(pos|neg)\.txt")
_MOVIE_ID = re.compile(r"title/(tt\d+)")
# Bounds against a hostile archive: the official one holds ~100,000 members, its largest
# review ~14 kB and its largest url list ~1 MB.
MAX_MEMBERS = 250_000
MAX_MEMBER_BYTES = 8 * 2**20


class ArchiveError(RuntimeError):
    """The archive is missing, corrupt, unsafe, or does not hold the aclImdb layout."""


def resolve_source(url: str, sha256: str, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """Return (source, expected sha256), honouring the offline override in ``IMDB_ARCHIVE``.

    The override names a local archive; its hash comes from ``<archive>.sha256`` beside it
    when that file exists (a repacked copy differs from the official one), else ``sha256``.
    """
    environ = os.environ if environ is None else environ
    override = environ.get(ARCHIVE_ENV, "").strip()
    if not override:
        return url, sha256.lower()
    sidecar = Path(override + ".sha256")
    if sidecar.is_file():
        fields = sidecar.read_text(encoding="utf-8").split()
        if not fields or not re.fullmatch(SHA256_PATTERN, fields[0]):
            raise ArchiveError(f"{sidecar}: expected a sha256 hex digest, got {fields[:1]}")
        return override, fields[0].lower()
    return override, sha256.lower()


def fetch_archive(source: str, sha256: str, cache_dir: Path) -> Path:
    """A local path to the archive, downloading http(s) sources into cache_dir (verified as
    they arrive); local files are verified by :func:`open_verified` as they are read."""
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        return _download(source, sha256, Path(cache_dir))
    path = Path(source[len("file://") :] if scheme == "file" else source)
    if not path.is_file():
        raise ArchiveError(f"archive not found: {path}")
    return path


@contextlib.contextmanager
def open_verified(path: Path, expected: str) -> Iterator[BinaryIO]:
    """The open file, rewound, once its sha256 is ``expected``: what is parsed is what was
    hashed, even if the path is replaced meanwhile."""
    with open(path, "rb") as stream:
        _check_sha256(stream, Path(path), expected)
        stream.seek(0)
        yield stream


def _download(url: str, sha256: str, cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(url).path).name or "archive.tar.gz"
    try:
        # pooch streams to a temporary file and only moves it into place once the hash matches.
        local = pooch.retrieve(
            url, known_hash=f"sha256:{sha256}", fname=name, path=cache_dir, progressbar=True
        )
    except ValueError as error:
        raise ArchiveError(f"sha256 mismatch for {url}: {error}") from error
    except OSError as error:
        raise ArchiveError(f"download of {url} failed: {error}") from error
    finally:
        _remove_if_empty(cache_dir)
    return Path(local)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _check_sha256(stream: BinaryIO, path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with _progress(path.stat().st_size, f"sha256 {path.name}") as bar:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
            bar.update(len(block))
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise ArchiveError(f"sha256 mismatch for {path}: expected {expected}, got {actual}")


def _progress(total: int, description: str) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, desc=description, mininterval=1.0)


def read_reviews(source: Path | BinaryIO, name: str | None = None) -> dict[str, pd.DataFrame]:
    """Read the labelled reviews of both splits into tables sorted by (label, id).

    ``source`` is a path or an open file (from :func:`open_verified`); ``name`` names it in
    errors (default: the path).
    """
    path = Path(name or getattr(source, "name", source))
    texts: dict[tuple[str, str], dict[int, tuple[int, str]]] = {}
    urls: dict[tuple[str, str], list[str]] = {}
    opened = {"fileobj": source} if hasattr(source, "read") else {"name": source}
    try:
        with tarfile.open(mode="r:*", **opened) as tar:
            progress = tqdm(tar, desc=f"reading {path.name}", unit=" files", mininterval=1.0)
            for count, member in enumerate(progress, start=1):
                if count > MAX_MEMBERS:
                    raise ArchiveError(f"{path}: more than {MAX_MEMBERS:,} members")
                _refuse_unsafe(member, path)
                _collect(tar, member, texts, urls, path)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ArchiveError(f"{path}: corrupt or truncated archive: {error}") from error
    return {split: _build_table(path, split, texts, urls) for split in SPLITS}


def _refuse_unsafe(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts:
        raise ArchiveError(f"{archive}: refusing member outside the target folder: {name!r}")
    if member.issym() or member.islnk():
        raise ArchiveError(f"{archive}: refusing link member {name!r} -> {member.linkname!r}")
    if not (member.isfile() or member.isdir()):
        raise ArchiveError(f"{archive}: refusing special member {name!r}")


def _collect(
    tar: tarfile.TarFile, member: tarfile.TarInfo, texts: dict, urls: dict, archive: Path
) -> None:
    review, url_list = _REVIEW.fullmatch(member.name), _URLS.fullmatch(member.name)
    if not (review or url_list) or not member.isfile():  # a folder may carry such a name
        return
    if member.size > MAX_MEMBER_BYTES:
        raise ArchiveError(
            f"{archive}: member {member.name} is {member.size:,} bytes, over the "
            f"{MAX_MEMBER_BYTES:,}-byte limit"
        )
    data = tar.extractfile(member).read()
    if review:
        split, polarity, review_id, rating = review.groups()
        reviews = texts.setdefault((split, polarity), {})
        if int(review_id) in reviews:
            raise ArchiveError(
                f"{archive}: review id {int(review_id)} appears twice in aclImdb/{split}/"
                f"{polarity}/ (the second: {member.name})"
            )
        reviews[int(review_id)] = (int(rating), data.decode("utf-8", errors="replace"))
    else:
        try:
            urls[url_list.groups()] = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise ArchiveError(f"{archive}: {member.name} is not valid UTF-8: {error}") from error


def _build_table(archive: Path, split: str, texts: dict, urls: dict) -> pd.DataFrame:
    rows = []
    for polarity, label in LABELS.items():
        reviews = texts.get((split, polarity))
        if not reviews:
            raise ArchiveError(f"{archive}: no reviews under aclImdb/{split}/{polarity}/")
        movie_urls = urls.get((split, polarity))
        if movie_urls is None:
            raise ArchiveError(f"{archive}: missing aclImdb/{split}/urls_{polarity}.txt")
        for review_id in sorted(reviews):
            if review_id >= len(movie_urls):
                raise ArchiveError(
                    f"{archive}: aclImdb/{split}/urls_{polarity}.txt has {len(movie_urls)} lines, "
                    f"no line for review id {review_id}"
                )
            rating, text = reviews[review_id]
            rows.append((review_id, rating, label, _movie_id(movie_urls[review_id]), text))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _movie_id(url: str) -> str:
    match = _MOVIE_ID.search(url)
    return match.group(1) if match else url.strip()


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write each table as ``<split>.csv``; same reviews give byte-identical files."""
    for split, table in tables.items():
        table.to_csv(Path(folder) / f"{split}.csv", index=False, lineterminator="\n")


def read_table(folder: Path, split: str) -> pd.DataFrame:
    """Read a table written by :func:`write_tables`."""
    path = Path(folder) / f"{split}.csv"
    if not path.is_file():
        raise ArchiveError(f"{path}: not found; run the download stage first (dvc repro download)")
    return pd.read_csv(path, dtype={"movie": str, "text": str}, keep_default_na=False)


def texts_of(table: pd.DataFrame, ids: np.ndarray, labels: np.ndarray, where: Path) -> list[str]:
    """The texts of the reviews (``ids``, ``labels``) of a table read by :func:`read_table`, in
    that order. An id alone is not unique: the archive numbers each label's reviews apart."""
    indexed = table.set_index(["id", "label"])["text"]
    keys = pd.MultiIndex.from_arrays([ids, labels.astype(indexed.index.levels[1].dtype)])
    missing = keys.difference(indexed.index)
    if len(missing):
        review_id, label = (int(value) for value in missing[0])
        raise ArchiveError(
            f"{where}: review (id, label) ({review_id}, {label}) of the split is missing"
        )
    return indexed.loc[keys].tolist()
