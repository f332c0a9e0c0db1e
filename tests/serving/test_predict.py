import hashlib
import json
import threading
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.data import text
from imdb_sentiment.network.model_file import load_model
from imdb_sentiment.scoring import inference
from imdb_sentiment.serving import predict as predict_module
from imdb_sentiment.serving.predict import (
    OCCLUSION_TURN_ROWS,
    FairLock,
    ModelError,
    Predictor,
)
from imdb_sentiment.training.model import build_classifier, build_end_to_end

REVIEWS = ["A great, wonderful film!", "Boring and awful. The worst.", "plot " * 100]


@pytest.fixture(scope="module")
def model_path(pipeline_run):
    return pipeline_run / "models/end_to_end.keras"


@pytest.fixture(scope="module")
def predictor(model_path):
    return Predictor.load(model_path)


def test_warm_up_runs_the_text_path_at_every_serving_shape(monkeypatch):
    encoder = text.TextEncoder(["good", "bad"], max_length=300)
    classifier = build_classifier(encoder.vocab_size, 4, 4, 1, False, 0.0)
    predictor = Predictor(build_end_to_end(encoder, classifier))
    encoded, scored = [], []
    encode, score = predictor.encoder.encode, predictor._score
    monkeypatch.setattr(predictor.encoder, "encode", lambda t: encoded.append(t) or encode(t))
    monkeypatch.setattr(predictor, "_score", lambda ids: scored.append(ids.shape) or score(ids))
    predictor.warm_up((1, 4))
    expected = [(rows, n) for rows in (1, 4) for n in inference.length_buckets(300)]
    assert scored == expected and len(encoded) == len(expected)


def test_matches_the_exported_raw_text_model(predictor, model_path):
    served = load_model(model_path).predict_on_batch(tf.constant([[r] for r in REVIEWS]))
    assert np.allclose(predictor.probabilities(REVIEWS), served.reshape(-1), atol=1e-5)


def test_predictions_carry_label_probability_and_confidence(predictor):
    for prediction in predictor.predict(REVIEWS, threshold=0.5):
        p = prediction.probability_positive
        assert prediction.label == ("positive" if p >= 0.5 else "negative")
        assert prediction.confidence == pytest.approx(max(p, 1 - p), abs=1e-6)
    always_positive = predictor.predict(REVIEWS, threshold=1e-9)
    assert {p.label for p in always_positive} == {"positive"}


def test_word_influence_covers_every_word(predictor):
    influence = predictor.word_influence("Great film, <br />awful ending!")
    assert [word for word, _ in influence] == ["great", "film", "awful", "ending"]
    assert any(score != 0 for _, score in influence)


def test_truncated_words_have_no_influence(predictor):
    max_length = predictor.encoder.max_length
    words = predictor.word_influence("plot " * (max_length + 5))
    assert len(words) == max_length + 5 and all(score == 0 for _, score in words[:5])


def test_batch_size_below_one_is_rejected_before_loading(tmp_path):
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        Predictor.load(tmp_path / "never-read.keras", batch_size=0)


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5])
def test_threshold_outside_zero_one_is_rejected(predictor, threshold):
    with pytest.raises(ValueError, match=f"threshold must be between 0 and 1, got {threshold}"):
        predictor.predict(["fine"], threshold)


def test_missing_model_says_run_dvc_repro(tmp_path):
    with pytest.raises(ModelError, match=r"model not found: .*absent.keras; run `dvc repro` first"):
        Predictor.load(tmp_path / "absent.keras")


