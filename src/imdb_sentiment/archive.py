"""Fetch the aclImdb archive, verify its sha256, and read the labelled reviews out of it.

Reviews are read straight from the tar stream into memory: nothing is extracted to disk,
so a hostile member name cannot write anywhere. Unsafe members are still refused loudly,
because an archive that carries them is not the archive we asked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import zlib
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pooch
from tqdm import tqdm

ARCHIVE_ENV = "IMDB_ARCHIVE"
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
TABLE_COLUMNS = ["id", "rating", "label", "movie", "text"]
_REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")
_URLS = re.compile(r"(?:\./)?aclImdb/(train|test)/urls_(pos|neg)\.txt")
_MOVIE_ID = re.compile(r"title/(tt\d+)")


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
        if not fields or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
            raise ArchiveError(f"{sidecar}: expected a sha256 hex digest, got {fields[:1]}")
        return override, fields[0].lower()
    return override, sha256.lower()


def fetch_archive(source: str, sha256: str, cache_dir: Path) -> Path:
    """Return a local path to the verified archive, downloading http(s) sources into cache_dir."""
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        return _download(source, sha256, Path(cache_dir))
    path = Path(source[len("file://") :] if scheme == "file" else source)
    if not path.is_file():
        raise ArchiveError(f"archive not found: {path}")
    verify_sha256(path, sha256)
    return path


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


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ArchiveError naming both digests unless the file's sha256 is ``expected``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream, _progress(path.stat().st_size, f"sha256 {path.name}") as bar:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
            bar.update(len(block))
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise ArchiveError(f"sha256 mismatch for {path}: expected {expected}, got {actual}")


def _progress(total: int, description: str) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, desc=description, mininterval=1.0)


def read_reviews(path: Path) -> dict[str, pd.DataFrame]:
    """Read the labelled reviews of both splits into tables sorted by (label, id)."""
    texts: dict[tuple[str, str], dict[int, tuple[int, str]]] = {}
    urls: dict[tuple[str, str], list[str]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tqdm(
                tar, desc=f"reading {Path(path).name}", unit=" files", mininterval=1.0
            ):
                _refuse_unsafe(member, path)
                _collect(tar, member, texts, urls)
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


def _collect(tar: tarfile.TarFile, member: tarfile.TarInfo, texts: dict, urls: dict) -> None:
    if review := _REVIEW.fullmatch(member.name):
        split, polarity, review_id, rating = review.groups()
        text = tar.extractfile(member).read().decode("utf-8", errors="replace")
        texts.setdefault((split, polarity), {})[int(review_id)] = (int(rating), text)
    elif url_list := _URLS.fullmatch(member.name):
        lines = tar.extractfile(member).read().decode("utf-8").splitlines()
        urls[url_list.groups()] = lines


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
