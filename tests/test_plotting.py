import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import plotting


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


def test_training_curves_put_one_legend_beside_the_charts(tmp_path, saved_figures):
    members = {name: history(2, 0.01 * i) for i, name in enumerate(["member_1", "member_2"])}
    members["student"] = history(4, 0.03)
    plotting.training_curves(members, tmp_path / "curves.png")
    (figure,) = saved_figures
    assert all(axis.get_legend() is None for axis in figure.axes)
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == [f"{split} ({name})" for name in members for split in ("train", "validation")]
    assert legend.get_window_extent().x0 >= max(a.get_window_extent().x1 for a in figure.axes)


def test_a_single_model_is_labelled_train_and_validation(tmp_path, saved_figures):
    plotting.training_curves({"model": history(3, 0.0)}, tmp_path / "curves.png")
    (legend,) = saved_figures[0].legends
    assert [text.get_text() for text in legend.get_texts()] == ["train", "validation"]


@pytest.mark.parametrize(
    "draw",
    [
        lambda path: plotting.training_curves({"model": history(2, 0.0)}, path),
        lambda path: plotting.confusion_matrix(np.array([[40, 10], [5, 45]]), path),
        lambda path: plotting.roc_curve(np.array([0, 0.2, 1]), np.array([0, 0.8, 1]), 0.9, path),
    ],
    ids=["training_curves", "confusion_matrix", "roc_curve"],
)
def test_each_plot_is_one_png_and_nothing_else(tmp_path, draw):
    draw(tmp_path / "plot.png")
    assert [path.name for path in tmp_path.iterdir()] == ["plot.png"]
    height, width, _ = matplotlib.image.imread(tmp_path / "plot.png").shape
    assert height > 100 and width > 100
