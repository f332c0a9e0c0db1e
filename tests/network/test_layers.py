import zipfile

import numpy as np

from imdb_sentiment.network import layers
from tests.fresh_python import run_fresh


def test_masked_pooling_values():
    inputs = np.array([[[1.0, -5.0], [3.0, -1.0], [9.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False]])
    assert layers.MaskedPooling1D("max")(inputs, mask=mask).numpy().tolist() == [[3.0, -1.0]]
    assert layers.MaskedPooling1D("mean")(inputs, mask=mask).numpy().tolist() == [[2.0, -3.0]]
    empty = np.zeros((1, 3), bool)
    assert layers.MaskedPooling1D("mean")(inputs, mask=empty).numpy().tolist() == [[0.0, 0.0]]


LOAD_WITH_THE_LAYERS_ONLY = """
import keras
import imdb_sentiment.network.layers
classifier = keras.saving.load_model("models/classifier.keras", safe_mode=True)
end_to_end = keras.saving.load_model("models/end_to_end.keras", safe_mode=True)
RESULT = {
    "ids": classifier(keras.ops.convert_to_tensor([[0, 0, 5, 6, 7, 8]])).numpy().tolist(),
    "text": end_to_end(keras.ops.convert_to_tensor([["a fine film"]])).numpy().tolist(),
}
"""


def test_the_saved_models_load_with_this_module_alone_and_no_numba(pipeline_run):
    from imdb_sentiment.network.model_file import load_model

    seen = run_fresh(LOAD_WITH_THE_LAYERS_ONLY, pipeline_run)
    assert not seen["numba"]
    assert set(seen["imdb_sentiment"]) == {
        "imdb_sentiment",
        "imdb_sentiment.data",
        "imdb_sentiment.network",
        "imdb_sentiment.network.layers",
        "imdb_sentiment.data.ngrams",
        "imdb_sentiment.data.text",
        "imdb_sentiment.fileio",
    }
    classifier = load_model(pipeline_run / "models/classifier.keras")
    end_to_end = load_model(pipeline_run / "models/end_to_end.keras")
    ids = np.array([[0, 0, 5, 6, 7, 8]], np.int32)
    np.testing.assert_allclose(seen["result"]["ids"], classifier(ids).numpy(), atol=1e-6)
    text = np.array([["a fine film"]])
    np.testing.assert_allclose(seen["result"]["text"], end_to_end(text).numpy(), atol=1e-6)


# Where the layers' modules were before the package had layers (files saved until Dec 2026
# name them in config.json).
FLAT_MODULES = {
    "imdb_sentiment.network.layers": "imdb_sentiment.layers",
    "imdb_sentiment.data.ngrams": "imdb_sentiment.ngrams",
    "imdb_sentiment.data.text": "imdb_sentiment.text",
}


def test_a_model_saved_before_the_package_had_layers_still_loads(pipeline_run, tmp_path):
    from imdb_sentiment.serving.predict import Predictor

    saved = pipeline_run / "models/end_to_end.keras"
    old = tmp_path / "models" / "end_to_end.keras"
    old.parent.mkdir()
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(old, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "config.json":
                text = data.decode()
                for new, flat in FLAT_MODULES.items():
                    assert f'"module": "{new}"' in text
                    text = text.replace(f'"module": "{new}"', f'"module": "{flat}"')
                data = text.encode()
            copy.writestr(info, data)
    reviews = ["a fine film", "dull, far too long"]
    then, now = Predictor.load(old), Predictor.load(saved)
    np.testing.assert_allclose(then.probabilities(reviews), now.probabilities(reviews), atol=1e-6)
