import json

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.data import archive, dataset, text
from imdb_sentiment.params import ParamsError
from imdb_sentiment.scoring import evaluation
from stages import preprocess
from tests.archive_factory import NEGATIVE_WORDS, NEUTRAL_WORDS, POSITIVE_WORDS, make_archive


def test_writes_encoded_splits(pipeline_run):
    prepared = pipeline_run / "data/prepared"
    sizes = {}
    for split in ("train", "validation", "test"):
        ids, x, y = dataset.load_arrays(prepared, split)
        assert x.shape == (len(ids), 24) and x.dtype == np.int32 and set(y) == {0, 1}
        sizes[split] = len(ids)
    assert sizes["train"] + sizes["validation"] == 48 and sizes["test"] == 48
    encoder = text.load_encoder(prepared / "encoder.json")
    # The tiny archive has fewer distinct words than vocab_size allows: all of them are kept.
    words = set(POSITIVE_WORDS + NEGATIVE_WORDS + NEUTRAL_WORDS)
    assert set(encoder.vocabulary) == words and encoder.vocab_size == len(words) + 2 < 40


def test_validation_shares_no_movie_with_train(pipeline_run):
    raw = pd.read_csv(pipeline_run / "data/raw/train.csv")
    movie_of = dict(zip(raw.id * 2 + raw.label, raw.movie, strict=True))

    def movies(split):
        ids, _, y = dataset.load_arrays(pipeline_run / "data/prepared", split)
        return {movie_of[i * 2 + label] for i, label in zip(ids, y, strict=True)}

    assert movies("train").isdisjoint(movies("validation"))
    stats = json.loads((pipeline_run / "metrics/preprocess.json").read_text())
    assert stats["movies_in_train_and_validation"] == 0
    assert stats["train"]["reviews"] + stats["validation"]["reviews"] == 48


def test_the_training_reviews_short_views_are_cut_as_evaluate_cuts_the_test_reviews(pipeline_run):
    prepared = pipeline_run / "data/prepared"
    ids, _, y = dataset.load_arrays(prepared, "train")
    view_ids, views, view_labels = dataset.load_arrays(prepared, dataset.SHORT_VIEWS_SPLIT)
    assert np.array_equal(view_ids, np.tile(ids, 2)) and np.array_equal(view_labels, np.tile(y, 2))
    table = archive.read_table(pipeline_run / "data/raw", "train")
    texts = archive.texts_of(table, ids, y, pipeline_run / "data/raw/train.csv")
    encoder = text.load_encoder(prepared / "encoder.json")
    last = [evaluation.last_sentence(t) for t in texts]
    first = [evaluation.first_words(t) for t in texts]
    assert np.array_equal(views, np.concatenate([encoder.encode(last), encoder.encode(first)]))


def test_the_training_reviews_sentences_are_cut_and_encoded_narrow(pipeline_run):
    prepared = pipeline_run / "data/prepared"
    ids, _, y = dataset.load_arrays(prepared, "train")
    sentence_ids, x, labels = dataset.load_arrays(prepared, dataset.SENTENCES_SPLIT)
    table = archive.read_table(pipeline_run / "data/raw", "train")
    cut = [evaluation.long_sentences(t) for t in archive.texts_of(table, ids, y, None)]
    counts = [len(parts) for parts in cut]
    assert sum(counts) > len(ids)  # the tiny reviews have several sentences each
    assert np.array_equal(sentence_ids, np.repeat(ids, counts))
    assert np.array_equal(labels, np.repeat(y, counts))
    encoder = text.load_encoder(prepared / "encoder.json")
    width = min(dataset.SENTENCE_TOKENS, encoder.max_length)
    assert x.shape[1] == width
    flat = [sentence for parts in cut for sentence in parts]
    assert np.array_equal(x, text.with_max_length(encoder, width).encode(flat))


def test_arrays_match_the_saved_encoder(pipeline_run):
    encoder = text.load_encoder(pipeline_run / "data/prepared/encoder.json")
    raw = pd.read_csv(pipeline_run / "data/raw/test.csv", keep_default_na=False)
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "test")
    assert np.array_equal(encoder.encode(raw["text"].tolist()), x)


