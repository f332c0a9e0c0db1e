import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.scoring import plotting


def history(epochs: int, offset: float) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "loss": 0.7 - 0.1 * epoch,
            "val_loss": 0.75 - 0.05 * epoch,
            "accuracy": 0.8 + offset + 0.02 * epoch,
            "val_accuracy": 0.78 + offset + 0.01 * epoch,
        }
    )


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the plotting functions save, still open for inspection."""
    figures = []
    save = plotting._save

    def keep(figure, path):
        figures.append(figure)
        save(figure, path)

    monkeypatch.setattr(plotting, "_save", keep)
    return figures


@pytest.mark.parametrize(
    "draw",
    [
        lambda path: plotting.confusion_matrix(np.array([[40, 10], [5, 45]]), path),
        lambda path: plotting.roc_curve(np.array([0, 0.2, 1]), np.array([0, 0.8, 1]), 0.9, path),
    ],
    ids=["confusion_matrix", "roc_curve"],
)
def test_each_plot_is_one_png_and_nothing_else(tmp_path, draw):
    draw(tmp_path / "plot.png")
    assert [path.name for path in tmp_path.iterdir()] == ["plot.png"]
    height, width, _ = matplotlib.image.imread(tmp_path / "plot.png").shape
    assert height > 100 and width > 100