def test_not_a_keras_archive(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a .keras model archive"):
        Predictor.load(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("other.txt", "x")
    with pytest.raises(ModelError, match="has no config.json"):
        Predictor.load(tmp_path / "empty.keras")


def test_classifier_alone_is_not_an_end_to_end_model(pipeline_run):
    with pytest.raises(ModelError, match="not an end-to-end sentiment model"):
        Predictor.load(pipeline_run / "models/classifier.keras")


def test_reviews_without_any_token_get_a_finite_probability(predictor):
    for prediction in predictor.predict(["!!!", "<br /><br />", "..."]):
        assert 0.0 < prediction.probability_positive < 1.0


@pytest.mark.parametrize(("word", "sign"), [("superb", 1), ("awful", -1)])
def test_word_influence_points_the_way_of_an_independent_occlusion(predictor, word, sign):
    review = f"the film was {word} and the plot"
    influence = dict(predictor.word_influence(review))[word]
    # The same occlusion computed through Keras on the ids, not through the serving kernel
    ids = predictor.encoder.encode([review])
    occluded = ids.copy()
    occluded[ids == predictor.encoder.encode([word])[0][-1]] = text.PAD_ID
    full, without = predictor.classifier.predict_on_batch(np.concatenate([ids, occluded]))[:, 0]
    assert np.sign(influence) == sign == np.sign(full - without)
    assert influence == pytest.approx(full - without, abs=1e-4)


def test_word_influence_hands_the_lock_over_in_turns(predictor, monkeypatch):
    turns = []
    lock = predictor._lock
    monkeypatch.setattr(predictor, "_lock", CountingLock(lock, turns))
    words = predictor.word_influence(" ".join(["plot"] * 40))
    kept = sum(1 for _ in words)
    assert len(turns) >= (min(kept, predictor.encoder.max_length) + 1) // OCCLUSION_TURN_ROWS


class CountingLock:
    def __init__(self, lock, turns: list) -> None:
        self.lock, self.turns = lock, turns

    def __enter__(self) -> None:
        self.turns.append(1)
        self.lock.acquire()

    def __exit__(self, *exc_info) -> None:
        self.lock.release()


def test_the_fair_lock_serves_waiters_in_arrival_order():
    lock, order = FairLock(), []
    lock.acquire()
    threads = []
    for number in range(5):
        thread = threading.Thread(
            target=lambda n=number: (lock.acquire(), order.append(n), lock.release())
        )
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 5
        while len(lock._waiters) < number + 1:  # each waits in turn before the next asks
            assert time.monotonic() < deadline
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4] and not lock._held


def test_predictions_count_known_words(predictor):
    known, unknown = predictor.predict(["great film zzzunknownzzz", "!!! ???"])
    assert (known.known_words, unknown.known_words) == (2, 0)


def test_load_hashes_and_loads_the_same_bytes_even_if_the_file_is_swapped(
    model_path, tmp_path, monkeypatch
):
    path = tmp_path / "models" / "end_to_end.keras"
    path.parent.mkdir()
    path.write_bytes(model_path.read_bytes())
    original = hashlib.sha256(path.read_bytes()).hexdigest()
    real_load = predict_module.load_model

    def swap_then_load(copy):
        path.write_bytes(b"another file, checked out meanwhile")
        return real_load(copy)

    monkeypatch.setattr(predict_module, "load_model", swap_then_load)
    predictor = Predictor.load(path, expected_sha256=original)
    assert predictor.source.sha256 == original
    assert predictor.predict(["a great film"])[0].label in ("positive", "negative")


def test_a_sha256_pin_is_checked_before_loading(model_path):
    with pytest.raises(ModelError, match="not the expected " + "f" * 64):
        Predictor.load(model_path, expected_sha256="f" * 64)


def test_an_archive_member_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"x" * 5_000)
    monkeypatch.setattr(predict_module, "MAX_MODEL_MEMBER_BYTES", 1_000)
    with pytest.raises(ModelError, match="model.weights.h5 unpacks to 5,000 bytes"):
        Predictor.load(path)


def test_the_served_kernel_runs_from_the_description_saved_in_the_file(model_path, tmp_path):
    with zipfile.ZipFile(model_path) as saved:
        described = json.loads(saved.read("architecture.json"))
        entries = {info.filename: saved.read(info) for info in saved.infolist()}
    assert [view["branch"] for view in described["members"][0]["views"]] == ["words", "pairs"]
    served = Predictor.load(model_path)
    assert served.kernel == "numba"
    # A description that names a layer the model lacks: Keras scores it, the same numbers.
    described["members"][0]["views"][1]["branch"] = "no_such_branch"
    entries["architecture.json"] = json.dumps(described).encode()
    tampered = tmp_path / "tampered.keras"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    fallback = Predictor.load(tampered)
    assert fallback.kernel == "keras"
    np.testing.assert_allclose(
        fallback.probabilities(REVIEWS), served.probabilities(REVIEWS), atol=1e-5
    )


def test_score_ids_scores_encoded_reviews_as_probabilities_scores_their_text(predictor):
    reviews = ["a great film", "dull and far too long", "not bad at all"]
    ids = predictor.encoder.encode(reviews)
    np.testing.assert_allclose(
        predictor.score_ids(ids), predictor.probabilities(reviews), rtol=0, atol=1e-6
    )
