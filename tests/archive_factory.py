"""Build tiny aclImdb-layout archives for tests; never the real data."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

POSITIVE_WORDS = ["great", "wonderful", "superb", "loved", "brilliant", "moving", "fun"]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "hated", "dull", "waste", "worst"]
NEUTRAL_WORDS = ["the", "film", "movie", "plot", "actor", "scene", "story", "was", "and", "it"]


def review_text(label: int, rng: random.Random) -> str:
    """A short review whose sentiment words match ``label``, with the dataset's <br /> tags."""
    cues = POSITIVE_WORDS if label else NEGATIVE_WORDS
    words = [rng.choice(NEUTRAL_WORDS + cues) for _ in range(rng.randint(6, 30))]
    middle = len(words) // 2
    return " ".join(words[:middle]) + ".<br /><br />" + " ".join(words[middle:]).capitalize() + "!"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_300_000_000, 0o644
    tar.addfile(info, io.BytesIO(data))


def make_archive(
    path: Path,
    per_class: int = 24,
    movies: int = 8,
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "test"),
    extra: list[tarfile.TarInfo] | None = None,
) -> str:
    """Write a .tar.gz at ``path`` and return its sha256.

    Each split has ``per_class`` reviews per label spread over ``movies`` movies; train and
    test movies never overlap, as in the official archive.
    """
    rng = random.Random(seed)
    with tarfile.open(path, "w:gz") as tar:
        for split_index, split in enumerate(splits):
            for polarity, label in (("neg", 0), ("pos", 1)):
                urls = []
                for review_id in range(per_class):
                    rating = rng.choice([7, 8, 9, 10] if label else [1, 2, 3, 4])
                    text = review_text(label, rng).encode()
                    _add(tar, f"aclImdb/{split}/{polarity}/{review_id}_{rating}.txt", text)
                    movie = split_index * 1000 + review_id % movies
                    urls.append(f"http://www.imdb.com/title/tt{movie:07d}/usercomments")
                _add(tar, f"aclImdb/{split}/urls_{polarity}.txt", ("\n".join(urls) + "\n").encode())
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return sha256_of(path)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unsafe_member(kind: str) -> tarfile.TarInfo:
    """A member that would land outside the target folder, or a link."""
    if kind == "absolute":
        info = tarfile.TarInfo("/tmp/evil.txt")
    elif kind == "parent":
        info = tarfile.TarInfo("aclImdb/../../evil.txt")
    elif kind == "symlink":
        info = tarfile.TarInfo("aclImdb/train/pos/999_9.txt")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return info
    elif kind == "hardlink":
        info = tarfile.TarInfo("aclImdb/train/pos/998_9.txt")
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        return info
    else:
        raise ValueError(kind)
    info.size = 1
    return info
