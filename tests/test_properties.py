"""Property-based tests (hypothesis): text cleaning and encoding on any Unicode, and the tar
reader on arbitrary members. Bounded in examples, seconds in all."""

from __future__ import annotations

import io
import tarfile

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imdb_sentiment.data import archive, text

BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
CLEANING = {"lowercase": True, "strip_html": True, "strip_punctuation": True}
ENCODER = text.TextEncoder(["good", "bad", "film", "don't"], max_length=12, **CLEANING)


@BOUNDED
@given(st.text(max_size=200))
@example("0' '0")  # a draw that once failed: quotes of neighbouring words
def test_cleaning_any_unicode_never_fails_and_its_tokens_are_a_fixed_point(review):
    tokens = [t.decode() for t in text.tokenize([review], **CLEANING)[0].numpy()]
    again = [t.decode() for t in text.tokenize([" ".join(tokens)], **CLEANING)[0].numpy()]
    assert again == tokens and all(token.strip() == token and token for token in tokens)


@BOUNDED
@given(st.lists(st.sampled_from(["good", "bad", "film", "don't", "zzz"]), max_size=30))
def test_encoding_round_trips_known_words_and_marks_the_rest(words):
    ids = ENCODER.encode([" ".join(words)])[0]
    kept = words[-12:]  # pre-truncation keeps the ending
    tokens = ids[ids != text.PAD_ID]
    vocabulary = ["", "[UNK]", *ENCODER.vocabulary]
    expected = [w if w in ENCODER.vocabulary else "[UNK]" for w in kept]
    assert [vocabulary[i] for i in tokens] == expected
    assert ids.shape == (12,) and ids.dtype == np.int32


@BOUNDED
@given(st.text(max_size=300))
def test_encoding_any_unicode_gives_ids_in_range(review):
    ids = ENCODER.encode([review])[0]
    assert ids.min() >= 0 and ids.max() < ENCODER.vocab_size


MEMBER_TYPES = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.FIFOTYPE,
]
NAMES = st.one_of(
    st.text(min_size=1, max_size=40),
    st.builds(
        lambda split, polarity, rid, rating: f"aclImdb/{split}/{polarity}/{rid}_{rating}.txt",
        st.sampled_from(["train", "test", "..", "/etc"]),
        st.sampled_from(["pos", "neg", "x"]),
        st.integers(0, 5),
        st.integers(0, 10),
    ),
)


@BOUNDED
@given(
    st.lists(st.tuples(NAMES, st.sampled_from(MEMBER_TYPES), st.binary(max_size=64)), max_size=8)
)
def test_the_tar_reader_reads_or_refuses_any_members_and_writes_nothing(tmp_path_factory, members):
    folder = tmp_path_factory.mktemp("tar")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = "target"
                tar.addfile(info)
    buffer.seek(0)
    try:
        tables = archive.read_reviews(buffer, str(folder / "fuzz.tar"))
    except archive.ArchiveError:
        tables = None
    assert tables is None or set(tables) == {"train", "test"}
    assert list(folder.iterdir()) == []
