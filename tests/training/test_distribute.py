"""The strategy from the environment (TF_CONFIG), two real worker processes, and the GPU
kernel checks (run on the CPU: they read the built model and the data)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from imdb_sentiment.training import cluster_watchdog, distribute, model
from tests.conftest import REPO_ROOT, free_port

TRAIN_OUTPUTS = ("models", "metrics", "dvclive")


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG needs a 'cluster' object"),
        ('{"cluster": {"worker": "a:1"}, "task": {}}', "cluster.worker is not a list"),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {}}', r"cluster.worker\[1\] = 'b' is not"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps"}}', "task.type is 'ps'"),
        (
            tf_config(["a:1", "b:2"], 2),
            r"task.index 2 is not a position in cluster.worker \(0 to 1",
        ),
    ],
)
def test_a_malformed_tf_config_is_named(raw: str, problem: str) -> None:
    with pytest.raises(distribute.ClusterError, match=problem):
        distribute.cluster_from_environment({"TF_CONFIG": raw})


def test_tf_config_places_the_chief_first_and_one_worker_is_no_cluster() -> None:
    assert distribute.cluster_from_environment({}) is None
    assert distribute.cluster_from_environment({"TF_CONFIG": tf_config(["a:1"], 0)}) is None
    config = {"cluster": {"chief": ["c:1"], "worker": ["w:2"]}, "task": {"type": "worker"}}
    cluster = distribute.cluster_from_environment({"TF_CONFIG": json.dumps(config)})
    assert cluster.addresses == ["c:1", "w:2"] and cluster.index == 1


def test_a_listening_address_is_told_from_a_closed_one() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert cluster_watchdog.listens(f"127.0.0.1:{listener.getsockname()[1]}")
    assert not cluster_watchdog.listens(f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize("raw", ["soon", "0", "-3"])
def test_a_bad_cluster_timeout_is_named(raw: str) -> None:
    with pytest.raises(distribute.ClusterError, match=f"IMDB_CLUSTER_TIMEOUT_S = '{raw}'"):
        distribute._timeout({"IMDB_CLUSTER_TIMEOUT_S": raw})


# --- two real workers -------------------------------------------------------------------------


def train_process(workdir: Path, config: str | None, **environment: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **environment}
    env.pop("TF_CONFIG", None)
    if config is not None:
        env["TF_CONFIG"] = config
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "stages/train.py")],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def prepared_copy(pipeline_run: Path, folder: Path) -> Path:
    folder.mkdir()
    for inputs in ("data/prepared", "data/linear_baseline", "data/teachers"):  # train reads them
        shutil.copytree(pipeline_run / inputs, folder / inputs)
    shutil.copy(pipeline_run / "params.yaml", folder / "params.yaml")
    return folder


@pytest.mark.integration
def test_two_workers_train_the_tiny_model_and_only_the_chief_writes(pipeline_run, tmp_path):
    chief = prepared_copy(pipeline_run, tmp_path / "chief")
    worker = prepared_copy(pipeline_run, tmp_path / "worker")
    addresses = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = [train_process(d, tf_config(addresses, i)) for i, d in enumerate([chief, worker])]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n\n".join(outputs)

    live = [p.relative_to(pipeline_run) for p in pipeline_run.glob("dvclive/student/**/*.*")]
    assert live and all((chief / path).exists() for path in live)
    assert (chief / "models/end_to_end.keras").is_file()
    assert [name for name in TRAIN_OUTPUTS if (worker / name).exists()] == []
    one_worker = json.loads((pipeline_run / "metrics/train.json").read_text())
    two_workers = json.loads((chief / "metrics/train.json").read_text())
    # 12 validation reviews, and two workers take half the steps of one per epoch: 3 reviews
    assert abs(two_workers["val_accuracy"] - one_worker["val_accuracy"]) <= 0.25


@pytest.mark.integration
def test_a_worker_that_never_comes_up_stops_the_chief_with_its_address(pipeline_run, tmp_path):
    chief = prepared_copy(pipeline_run, tmp_path / "chief")
    missing = f"127.0.0.1:{free_port()}"
    config = tf_config([f"127.0.0.1:{free_port()}", missing], 0)
    started = time.monotonic()
    process = train_process(chief, config, IMDB_CLUSTER_TIMEOUT_S="3")
    output = process.communicate(timeout=300)[0]
    assert process.returncode == -signal.SIGKILL, output  # the watchdog ends the hung wait
    error = f"train: error: cannot reach the worker at {missing} (named in TF_CONFIG) within 3 s"
    assert error in output
    assert time.monotonic() - started < 120
    assert [name for name in TRAIN_OUTPUTS if (chief / name).exists()] == []


def test_a_malformed_tf_config_stops_the_stage_before_it_writes(pipeline_run, tmp_path):
    chief = prepared_copy(pipeline_run, tmp_path / "chief")
    process = train_process(chief, '{"cluster": ')
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 1 and "train: error: TF_CONFIG is not valid JSON" in output
    assert [name for name in TRAIN_OUTPUTS if (chief / name).exists()] == []


# --- GPU: what keeps the LSTM on cuDNN --------------------------------------------------------


def default_classifier(**changes: object) -> keras.Model:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["train"]
    lstm = {"bidirectional": params["bidirectional"], "pooling": params["pooling"]}
    lstm.update(changes)
    return model.build_classifier(
        100, 8, 4, params["lstm_layers"], dropout=params["dropout"], **lstm
    )


def test_the_default_lstm_is_cudnn_eligible_but_for_its_left_padding() -> None:
    classifier = default_classifier()
    pre_padded = np.array([[0, 0, 5, 6], [3, 4, 5, 6]])
    post_padded = np.array([[5, 6, 0, 0], [3, 4, 5, 6]])
    assert distribute.cudnn_blockers(classifier, post_padded) == []
    assert distribute.cudnn_blockers(classifier, pre_padded) == [
        "the reviews are not right-padded (preprocess.padding: post)"
    ]
    empty_row = np.array([[0, 0, 0, 0], [3, 4, 5, 6]])
    assert "1 reviews have no tokens" in distribute.cudnn_blockers(classifier, empty_row)


def test_recurrent_dropout_and_other_activations_block_cudnn() -> None:
    inputs = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(10, 4)(inputs)
    hidden = keras.layers.LSTM(3, recurrent_dropout=0.1, activation="relu", name="slow")(hidden)
    slow = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    blockers = distribute.cudnn_blockers(slow, np.array([[1, 2]]))
    assert blockers == [
        "slow: activation is 'relu', cuDNN needs 'tanh'",
        "slow: recurrent_dropout is 0.1, cuDNN needs 0.0",
    ]


def test_every_lstm_of_a_multi_view_model_can_be_kept_off_cudnn() -> None:
    pairs = {2: np.arange(10, 20, dtype=np.int64)}
    _, trainer = model.build_multi_view(
        100,
        pairs,
        "m",
        embedding_dim=4,
        lstm_units=3,
        lstm_layers=1,
        bidirectional=False,
        dropout=0.0,
        pooling="max",
    )
    assert distribute.keep_lstms_off_cudnn(trainer) == 2
    assert all(not layer.use_cudnn for layer in distribute._lstms(trainer))
