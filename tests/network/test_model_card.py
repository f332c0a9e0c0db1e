import hashlib
import json

import pytest

from imdb_sentiment.network import model_card
from imdb_sentiment.training.fitting import StudentParams

SUMMARY = {"val_accuracy": 0.9, "val_loss": 0.25, "epochs_run": 2, "train_seconds": 312.4}


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "classifier.keras").write_bytes(b"classifier bytes")
    (folder / "end_to_end.keras").write_bytes(b"end-to-end bytes")
    return folder


def test_the_card_records_params_network_validation_and_file_hashes(models):
    params = {"train": {"lstm_units": 8, "pair_vocab_size": 10}, "teachers": {"seeds": [1, 2]}}
    card = model_card.write_card(models, params, SUMMARY, 1200)
    assert json.loads((models / "model_card.json").read_text()) == card
    assert card["architecture"] == (
        "one-direction LSTM (1 x 8 units) over words and word pairs, distilled from 2 teachers"
    )
    assert card["params"] == params and card["train_reviews"] == 1200
    assert card["validation"] == {"val_accuracy": 0.9, "val_loss": 0.25, "epochs_run": 2}
    end_to_end = hashlib.sha256(b"end-to-end bytes").hexdigest()
    assert card["files"]["end_to_end.keras"] == {"sha256": end_to_end}


def test_the_same_training_writes_the_same_card_bytes(models):
    first = model_card.write_card(models, {"train": {}}, SUMMARY, 5)
    written = (models / "model_card.json").read_bytes()
    model_card.write_card(models, {"train": {}}, {**SUMMARY, "train_seconds": 1.0}, 5)
    assert (models / "model_card.json").read_bytes() == written and "seconds" not in str(first)


def test_the_card_takes_a_params_dataclass(models, pipeline_run):
    from imdb_sentiment.params import load_stage_params

    params = load_stage_params("train", StudentParams, pipeline_run / "params.yaml")
    card = model_card.write_card(models, {"train": params}, SUMMARY, 5)
    assert card["params"]["train"]["lstm_units"] == params.lstm_units


def test_serving_reads_the_card_and_tells_whether_the_bytes_are_the_ones_it_describes(models):
    model_card.write_card(models, {"train": {"lstm_units": 8}}, SUMMARY, 5)
    path = models / "end_to_end.keras"
    right = hashlib.sha256(b"end-to-end bytes").hexdigest()
    read = model_card.read_card(path, right, 16)
    assert read["matches_card"] is True and read["params"] == {"train": {"lstm_units": 8}}
    assert read["validation"]["val_accuracy"] == 0.9 and "test_accuracy" not in read
    assert model_card.read_card(path, "f" * 64, 16)["matches_card"] is False
    (models / "model_card.json").unlink()
    assert model_card.read_card(path, right, 16)["matches_card"] is None


def test_the_test_accuracy_comes_from_the_projects_metrics(models):
    (models.parent / "metrics").mkdir()
    (models.parent / "metrics" / "eval.json").write_text(json.dumps({"accuracy": 0.91}))
    assert model_card.read_card(models / "end_to_end.keras", "0" * 64, 1)["test_accuracy"] == 0.91


def test_the_pipelines_train_stage_writes_a_card_that_matches_its_model(pipeline_run):
    path = pipeline_run / "models" / "end_to_end.keras"
    read = model_card.read_card(path, model_card.file_sha256(path), path.stat().st_size)
    assert read["matches_card"] is True and read["train_reviews"] > 0
    assert read["params"]["train"]["lstm_units"] == 4 and read["test_accuracy"] is not None


def test_describe_architecture_of_other_networks():
    single = {"train": {"lstm_units": 64, "bidirectional": True, "lstm_layers": 2}}
    assert model_card.describe_architecture(single) == (
        "bidirectional LSTM (2 x 64 units) over words"
    )
    assert model_card.describe_architecture({"teachers": {"seeds": [1]}}) is None
    blended = {"train": {"lstm_units": 64, "linear_branch": True}}
    assert model_card.describe_architecture(blended) == (
        "one-direction LSTM (1 x 64 units) over words, beside a linear branch over the same ids"
    )
