import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.data import ngrams
from imdb_sentiment.data.text import OOV_ID, PAD_ID

WORDS = 10  # word ids 0..9: 0 padding, 1 unknown word


def test_pair_keys_pair_each_word_with_the_one_before_it():
    ids = np.array([[0, 0, 3, 4, 1], [5, 6, 0, 0, 0]])
    assert ngrams.ngram_keys(ids, WORDS, 2).numpy().tolist() == [
        [-1, -1, -1, 34, 41],  # the first word has no predecessor; an unknown word pairs
        [-1, 56, -1, -1, -1],
    ]


def test_triple_keys_need_three_real_words_in_a_row():
    ids = np.array([[0, 2, 3, 4, 1], [5, 6, 7, 0, 8], [9, 8, 0, 0, 0]])
    assert ngrams.ngram_keys(ids, WORDS, 3).numpy().tolist() == [
        [-1, -1, -1, 234, 341],
        [-1, -1, 567, -1, -1],  # padding inside a review breaks the run
        [-1, -1, -1, -1, -1],  # two words make no triple
    ]


def test_keys_that_would_overflow_int64_are_refused():
    with pytest.raises(ValueError, match="overflow"):
        ngrams.ngram_keys(np.array([[2, 3]]), 10**7, 3)
    with pytest.raises(ValueError, match="at least 2 words"):
        ngrams.WordNgrams(np.array([2]), WORDS, n=1)


def test_the_key_range_ends_exactly_where_int64_does():
    # Keys run to words**n - 1: 2**21 words make triples up to 2**63 - 1, int64's largest.
    ngrams.ngram_keys(np.array([[2, 3, 4]]), 2**21, 3)
    with pytest.raises(ValueError, match="2097153-word vocabulary overflow int64"):
        ngrams.ngram_keys(np.array([[2, 3, 4]]), 2**21 + 1, 3)


def test_ties_at_the_cut_keep_the_smallest_keys_however_many_tie():
    # 60 pairs seen once each (more than numpy's small-array sort, which is stable anyway),
    # and one seen twice: the cut keeps it, then the 9 smallest of the tied keys.
    rng = np.random.default_rng(0)
    words = rng.permutation(np.arange(2, 62))
    ids = np.stack([words, np.roll(words, 1)], axis=1)
    ids = np.concatenate([ids, ids[:1]])
    keys = ids[:, 0] * 100 + ids[:, 1]  # the earlier word is the higher digit
    kept = ngrams.build_ngram_vocabulary(ids, 100, 2 + 10, 2)
    assert kept.tolist() == sorted([keys[0], *sorted(set(keys[1:-1]))[:9]])


def test_vocabulary_keeps_the_most_frequent_ngrams_ties_broken_by_key():
    ids = np.array([[2, 3, 2, 3, 2, 3], [5, 4, 0, 7, 6, 0]])
    # (2,3) three times, (3,2) twice, (5,4) and (7,6) once each
    assert ngrams.build_ngram_vocabulary(ids, WORDS, 2 + 3, 2).tolist() == [23, 32, 54]
    assert ngrams.build_ngram_vocabulary(ids, WORDS, 2 + 99, 2).tolist() == [23, 32, 54, 76]
    assert ngrams.build_ngram_vocabulary(ids, WORDS, 2, 2).size == 0
    # (2,3,2) and (3,2,3) twice each; the second review has none
    assert ngrams.build_ngram_vocabulary(ids, WORDS, 2 + 1, 3).tolist() == [232]


