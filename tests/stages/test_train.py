import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from imdb_sentiment import dataset
from imdb_sentiment.model import load_model
from imdb_sentiment.params import ParamsError
from stages import train


def train_params(pipeline_run) -> dict:
    return yaml.safe_load((pipeline_run / "params.yaml").read_text())["train"]


def train_briefly(
    pipeline_run, out, ensemble_size: int, distill: bool = False, **overrides
) -> None:
    """Train on the tiny pipeline's prepared data into ``out`` (models/, t.json, plots/).

    One epoch of the words-only network unless ``overrides`` says otherwise: the word-pairs
    view doubles each model's build and tracing time, and only the views' own tests need it.
    """
    values = {**train_params(pipeline_run), "ensemble_size": ensemble_size, "distill": distill}
    values.update({"max_epochs": 1, "pair_vocab_size": 0, **overrides})
    prepared = pipeline_run / "data/prepared"
    linear_scores = pipeline_run / "data/linear_baseline/out_of_fold.npz"
    train.run(
        train.Params(**values), prepared, out / "models", out / "t.json", out / "plots",
        linear_scores,
    )  # fmt: skip


def test_saves_models_history_and_metrics(pipeline_run):
    assert (pipeline_run / "models/classifier.keras").is_file()
    assert (pipeline_run / "models/end_to_end.keras").is_file()
    params = train_params(pipeline_run)
    summary = json.loads((pipeline_run / "metrics/train.json").read_text())
    members = summary["members"]
    teachers = [f"member_{n}" for n in range(1, params["ensemble_size"] + 1)]
    assert list(members) == teachers + (["student"] if params["distill"] else [])
    assert [m["seed"] for m in members.values()] == [
        params["seed"] + n for n in range(len(members))
    ]
    history_files = sorted((pipeline_run / "plots/train/history").iterdir())
    assert [f.name for f in history_files] == [f"{name}.csv" for name in members]
    histories = [pd.read_csv(f) for f in history_files]
    assert summary["epochs_run"] == sum(len(history) for history in histories)
    for member, history in zip(members.values(), histories, strict=True):
        # The default network has two views: its training loss is named as the sum it is
        assert list(history.columns) == [
            "epoch",
            "accuracy",
            "multi_view_loss",
            "val_accuracy",
            "val_multi_view_loss",
        ]
        assert member["epochs_run"] == len(history) <= params["max_epochs"]
        best = history.iloc[member["best_epoch"] - 1]
        assert member["best_val_multi_view_loss"] == round(best.val_multi_view_loss, 4)
        # Early stopping counts only improvements larger than min_delta as a new best.
        smallest = history.val_multi_view_loss.min()
        assert smallest > best.val_multi_view_loss - params["early_stopping_min_delta"]
    assert (pipeline_run / "plots/train/curves.png").stat().st_size > 1000
    loss = pd.read_csv(pipeline_run / "plots/train/loss.csv")
    assert set(loss.loss_name) == {"multi_view_loss"} and set(loss.split) == {"train", "validation"}
    accuracy = pd.read_csv(pipeline_run / "plots/train/accuracy.csv")
    assert len(loss) == len(accuracy) == 2 * summary["epochs_run"]


def test_same_params_and_data_give_the_same_model(pipeline_run, tmp_path):
    values = yaml.safe_load((pipeline_run / "params.yaml").read_text())["train"]
    params = train.Params(**{**values, "ensemble_size": 2})  # teachers, pairs and a student
    prepared = pipeline_run / "data/prepared"
    _, x, _ = dataset.load_arrays(prepared, "test")
    predictions = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        linear = pipeline_run / "data/linear_baseline/out_of_fold.npz"
        train.run(params, prepared, out / "models", out / "train.json", out / "plots", linear)
        predictions.append(load_model(out / "models/classifier.keras")(x).numpy())
    assert np.array_equal(predictions[0], predictions[1])


def test_pair_vocab_size_is_checked_before_any_data_is_read(pipeline_run, tmp_path):
    values = {**train_params(pipeline_run), "pair_vocab_size": 2}
    with pytest.raises(ParamsError, match="train.pair_vocab_size = 2"):  # not FileNotFoundError
        train.run(train.Params(**values), tmp_path / "absent", tmp_path / "models")


@pytest.mark.parametrize(("given", "kept"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_when_idle_unless_the_user_says_otherwise(given, kept):
    # In a fresh process: OpenMP reads the setting once, when TensorFlow's import loads it.
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        environment["OMP_WAIT_POLICY"] = given
    probe = (
        "import os, stages.train;"
        "loaded = any('gomp' in line for line in open('/proc/self/maps'));"
        "print(os.environ['OMP_WAIT_POLICY'], loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [kept, "True"]


def test_missing_linear_scores_are_named_before_training(pipeline_run, tmp_path, capsys):
    values = {**train_params(pipeline_run), "linear_teacher_weight": 0.5, "distill": True}
    prepared = pipeline_run / "data/prepared"
    missing = tmp_path / "absent/out_of_fold.npz"
    with pytest.raises(FileNotFoundError, match="out_of_fold.npz: not found; run the linear_base"):
        train.run(train.Params(**values), prepared, tmp_path / "models", linear_scores=missing)
    assert "Training member_1" not in capsys.readouterr().out
    assert not (tmp_path / "models").exists()
