import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from imdb_sentiment.data import dataset
from imdb_sentiment.network.model_file import load_model
from imdb_sentiment.params import ParamsError
from imdb_sentiment.training import fitting
from stages import train
from tests.conftest import REPO_ROOT


def train_params(pipeline_run) -> dict:
    return yaml.safe_load((pipeline_run / "params.yaml").read_text())["train"]


def train_briefly(pipeline_run, out, seeds=(), **overrides) -> dict:
    """Train a student on the tiny pipeline's prepared data into ``out`` (models/, t.json,
    live/), learning from the pipeline's teachers of ``seeds`` (none: the labels).

    One epoch of the words-only network, no linear branch, unless ``overrides`` says otherwise:
    the word-pairs view doubles each model's build and tracing time, and only the views' and the
    linear branch's own tests need them.
    """
    values = {
        **train_params(pipeline_run), "max_epochs": 1, "pair_vocab_size": 0,
        "linear_branch": False, **overrides,
    }  # fmt: skip
    return train.run(
        train.Params(**values),
        list(seeds),
        pipeline_run / "data/prepared",
        out / "models",
        out / "t.json",
        out / "live",
        pipeline_run / "data/linear_baseline/out_of_fold.npz",
        pipeline_run / "data/teachers",
    )


def test_saves_models_metrics_and_each_epoch_through_dvclive(pipeline_run):
    assert (pipeline_run / "models/classifier.keras").is_file()
    assert (pipeline_run / "models/end_to_end.keras").is_file()
    params = train_params(pipeline_run)
    summary = json.loads((pipeline_run / "metrics/train.json").read_text())
    student = summary["student"]
    assert student["seed"] == params["seed"]
    assert summary["epochs_run"] == student["epochs_run"] <= params["max_epochs"]
    live = pipeline_run / "dvclive/student"
    # The default network has two views: its training loss is named as the sum it is
    tsv = {
        path.relative_to(live / "plots/metrics").as_posix(): pd.read_csv(path, sep="\t")
        for path in (live / "plots/metrics").rglob("*.tsv")
    }
    assert sorted(tsv) == [
        "eval/accuracy.tsv", "eval/multi_view_loss.tsv",
        "train/accuracy.tsv", "train/multi_view_loss.tsv",
    ]  # fmt: skip
    validation_loss = tsv["eval/multi_view_loss.tsv"]
    assert validation_loss.step.tolist() == list(range(student["epochs_run"]))
    best = validation_loss.multi_view_loss.iloc[student["best_epoch"] - 1]
    assert student["best_val_multi_view_loss"] == round(best, 4)
    # Early stopping counts only improvements larger than min_delta as a new best.
    smallest = validation_loss.multi_view_loss.min()
    assert smallest > best - params["early_stopping_min_delta"]
    metrics = json.loads((live / "metrics.json").read_text())
    assert metrics["best_epoch"] == student["best_epoch"]
    assert metrics["val_accuracy"] == summary["val_accuracy"]
    assert metrics["step"] == student["epochs_run"] - 1  # the last epoch's figures, beside
    assert metrics["eval"]["multi_view_loss"] == validation_loss.multi_view_loss.iloc[-1]


def test_same_params_and_data_give_the_same_model(pipeline_run, tmp_path):
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "test")
    predictions = []
    for attempt in ("first", "second"):
        train_briefly(pipeline_run, tmp_path / attempt, seeds=[42, 43], pair_vocab_size=60)
        model = load_model(tmp_path / attempt / "models/classifier.keras")
        predictions.append(model(x).numpy())
    assert np.array_equal(predictions[0], predictions[1])


def test_pair_vocab_size_is_checked_before_any_data_is_read(pipeline_run, tmp_path):
    values = {**train_params(pipeline_run), "pair_vocab_size": 2}
    with pytest.raises(ParamsError, match="train.pair_vocab_size = 2"):  # not FileNotFoundError
        train.run(train.Params(**values), [], tmp_path / "absent", tmp_path / "models")


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
    values = {**train_params(pipeline_run), "linear_teacher_weight": 0.5}
    prepared = pipeline_run / "data/prepared"
    missing = tmp_path / "absent/out_of_fold.npz"
    with pytest.raises(FileNotFoundError, match="out_of_fold.npz: not found; run the linear_base"):
        train.run(train.Params(**values), [], prepared, tmp_path / "models", linear_scores=missing)
    assert "Training student" not in capsys.readouterr().out
    assert not (tmp_path / "models").exists()


def test_a_missing_teacher_is_named_with_the_stage_that_makes_it(pipeline_run, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"99.npz: not found; .*dvc repro teacher@99\)"):
        train_briefly(pipeline_run, tmp_path, seeds=[42, 99])
    assert "Training student" not in capsys.readouterr().out
    assert not (tmp_path / "models").exists()


def test_a_teacher_made_from_other_data_is_refused(pipeline_run, tmp_path):
    stale = tmp_path / "teachers"
    stale.mkdir()
    np.savez(stale / "7.npz", train=np.full(3, 0.5, np.float32), validation=np.zeros(1))
    values = {**train_params(pipeline_run), "max_epochs": 1}
    with pytest.raises(train.TeacherScoresError, match="7.npz: holds 3 training reviews' sc"):
        train.run(
            train.Params(**values), [7], pipeline_run / "data/prepared", tmp_path / "models",
            teachers_dir=stale,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([42, 42], r" = \[42, 42\] is not valid: names a seed twice"),
        ([42, "x"], r"\[1\] = 'x' has the wrong type"),
        ([-1], r"\[0\] = -1 is out of range: must be >= 0"),
    ],
)
def test_teacher_seeds_are_checked(tmp_path, seeds, message):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"teachers": {"seeds": seeds}}))
    with pytest.raises(ParamsError, match=rf"teachers\.seeds{message}"):
        train.teacher_seeds(params_file)


def test_the_committed_teachers_are_not_the_student_and_share_its_network_keys():
    params_file = REPO_ROOT / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    assert params["train"]["seed"] not in train.teacher_seeds(params_file)
    network = set(fitting.NetworkParams.model_fields)
    assert set(params["teacher"]) == network < set(params["train"])
