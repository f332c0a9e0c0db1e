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
    shuffle_members: int | None = None,
    url_lines: int | None = None,
    words_by_split: dict[str, str] | None = None,
) -> str:
    """Write a .tar.gz at ``path`` and return its sha256.

    Each split has ``per_class`` reviews per label spread over ``movies`` movies (review k of
    split s is movie ``tt{s * 1000 + k % movies:07d}``); train and test movies never overlap,
    as in the official archive. ``shuffle_members``: members in an order shuffled with that
    seed; ``url_lines``: keep only that many lines of each url file; ``words_by_split``: a word
    appended to every review of that split ("train:<movie>" keys: of that train movie only).
    """
    rng = random.Random(seed)
    members: list[tuple[str, bytes]] = []
    words = words_by_split or {}
    for split_index, split in enumerate(splits):
        for polarity, label in (("neg", 0), ("pos", 1)):
            urls = []
            for review_id in range(per_class):
                rating = rng.choice([7, 8, 9, 10] if label else [1, 2, 3, 4])
                movie = f"tt{split_index * 1000 + review_id % movies:07d}"
                extra_words = [words.get(split), words.get(f"{split}:{movie}")]
                text = " ".join([review_text(label, rng), *filter(None, extra_words)])
                members.append(
                    (f"aclImdb/{split}/{polarity}/{review_id}_{rating}.txt", text.encode())
                )
                urls.append(f"http://www.imdb.com/title/{movie}/usercomments")
            urls = urls[:url_lines] if url_lines is not None else urls
            members.append(
                (f"aclImdb/{split}/urls_{polarity}.txt", ("\n".join(urls) + "\n").encode())
            )
    if shuffle_members is not None:
        random.Random(shuffle_members).shuffle(members)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            _add(tar, name, data)
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
