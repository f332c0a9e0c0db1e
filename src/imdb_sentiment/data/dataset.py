"""Validation split, encoded arrays, their lengths and statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from imdb_sentiment.data.text import OOV_ID, PAD_ID


def split_by_movie(table: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation rows: whole movies, about ``fraction`` of each label.

    Reviews of one movie share names and plot words; letting a movie sit on both sides
    makes validation accuracy optimistic (the official test set shares no movie with train).
    Movies are visited in a seeded order and taken while neither label overshoots its target.
    """
    targets = table["label"].value_counts() * fraction
    per_movie = table.groupby("movie")["label"].value_counts().unstack(fill_value=0)
    order = np.random.default_rng(seed).permutation(per_movie.index.to_numpy())
    taken = pd.Series(0.0, index=per_movie.columns)
    chosen = []
    for movie in order:
        counts = per_movie.loc[movie]
        if ((taken + counts) <= targets.reindex(counts.index)).all():  # same labels, aligned
            chosen.append(movie)
            taken += counts
    return table["movie"].isin(chosen).to_numpy()


# The training reviews' short views (preprocess): each view of every training review, view
# after view (scoring.evaluation.SHORT_VIEWS' order), with its review's id and label.
SHORT_VIEWS_SPLIT = "train_short_views"
# Every sentence of at least 4 words of each training review (preprocess), in its review's
# order, with its review's id and label; SENTENCE_TOKENS ids wide (a sentence is short).
SENTENCES_SPLIT = "train_sentences"
SENTENCE_TOKENS = 100


def save_arrays(path: Path, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Save one split's review ids, encoded sequences and labels."""
    np.savez(path, ids=ids.astype(np.int64), x=x.astype(np.int32), y=y.astype(np.int8))


def load_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (ids, x, y) of a split saved by :func:`save_arrays`."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run the preprocess stage first")
    with np.load(path) as arrays:
        return arrays["ids"], arrays["x"], arrays["y"]


def sequence_stats(token_counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    """Length percentiles (before truncation), truncation and OOV rates, class balance."""
    kept = x != PAD_ID
    return {
        "reviews": int(len(y)),
        "positive_fraction": round(float(np.mean(y)), 4),
        "length_p50": int(np.percentile(token_counts, 50)),
        "length_p90": int(np.percentile(token_counts, 90)),
        "length_p99": int(np.percentile(token_counts, 99)),
        "length_max": int(token_counts.max()),
        "truncated_fraction": round(float(np.mean(token_counts > x.shape[1])), 4),
        "oov_rate": round(float(np.sum(x == OOV_ID) / max(kept.sum(), 1)), 4),
    }


def token_counts(x: np.ndarray) -> np.ndarray:
    """Real (non-padding) tokens per row."""
    return (x != PAD_ID).sum(axis=1)


def shortest_first(counts: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``rows`` (default: all) ordered by their token counts, shortest first, ties in their
    given order: the one length sort of training batches and of scoring."""
    rows = np.arange(len(counts)) if rows is None else rows
    return rows[np.argsort(counts[rows], kind="stable")]


def trim_padding(x: np.ndarray) -> np.ndarray:
    """Drop columns that are padding in every row, whichever side the padding is on."""
    used = np.flatnonzero((x != PAD_ID).any(axis=0))
    if used.size == 0:
        return x[:, :1]
    return x[:, used[0] : used[-1] + 1]


def random_windows(
    x: np.ndarray, min_tokens: int, max_tokens: int, rng: np.random.Generator
) -> np.ndarray:
    """One random window of each pre-padded row: a run of ``min_tokens``..``max_tokens`` of
    its tokens (all of them if it has fewer), pre-padded to the same width.

    A model trained on whole reviews rarely sees a short text; windows teach it to judge the
    sentence that a user types.
    """
    counts = token_counts(x)
    lengths = np.minimum(rng.integers(min_tokens, max_tokens + 1, len(x)), counts)
    starts = rng.integers(0, counts - lengths + 1)  # within the row's tokens
    return _pre_padded_windows(x, counts, starts, lengths)


def edge_windows(x: np.ndarray, tokens: int, where: str) -> np.ndarray:
    """Each pre-padded row's first or last ``tokens`` tokens (``where``: "first" | "last")."""
    counts = token_counts(x)
    lengths = np.minimum(tokens, counts)
    starts = np.zeros_like(counts) if where == "first" else counts - lengths
    return _pre_padded_windows(x, counts, starts, lengths)


def _pre_padded_windows(
    x: np.ndarray, counts: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Rows holding tokens ``starts``..``starts + lengths`` of each row's real tokens, at
    the rows' ends. The rows must be pre-padded (their tokens at the end)."""
    width = x.shape[1]
    columns = np.arange(width)[np.newaxis, :]
    first_token = width - counts  # column of each row's first real token
    source = first_token[:, None] + starts[:, None] + columns - (width - lengths)[:, None]
    keep = columns >= (width - lengths)[:, None]
    gathered = np.take_along_axis(x, np.clip(source, 0, width - 1), axis=1)
    return np.where(keep, gathered, PAD_ID).astype(x.dtype)
