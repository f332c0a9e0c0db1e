import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import dataset


@pytest.fixture
def reviews():
    """300 reviews of 60 movies; each movie has a mix of labels."""
    rng = np.random.default_rng(0)
    movies = [f"tt{index % 60:07d}" for index in range(300)]
    return pd.DataFrame({"id": range(300), "movie": movies, "label": rng.integers(0, 2, 300)})


def test_no_movie_on_both_sides(reviews):
    validation = dataset.split_by_movie(reviews, 0.2, seed=1)
    assert set(reviews.movie[validation]).isdisjoint(reviews.movie[~validation])


def test_fraction_is_respected_per_label(reviews):
    validation = dataset.split_by_movie(reviews, 0.2, seed=1)
    for label in (0, 1):
        share = validation[reviews.label == label].mean()
        assert 0.15 <= share <= 0.2


def test_split_is_seeded(reviews):
    first = dataset.split_by_movie(reviews, 0.2, seed=1)
    assert np.array_equal(first, dataset.split_by_movie(reviews, 0.2, seed=1))
    assert not np.array_equal(first, dataset.split_by_movie(reviews, 0.2, seed=2))


def test_arrays_round_trip(tmp_path):
    x = np.array([[0, 2, 3], [4, 5, 6]])
    dataset.save_arrays(tmp_path / "train.npz", np.array([7, 9]), x, np.array([0, 1]))
    ids, loaded_x, y = dataset.load_arrays(tmp_path, "train")
    assert ids.tolist() == [7, 9] and loaded_x.dtype == np.int32 and y.tolist() == [0, 1]
    assert np.array_equal(loaded_x, x)
    with pytest.raises(FileNotFoundError, match="run the preprocess stage first"):
        dataset.load_arrays(tmp_path, "test")


def test_sequence_stats():
    x = np.array([[0, 1, 2], [3, 1, 1]])
    stats = dataset.sequence_stats(np.array([2, 5]), x, np.array([1, 0]))
    assert stats["oov_rate"] == pytest.approx(3 / 5, abs=1e-4)
    assert stats["truncated_fraction"] == 0.5
    assert stats["positive_fraction"] == 0.5 and stats["length_max"] == 5
