"""Matplotlib PNGs for people who look at results without DVC."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imdb_sentiment.data.text import LABEL_NAMES  # noqa: E402
from imdb_sentiment.fileio import atomic_file  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> None:
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    with atomic_file(path) as scratch:
        figure.savefig(scratch, dpi=100)
    plt.close(figure)


def confusion_matrix(matrix: np.ndarray, path: Path) -> None:
    """2x2 counts with actual labels on rows."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(matrix, cmap="Blues")
    names = list(LABEL_NAMES)
    axis.set(xticks=[0, 1], yticks=[0, 1], xticklabels=names, yticklabels=names)
    axis.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axis.text(column, row, f"{count:,}", ha="center", va="center", color=colour)
    _save(figure, path)


def roc_curve(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: Path) -> None:
    """ROC curve with the chance diagonal."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.plot(fpr, tpr, label=f"ROC-AUC {auc:.4f}")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    axis.legend(loc="lower right")
    _save(figure, path)
