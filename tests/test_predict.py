import hashlib
import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import yaml

from imdb_sentiment import inference, text
from imdb_sentiment.model import build_classifier, build_end_to_end, load_model
from imdb_sentiment.predict import ModelError, Predictor, model_card, verify_artifact

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
        verify_artifact(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("other.txt", "x")
    with pytest.raises(ModelError, match="has no config.json"):
        Predictor.load(tmp_path / "empty.keras")


def test_classifier_alone_is_not_an_end_to_end_model(pipeline_run):
    with pytest.raises(ModelError, match="not an end-to-end sentiment model"):
        Predictor.load(pipeline_run / "models/classifier.keras")


def test_model_card_names_hash_params_and_accuracy(model_path, pipeline_run):
    card = model_card(model_path)
    assert len(card["sha256"]) == 64 and card["params"]["train.lstm_units"] == 4
    assert card["test_accuracy"] is not None


def test_model_card_tells_whether_the_file_is_the_one_dvc_lock_recorded(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    model = models / "end_to_end.keras"
    model.write_bytes(b"model bytes")
    assert model_card(model)["matches_dvc_lock"] is None  # no dvc.lock
    listing = [{"relpath": "end_to_end.keras", "md5": hashlib.md5(b"model bytes").hexdigest()}]
    cache = tmp_path / ".dvc/cache/files/md5/ab"
    cache.mkdir(parents=True)
    (cache / "cdef.dir").write_text(json.dumps(listing))
    lock = {"stages": {"train": {"outs": [{"path": "models", "md5": "abcdef.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert model_card(model)["matches_dvc_lock"] is True
    model.write_bytes(b"another model")
    assert model_card(model)["matches_dvc_lock"] is False


def test_reviews_without_any_token_get_a_finite_probability(predictor):
    for prediction in predictor.predict(["!!!", "<br /><br />", "..."]):
        assert 0.0 < prediction.probability_positive < 1.0
