import json

import numpy as np
import pandas as pd
import yaml

from imdb_sentiment import dataset
from imdb_sentiment.model import load_model
from stages import train


def test_saves_models_history_and_metrics(pipeline_run):
    assert (pipeline_run / "models/classifier.keras").is_file()
    assert (pipeline_run / "models/end_to_end.keras").is_file()
    history = pd.read_csv(pipeline_run / "plots/train/history.csv")
    assert list(history.columns) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    summary = json.loads((pipeline_run / "metrics/train.json").read_text())
    assert summary["epochs_run"] == len(history) <= 2
    assert 1 <= summary["best_epoch"] <= summary["epochs_run"]
    best = history.iloc[summary["best_epoch"] - 1]
    assert summary["best_val_loss"] == round(best.val_loss, 4)
    # Early stopping counts only improvements larger than min_delta as a new best.
    min_delta = yaml.safe_load((pipeline_run / "params.yaml").read_text())["train"][
        "early_stopping_min_delta"
    ]
    assert history.val_loss.min() > best.val_loss - min_delta
    assert (pipeline_run / "plots/train/curves.png").stat().st_size > 1000


def test_same_params_and_data_give_the_same_model(pipeline_run, tmp_path):
    values = yaml.safe_load((pipeline_run / "params.yaml").read_text())["train"]
    params = train.Params(**values)
    prepared = pipeline_run / "data/prepared"
    _, x, _ = dataset.load_arrays(prepared, "test")
    predictions = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        train.run(params, prepared, out / "models", out / "train.json", out / "plots")
        predictions.append(load_model(out / "models/classifier.keras")(x).numpy())
    assert np.array_equal(predictions[0], predictions[1])