def test_ngrams_are_counted_across_chunks_of_rows(monkeypatch):
    # (2,3) in rows 0, 1 and 3, twice in row 3; (3,4) in rows 1 and 2; (4,4) in row 4 only;
    # chunks of two rows: the counts of one n-gram meet from different chunks.
    ids = np.array(
        [[0, 0, 0, 2, 3], [2, 3, 4, 0, 0], [0, 0, 0, 3, 4], [2, 3, 2, 3, 0], [4, 4, 0, 0, 0]]
    )
    monkeypatch.setattr(ngrams, "COUNT_CHUNK", 2)
    values, counts = ngrams.ngram_counts(ids, WORDS, 2)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {23: 4, 32: 1, 34: 2, 44: 1}
    assert counts.dtype == np.int64
    assert ngrams.build_ngram_vocabulary(ids, WORDS, 2 + 2, 2).tolist() == [23, 34]
    assert ngrams.ngram_counts(ids[:0], WORDS, 2)[0].size == 0
    monkeypatch.setattr(ngrams, "COUNT_CHUNK", 2048)
    assert ngrams.build_ngram_vocabulary(ids, WORDS, 2 + 2, 2).tolist() == [23, 34]


def test_ngram_ids_number_kept_ngrams_after_padding_and_unknown():
    ids = np.array([[0, 2, 3, 2, 9], [5, 4, 0, 3, 2]])
    layer = ngrams.WordNgrams(np.array([23, 32, 54]), WORDS, 2)
    expected = [[PAD_ID, PAD_ID, 2, 3, OOV_ID], [PAD_ID, 4, PAD_ID, PAD_ID, 3]]
    assert layer(ids).numpy().tolist() == expected
    assert layer.traced()(ids).tolist() == expected
    empty = ngrams.WordNgrams(np.array([], np.int64), WORDS, 2)
    assert empty(ids).numpy().tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 1]]


def brute_force_ids(ids: np.ndarray, vocabulary: np.ndarray, n: int) -> list[list[int]]:
    """Each step's n-gram id by reading the words off one by one (a test oracle)."""
    rows = []
    for review in ids.tolist():
        row = []
        for t in range(len(review)):
            words = review[t - n + 1 : t + 1] if t >= n - 1 else []
            if not words or PAD_ID in words:
                row.append(PAD_ID)
                continue
            key = sum(word * WORDS ** (len(words) - 1 - i) for i, word in enumerate(words))
            known = np.flatnonzero(vocabulary == key)
            row.append(int(known[0]) + 2 if known.size else OOV_ID)
        rows.append(row)
    return rows


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("kept", [0, 1, 5, 40])
def test_layer_matches_word_by_word_reading_eager_traced_and_under_xla(kept, n):
    rng = np.random.default_rng(kept)
    ids = rng.integers(0, WORDS, size=(6, 12)).astype(np.int32)
    ids[0, :7] = 0
    ids[1, 4:] = 0
    vocabulary = ngrams.build_ngram_vocabulary(ids, WORDS, 2 + kept, n)
    layer = ngrams.WordNgrams(vocabulary, WORDS, n)
    expected = brute_force_ids(ids, vocabulary, n)
    assert layer.vocab_size == len(vocabulary) + 2
    assert layer(ids).numpy().tolist() == expected
    assert layer.traced()(ids).tolist() == expected
    xla = tf.function(layer, jit_compile=True)
    assert xla(tf.constant(ids)).numpy().tolist() == expected


@pytest.mark.parametrize("steps", [0, 1, 2])
def test_layer_keeps_the_length_of_reviews_shorter_than_n(steps):
    layer = ngrams.WordNgrams(np.array([234]), WORDS, n=3)
    ids = np.full((2, steps), 5, np.int32)
    assert layer.traced()(ids).tolist() == [[PAD_ID] * steps] * 2
    assert layer(ids).shape == (2, steps)


def test_layer_config_round_trips_the_vocabulary_and_n():
    layer = ngrams.WordNgrams(np.array([23, 32]), WORDS, n=3, name="triples")
    rebuilt = ngrams.WordNgrams.from_config(layer.get_config())
    assert rebuilt.vocabulary.tolist() == [23, 32] and rebuilt.word_vocab_size == WORDS
    assert rebuilt.n == 3 and not rebuilt.trainable


def test_layer_refuses_an_unsorted_vocabulary():
    with pytest.raises(ValueError, match="strictly increasing"):
        ngrams.WordNgrams(np.array([32, 23]), WORDS)
