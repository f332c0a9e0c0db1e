import json
import subprocess
import zipfile

import keras
import numpy as np
import pytest

from imdb_sentiment.data import ngrams
from imdb_sentiment.network import model_file
from imdb_sentiment.serving import predict
from imdb_sentiment.training import export, model
from imdb_sentiment.training.hoisted_lstm import HoistedLSTM
from tests.fresh_python import run_fresh

REVIEWS = [
    "A wonderful, moving film. The acting is superb!",
    "Dull, predictable and far too long; I want my evening back.",
    "Not bad at all.",
    "",  # no tokens: pools to zero
    "!!! ... ???",
    "good " * 300,  # longer than the encoder keeps
    "Überraschend gut, c'est magnifique <br /><br /> 10/10",
]

LOAD_SAVED_MODEL = """
import tensorflow as tf
loaded = tf.saved_model.load("exported/sentiment/1")
serving = loaded.signatures["serving_default"]
inputs = serving.structured_input_signature[1]
outputs = serving.structured_outputs
reviews = REVIEWS
RESULT = {
    "inputs": {name: [spec.dtype.name, spec.shape.as_list()] for name, spec in inputs.items()},
    "outputs": {name: [spec.dtype.name, spec.shape.as_list()] for name, spec in outputs.items()},
    "probabilities": serving(text=tf.constant(reviews))["probability_positive"].numpy().tolist(),
}
"""


def test_the_saved_model_matches_the_predictor_in_a_process_that_never_imports_this_package(
    pipeline_run,
):
    script = LOAD_SAVED_MODEL.replace("REVIEWS", repr(REVIEWS))
    seen = run_fresh(script, pipeline_run)
    assert seen["imdb_sentiment"] == [] and not seen["numba"]
    result = seen["result"]
    assert result["inputs"] == {"text": ["string", [None]]}
    assert result["outputs"] == {"probability_positive": ["float32", [None]]}
    predictor = predict.Predictor.load(pipeline_run / "models/end_to_end.keras")
    assert predictor.kernel == "numba"  # the served path, not Keras' own
    expected = predictor.probabilities(REVIEWS)
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5, rtol=0)
    assert np.ptp(expected) > 1e-4  # the reviews score apart: a constant would not pass


def test_saved_files_name_no_training_only_code(pipeline_run):
    saved_layers = ("TextEncoder", "WordNgrams", "MaskedPooling1D", "BagOfIds", "LengthAwareBlend")
    allowed = {f"imdb_sentiment>{name}" for name in saved_layers}
    for name in (export.CLASSIFIER_FILE, export.END_TO_END_FILE):
        with zipfile.ZipFile(pipeline_run / "models" / name) as saved:
            config = json.loads(saved.read("config.json"))
        ours = {
            n for n in _values(config, "registered_name") if str(n).startswith("imdb_sentiment>")
        }
        assert ours and ours <= allowed, name
        assert "LSTM" in set(_values(config, "class_name")), name
        assert "HoistedLSTM" not in json.dumps(config) and "Rowwise" not in json.dumps(config)


def _values(node: object, key: str) -> list:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [
            found for value in node.values() for found in _values(value, key)
        ]
    if isinstance(node, list):
        return [found for value in node for found in _values(value, key)]
    return []


def test_the_portable_copy_is_the_same_function_on_keras_layers():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 30, size=(6, 11)).astype("int32")
    x[:2, :6] = 0
    x[5] = 0
    vocabularies = {2: ngrams.build_ngram_vocabulary(x, 30, 12, 2)}
    trained, _ = model.build_multi_view(
        30,
        vocabularies,
        embedding_dim=4,
        lstm_units=3,
        lstm_layers=1,
        bidirectional=False,
        dropout=0.0,
        pooling="mean_max",
        lstm_kernel="hoisted",
    )
    trained.set_weights([rng.normal(0, 1, w.shape).astype("float32") for w in trained.weights])
    copy = model.portable_copy(trained)
    lstms = [layer for layer in _all_layers(copy) if isinstance(layer, keras.layers.LSTM)]
    assert len(lstms) == 2 and not any(isinstance(layer, HoistedLSTM) for layer in lstms)
    assert sum(isinstance(layer, HoistedLSTM) for layer in _all_layers(trained)) == 2
    for ours, theirs in zip(copy.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(copy(x).numpy(), trained(x).numpy(), atol=1e-6)
    assert model_file.network_description(copy) == model_file.network_description(trained)


def test_the_portable_copy_of_a_compiled_one_view_classifier_names_no_optimizer(tmp_path):
    # One view: the classifier is the trainer, compiled with RowwiseAdam; Keras' clone_model
    # compiles a clone of a compiled model, and a saved file would then need training code.
    classifier = model.build_classifier(30, 4, 3, 1, False, 0.0, lstm_kernel="hoisted")
    model.compile_classifier(classifier, 0.01, 1.0, 0.9, rowwise_embeddings=True)
    copy = model.portable_copy(classifier)
    assert not copy.compiled
    model_file.save_model(copy, tmp_path / "classifier.keras")
    with zipfile.ZipFile(tmp_path / "classifier.keras") as saved:
        config = saved.read("config.json").decode()
    assert "Rowwise" not in config and "HoistedLSTM" not in config
    x = np.array([[0, 2, 3, 4]], np.int32)
    np.testing.assert_allclose(copy(x).numpy(), classifier(x).numpy(), atol=1e-6)


def _all_layers(network: keras.Model) -> list:
    found = []
    for layer in network.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _all_layers(layer)
    return found


@pytest.mark.integration
def test_dvc_artifacts_get_hands_over_a_saved_model_that_plain_tensorflow_serves(
    trained_project, tmp_path
):
    project, _ = trained_project
    project.run("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    project.commit("a local remote")
    project.run("dvc", "push")
    project.run("gto", "register", "sentiment-savedmodel", "--version", "v1.0.0")
    get = ["dvc", "artifacts", "get", str(project.root), "sentiment-savedmodel", "--rev", "v1.0.0"]
    get += ["-o", "fetched"]
    fetched = subprocess.run(get, env=project.env, cwd=tmp_path, capture_output=True, text=True)
    assert fetched.returncode == 0, fetched.stderr
    script = LOAD_SAVED_MODEL.replace("exported/sentiment/1", "fetched/1")
    seen = run_fresh(script.replace("REVIEWS", repr(REVIEWS)), tmp_path)
    served = predict.Predictor.load(project.root / "models/end_to_end.keras")
    expected = served.probabilities(REVIEWS)
    np.testing.assert_allclose(seen["result"]["probabilities"], expected, atol=1e-5, rtol=0)
