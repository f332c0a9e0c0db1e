import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.data import text

CLEANING = {"lowercase": True, "strip_html": True, "strip_punctuation": True}


def tokens(texts, **cleaning):
    return [[t.decode() for t in row] for row in text.tokenize(texts, **cleaning).to_list()]


def test_cleaning_removes_html_case_and_punctuation():
    assert tokens(["Great MOVIE!<br /><br />I didn't 'like' it... É!"], **CLEANING) == [
        ["great", "movie", "i", "didn't", "like", "it", "é"]
    ]


def test_quoted_words_side_by_side_lose_every_edge_apostrophe_in_one_cleaning():
    # Hypothesis found "0' '0": the matches for both sides used to share the space between them.
    assert tokens(["'Fargo' 'Heat'' ''' x'' ' it's"], **CLEANING) == [
        ["fargo", "heat", "x", "it's"]
    ]
    assert tokens(["0' '0"], **CLEANING) == [["0", "0"]]


def test_cleaning_options_can_be_switched_off():
    raw = tokens(["A<br />B!"], lowercase=False, strip_html=False, strip_punctuation=False)
    assert raw == [["A<br", "/>B!"]]


def test_vocabulary_ranks_by_count_then_alphabet():
    vocabulary = text.build_vocabulary([[b"b", b"a", b"c", b"b"], [b"c", b"d"]], size=5)
    assert vocabulary == ["b", "c", "a"]


def test_ties_go_by_alphabet_not_by_first_sight_and_str_tokens_count_too():
    seen = [["d", "c", "c", "d", "b", "a"]]  # d and c twice, first seen d; b and a once
    assert text.build_vocabulary(seen, size=6) == ["c", "d", "a", "b"]
    assert text.build_vocabulary(seen, size=3) == ["c"]
    assert text.build_vocabulary(seen, size=text.RESERVED_IDS) == []


def test_encoding_no_texts_gives_no_rows_of_the_right_width_and_type():
    encoder = text.TextEncoder(["a"], 7, **CLEANING)
    empty = encoder.encode([])
    assert empty.shape == (0, 7) and empty.dtype == np.int32
    assert encoder.compute_output_shape((5, 1)) == (5, 7)  # the batch stays the batch


@pytest.mark.parametrize(
    ("padding", "truncating", "expected"),
    [
        ("pre", "pre", [[3, 4, 5], [0, 2, 3]]),
        ("pre", "post", [[2, 3, 4], [0, 2, 3]]),
        ("post", "pre", [[3, 4, 5], [2, 3, 0]]),
        ("post", "post", [[2, 3, 4], [2, 3, 0]]),
    ],
)
def test_padding_and_truncating_sides(padding, truncating, expected):
    encoder = text.TextEncoder(["a", "b", "c", "d"], 3, padding, truncating, **CLEANING)
    assert encoder.encode(["A b c d", "a B"]).tolist() == expected


def test_unknown_words_map_to_oov_and_vocab_size_counts_reserved_ids():
    encoder = text.TextEncoder(["good"], 4, **CLEANING)
    assert encoder.encode(["good unseen"]).tolist() == [[0, 0, text.RESERVED_IDS, text.OOV_ID]]
    assert encoder.vocab_size == 3


@pytest.mark.parametrize("padding, truncating", [("pre", "pre"), ("post", "post")])
def test_a_narrower_encoder_keeps_the_vocabulary_cleaning_and_sides(padding, truncating):
    wide = text.TextEncoder(["a", "b", "c"], 6, padding, truncating, lowercase=False)
    narrow = text.with_max_length(wide, 2)
    assert narrow.max_length == 2 and narrow.vocabulary == wide.vocabulary
    assert narrow.cleaning == wide.cleaning and (narrow.padding, narrow.truncating) == (
        padding, truncating,
    )  # fmt: skip
    kept = {"pre": [[4, 1]], "post": [[2, 1]]}[truncating]  # c A | a B
    np.testing.assert_array_equal(narrow.encode(["a B c A"]), kept)  # A, B: unknown (not lowered)


def test_empty_vocabulary_is_refused():
    with pytest.raises(ValueError, match="non-empty vocabulary"):
        text.TextEncoder([], 4)


def test_encoder_round_trips_through_json_and_keras(tmp_path):
    encoder = text.TextEncoder(["good", "bad"], 5, "post", "post", **CLEANING)
    text.save_encoder(encoder, tmp_path / "encoder.json")
    reloaded = text.load_encoder(tmp_path / "encoder.json")
    reviews = ["Good, good <br />BAD!", "nothing known"]
    assert np.array_equal(reloaded.encode(reviews), encoder.encode(reviews))

    inputs = keras.Input(shape=(1,), dtype="string")
    keras.Model(inputs, encoder(inputs)).save(tmp_path / "encoder.keras")
    model = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    served = model(tf.constant([[review] for review in reviews])).numpy()
    assert np.array_equal(served, encoder.encode(reviews))
