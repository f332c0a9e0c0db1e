import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.data import dataset


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


def test_edge_windows_take_each_rows_first_or_last_tokens():
    x = np.array([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9]])
    first = dataset.edge_windows(x, 2, "first")
    last = dataset.edge_windows(x, 2, "last")
    assert first.tolist() == [[0, 0, 0, 0, 5, 6], [0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 9]]
    assert last.tolist() == [[0, 0, 0, 0, 7, 8], [0, 0, 0, 0, 5, 6], [0, 0, 0, 0, 0, 9]]
    assert first.dtype == x.dtype


def test_random_windows_are_runs_of_each_rows_tokens():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 30), np.int32)
    for row in range(200):
        length = 1 + row % 30
        x[row, 30 - length :] = np.arange(100 * row + 2, 100 * row + 2 + length)
    windows = dataset.random_windows(x, 3, 8, np.random.default_rng(1))
    counts = dataset.token_counts(windows)
    assert ((counts >= np.minimum(3, dataset.token_counts(x))) & (counts <= 8)).all()
    for row, window in zip(x, windows, strict=True):
        tokens, kept = row[row != 0], window[window != 0]
        start = np.flatnonzero(tokens == kept[0])[0]
        assert np.array_equal(tokens[start : start + len(kept)], kept)  # a contiguous run
        assert (window[: len(window) - len(kept)] == 0).all()  # pre-padded
    assert len(set(map(len, [w[w != 0] for w in windows]))) > 3  # lengths vary
    assert not np.array_equal(windows, dataset.random_windows(x, 3, 8, rng))  # seeded draws


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
def test_no_movie_on_both_sides_when_each_movies_reviews_sit_together(order):
    # The real archive lists a movie's reviews next to each other, unlike round-robin fixtures:
    # a mask shifted by one row would then put the movies at each run's edge on both sides.
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 9, 80)
    movies = np.repeat([f"tt{m:07d}" for m in range(80)], sizes)
    table = pd.DataFrame({"movie": movies, "label": rng.integers(0, 2, len(movies))})
    if order == "shuffled":
        table = table.sample(frac=1, random_state=0).reset_index(drop=True)
    validation = dataset.split_by_movie(table, 0.2, seed=1)
    assert 0 < validation.sum() < len(table)
    assert set(table.movie[validation]).isdisjoint(table.movie[~validation])
    # Every review of a chosen movie is in validation, not just some.
    chosen = set(table.movie[validation])
    assert validation.tolist() == table.movie.isin(chosen).tolist()


def test_trim_padding_on_either_side():
    pre = np.array([[0, 0, 3, 4], [0, 0, 0, 5]])
    post = np.array([[3, 4, 0, 0], [5, 0, 0, 0]])
    assert dataset.trim_padding(pre).tolist() == [[3, 4], [0, 5]]
    assert dataset.trim_padding(post).tolist() == [[3, 4], [5, 0]]
    assert dataset.trim_padding(np.zeros((2, 3), int)).shape == (2, 1)


def test_shortest_first_orders_rows_by_token_count_keeping_ties_in_order():
    x = np.array([[0, 0, 3], [4, 5, 6], [0, 0, 7], [0, 8, 9]])
    counts = dataset.token_counts(x)
    assert dataset.shortest_first(counts).tolist() == [0, 2, 3, 1]
    assert dataset.shortest_first(counts, np.array([3, 2, 1])).tolist() == [2, 3, 1]


def test_split_fills_each_labels_target_exactly_with_one_label_movies():
    # Five movies with two positive reviews each, five with two negative: a fifth of each
    # label is two reviews, so exactly one movie of each kind goes to validation.
    movies = [f"m{index // 2}" for index in range(20)]
    labels = [int(index < 10) for index in range(20)]
    table = pd.DataFrame({"movie": movies, "label": labels})
    validation = dataset.split_by_movie(table, 0.2, seed=3)
    chosen = table[validation]
    assert chosen.label.value_counts().to_dict() == {0: 2, 1: 2}
    assert chosen.movie.nunique() == 2


def test_arrays_keep_their_dtypes(tmp_path):
    ids, x, y = np.array([5.0, 6.0]), np.array([[0, 3], [2, 4]]), np.array([1.0, 0.0])
    dataset.save_arrays(tmp_path / "train.npz", ids, x, y)
    loaded = dataset.load_arrays(tmp_path, "train")
    assert [a.dtype for a in loaded] == [np.int64, np.int32, np.int8]


def test_sequence_stats_exact_figures():
    counts = np.arange(1, 301)  # lengths before truncation: 1..300
    x = np.zeros((300, 100), np.int32)
    x[:, -1] = 5
    x[:10, -2] = dataset.OOV_ID  # 10 unknown of 310 kept tokens
    y = np.array([1] * 100 + [0] * 200)
    assert dataset.sequence_stats(counts, x, y) == {
        "reviews": 300,
        "positive_fraction": 0.3333,
        "length_p50": 150,
        "length_p90": 270,
        "length_p99": 297,
        "length_max": 300,
        "truncated_fraction": 0.6667,  # 200 of 300 are longer than 100
        "oov_rate": 0.0323,
    }
    only_unknown = np.array([[0, dataset.OOV_ID]])
    assert dataset.sequence_stats(np.array([1]), only_unknown, np.array([1]))["oov_rate"] == 1.0


def test_shortest_first_keeps_many_ties_in_their_order():
    counts = np.random.default_rng(0).integers(0, 3, 3000)
    order = dataset.shortest_first(counts)
    assert np.array_equal(counts[order], np.sort(counts))
    for count in range(3):
        rows = order[counts[order] == count]
        assert np.array_equal(rows, np.sort(rows))


def test_trim_padding_keeps_every_used_column():
    x = np.array([[0, 1, 2, 3, 0], [0, 0, 4, 0, 0]])
    assert np.array_equal(dataset.trim_padding(x), x[:, 1:4])


def test_random_window_lengths_cover_the_whole_range():
    x = np.arange(1, 51)[np.newaxis, :].repeat(500, axis=0)
    windows = dataset.random_windows(x, 3, 10, np.random.default_rng(0))
    assert set(dataset.token_counts(windows)) == set(range(3, 11))
