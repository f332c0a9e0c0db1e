import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment import word_pairs
from imdb_sentiment.text import OOV_ID, PAD_ID

WORDS = 10  # word ids 0..9: 0 padding, 1 unknown word


def test_pair_keys_pair_each_word_with_the_one_before_it():
    ids = np.array([[0, 0, 3, 4, 1], [5, 6, 0, 0, 0]])
    assert word_pairs.pair_keys(ids, WORDS).tolist() == [
        [-1, -1, -1, 34, 41],  # the first word has no predecessor; an unknown word pairs
        [-1, 56, -1, -1, -1],
    ]


def test_vocabulary_keeps_the_most_frequent_pairs_ties_broken_by_key():
    ids = np.array([[2, 3, 2, 3, 2, 3], [5, 4, 0, 7, 6, 0]])
    # (2,3) three times, (3,2) twice, (5,4) and (7,6) once each
    assert word_pairs.build_pair_vocabulary(ids, WORDS, size=2 + 3).tolist() == [23, 32, 54]
    assert word_pairs.build_pair_vocabulary(ids, WORDS, size=2 + 99).tolist() == [23, 32, 54, 76]
    assert word_pairs.build_pair_vocabulary(ids, WORDS, size=2).size == 0


def test_pair_ids_number_kept_pairs_after_padding_and_unknown():
    vocabulary = np.array([23, 32, 54])
    ids = np.array([[0, 2, 3, 2, 9], [5, 4, 0, 3, 2]])
    assert word_pairs.pair_ids(ids, vocabulary, WORDS).tolist() == [
        [PAD_ID, PAD_ID, 2, 3, OOV_ID],
        [PAD_ID, 4, PAD_ID, PAD_ID, 3],
    ]
    empty = word_pairs.pair_ids(ids, np.array([], np.int64), WORDS)
    assert empty.tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 1]]


@pytest.mark.parametrize("kept", [0, 1, 5, 40])
def test_layer_gives_the_same_ids_as_numpy_in_a_graph_and_under_xla(kept):
    rng = np.random.default_rng(kept)
    ids = rng.integers(0, WORDS, size=(6, 12)).astype(np.int32)
    ids[0, :7] = 0
    ids[1, 4:] = 0
    vocabulary = word_pairs.build_pair_vocabulary(ids, WORDS, size=2 + kept)
    layer = word_pairs.WordPairs(vocabulary, WORDS)
    expected = word_pairs.pair_ids(ids, vocabulary, WORDS)
    assert layer.vocab_size == len(vocabulary) + 2
    assert np.array_equal(layer(ids).numpy(), expected)
    xla = tf.function(layer, jit_compile=True)
    assert np.array_equal(xla(tf.constant(ids)).numpy(), expected)


def test_layer_config_round_trips_the_vocabulary():
    layer = word_pairs.WordPairs(np.array([23, 32]), WORDS, name="pairs")
    rebuilt = word_pairs.WordPairs.from_config(layer.get_config())
    assert rebuilt.vocabulary.tolist() == [23, 32] and rebuilt.word_vocab_size == WORDS
    assert not rebuilt.trainable


def test_layer_refuses_an_unsorted_vocabulary():
    with pytest.raises(ValueError, match="strictly increasing"):
        word_pairs.WordPairs(np.array([32, 23]), WORDS)