def test_fraction_that_leaves_no_validation_set_is_refused(pipeline_run, tmp_path):
    params = preprocess.Params(
        vocab_size=40,
        max_length=8,
        padding="pre",
        truncating="pre",
        validation_fraction=0.01,
        seed=0,
        lowercase=True,
        strip_html=True,
        strip_punctuation=True,
    )
    with pytest.raises(ParamsError, match="validation_fraction = 0.01 leaves an empty validation"):
        preprocess.run(
            params, pipeline_run / "data/raw", tmp_path / "prepared", tmp_path / "s.json"
        )
    assert not (tmp_path / "prepared").exists()


def test_the_vocabulary_is_fitted_on_the_training_part_only(tmp_path):
    # A word of its own for every train movie, and one in every test review
    movies = [f"tt{m:07d}" for m in range(8)]
    words = {f"train:{movie}": f"moviecue{number}" for number, movie in enumerate(movies)}
    archive_path = tmp_path / "tiny.tar.gz"
    make_archive(archive_path, words_by_split={**words, "test": "testonlyword"})
    (tmp_path / "raw").mkdir()
    archive.write_tables(archive.read_reviews(archive_path), tmp_path / "raw")
    params = preprocess.Params(
        vocab_size=200,
        max_length=40,
        padding="pre",
        truncating="pre",
        validation_fraction=0.25,
        seed=42,
        lowercase=True,
        strip_html=True,
        strip_punctuation=True,
    )
    prepared = tmp_path / "prepared"
    preprocess.run(params, tmp_path / "raw", prepared, tmp_path / "stats.json")
    encoder = text.load_encoder(prepared / "encoder.json")
    raw = archive.read_table(tmp_path / "raw", "train")
    validation_ids, _, _ = dataset.load_arrays(prepared, "validation")
    train_ids, _, _ = dataset.load_arrays(prepared, "train")
    validation_movies = set(raw[raw.id.isin(validation_ids)].movie) - set(
        raw[raw.id.isin(train_ids)].movie
    )
    assert validation_movies  # the split put some movies aside
    unseen = ["testonlyword"] + [words[f"train:{movie}"] for movie in validation_movies]
    seen = [words[f"train:{movie}"] for movie in set(movies) - validation_movies]
    assert set(unseen).isdisjoint(encoder.vocabulary) and set(seen) <= set(encoder.vocabulary)
    assert (encoder.encode([" ".join(unseen)])[0][-len(unseen) :] == text.OOV_ID).all()


def ungrouped_raw_tables(folder, duplicated: int):
    """data/raw from a table source with no group column; ``duplicated`` test texts are
    copies of training texts."""
    from tests.table_factory import review_table

    folder.mkdir(parents=True)
    frames = {
        "train": review_table(per_class=20, seed=0),
        "test": review_table(per_class=20, seed=1),
    }
    copies = frames["train"].review.iloc[:duplicated].to_numpy()
    frames["test"].loc[: duplicated - 1, "review"] = copies
    for split, frame in frames.items():
        rows = pd.DataFrame(
            {
                "id": range(len(frame)),
                "rating": frame.sentiment,
                "label": (frame.sentiment == "positive").astype(int),
                "movie": "",
                "text": frame.review,
            }
        )
        rows.to_csv(folder / f"{split}.csv", index=False)


def test_without_groups_validation_is_stratified_and_duplicates_are_counted(tmp_path):
    ungrouped_raw_tables(tmp_path / "raw", duplicated=3)
    params = preprocess.Params(
        vocab_size=40, max_length=8, padding="pre", truncating="pre", validation_fraction=0.25,
        seed=0, lowercase=True, strip_html=True, strip_punctuation=True,
    )  # fmt: skip
    preprocess.run(params, tmp_path / "raw", tmp_path / "prepared", tmp_path / "stats.json")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["validation_grouped"] is False and stats["source"] is None
    assert stats["validation"]["reviews"] == 10 and stats["validation"]["positive_fraction"] == 0.5
    assert stats["texts_in_train_and_test"] >= 3  # the copies, and any tiny-text coincidences
    train = pd.read_csv(tmp_path / "raw/train.csv", keep_default_na=False)
    test = pd.read_csv(tmp_path / "raw/test.csv", keep_default_na=False)
    assert stats["texts_in_train_and_test"] == int(test.text.isin(set(train.text)).sum())
