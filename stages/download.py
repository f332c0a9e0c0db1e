"""Stage 1: fetch the aclImdb archive, verify its sha256, write data/raw/{train,test}.csv.

Offline: set IMDB_ARCHIVE to a local copy of the archive; it is hash-checked against
<archive>.sha256 beside it, or against download.sha256 when there is no such file.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from imdb_sentiment import archive
from imdb_sentiment.fileio import atomic_directory
from imdb_sentiment.params import run_stage

RAW_DIR = Path("data/raw")
CACHE_DIR = Path("data/cache")
_SHA256 = {"pattern": re.compile(r"[0-9a-fA-F]{64}"), "pattern_help": "expected 64 hex digits"}


SECTION = "download"


@dataclass(frozen=True)
class Params:
    """The download section of params.yaml."""

    url: str
    sha256: str = field(metadata=_SHA256)


def run(params: Params, raw_dir: Path = RAW_DIR, cache_dir: Path = CACHE_DIR) -> None:
    source, sha256 = archive.resolve_source(params.url, params.sha256)
    print(f"download: {source} (expecting sha256 {sha256})")
    path = archive.fetch_archive(source, sha256, cache_dir)
    with archive.open_verified(path, sha256) as stream:  # parse the very bytes that were hashed
        tables = archive.read_reviews(stream, str(path))
    with atomic_directory(raw_dir) as scratch:
        archive.write_tables(tables, scratch)
    for split, table in tables.items():
        print(f"download: {split}: {len(table)} reviews -> {raw_dir / (split + '.csv')}")


def main() -> int:
    return run_stage(SECTION, Params, run, (archive.ArchiveError,))


if __name__ == "__main__":
    sys.exit(main())
