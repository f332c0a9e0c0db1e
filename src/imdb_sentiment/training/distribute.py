"""Where training runs: the tf.distribute strategy the environment asks for, and GPU checks.

The strategy comes from the environment, never from params.yaml, so the same params describe
the same model wherever it trains:

- ``TF_CONFIG`` naming a cluster of two or more workers: ``MultiWorkerMirroredStrategy``.
  Each worker trains on its own share of every epoch's batches; worker 0 (or the ``chief``
  task) writes the outputs, the others write nothing.
- no cluster and several visible GPUs: ``MirroredStrategy`` over them;
- otherwise TensorFlow's default strategy (one GPU if visible, else the CPU).

See docs/scale-out.md for how a cluster run is started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from imdb_sentiment.data.text import PAD_ID

TF_CONFIG = "TF_CONFIG"
TIMEOUT_VARIABLE = "IMDB_CLUSTER_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 120.0  # how long a worker waits for the others to come up


class ClusterError(ValueError):
    """A TF_CONFIG that cannot describe a cluster, or a cluster that cannot be reached."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker run, as TF_CONFIG describes it."""

    addresses: list[str]  # every worker, the chief first
    index: int  # this process's position in ``addresses``; 0 is the chief


@dataclass(frozen=True)
class Placement:
    """The strategy to build and fit models under, and this process's share of the batches."""

    strategy: tf.distribute.Strategy
    workers: int = 1
    index: int = 0

    @property
    def writes_outputs(self) -> bool:
        return self.index == 0


def cluster_from_environment(environ: Mapping[str, str] = os.environ) -> Cluster | None:
    """The cluster TF_CONFIG names, or None when it is unset or names one worker."""
    raw = environ.get(TF_CONFIG, "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ClusterError(f"{TF_CONFIG} is not valid JSON: {error}") from error
    cluster, task = _section(config, "cluster"), _section(config, "task")
    chiefs = _addresses(cluster, "chief")
    addresses = chiefs + _addresses(cluster, "worker")
    if len(chiefs) > 1:
        raise ClusterError(f"{TF_CONFIG}: cluster.chief lists {len(chiefs)} addresses, not one")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in ("chief", "worker"):
        raise ClusterError(f'{TF_CONFIG}: task.type is {task_type!r}, not "chief" or "worker"')
    size = len(chiefs) if task_type == "chief" else len(addresses) - len(chiefs)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ClusterError(
            f"{TF_CONFIG}: task.index {index!r} is not a position in cluster.{task_type} "
            f"(0 to {size - 1})"
        )
    position = index if task_type == "chief" else len(chiefs) + index
    return Cluster(addresses, position) if len(addresses) > 1 else None


def _section(config: object, key: str) -> dict:
    if not isinstance(config, dict) or not isinstance(config.get(key), dict):
        raise ClusterError(f"{TF_CONFIG} needs a {key!r} object")
    return config[key]


def _addresses(cluster: dict, role: str) -> list[str]:
    addresses = cluster.get(role, [])
    if not isinstance(addresses, list):
        raise ClusterError(f"{TF_CONFIG}: cluster.{role} is not a list of host:port addresses")
    for position, address in enumerate(addresses):
        host, _, port = str(address).rpartition(":")
        if not isinstance(address, str) or not host or not port.isdigit():
            raise ClusterError(
                f"{TF_CONFIG}: cluster.{role}[{position}] = {address!r} is not host:port"
            )
    return addresses


def placement_from_environment(environ: Mapping[str, str] = os.environ) -> Placement:
    """The strategy the environment asks for (module docstring); waits for a cluster's
    workers to come up, at most IMDB_CLUSTER_TIMEOUT_S seconds."""
    cluster = cluster_from_environment(environ)
    if cluster is None:
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return Placement(tf.distribute.MirroredStrategy())
        return Placement(tf.distribute.get_strategy())
    strategy = _start_multi_worker(cluster, _timeout(environ))
    return Placement(strategy, len(cluster.addresses), cluster.index)


def _start_multi_worker(cluster: Cluster, timeout: float) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy, once every worker has come up.

    Its constructor waits for the other workers with no deadline, holding the GIL, so a
    watchdog process (:mod:`cluster_watchdog`) kills this one, with an error naming the
    missing workers, if the cluster is not up within ``timeout`` seconds.
    """
    others = [a for i, a in enumerate(cluster.addresses) if i != cluster.index]
    command = [sys.executable, "-m", "imdb_sentiment.training.cluster_watchdog", str(os.getpid())]
    watchdog = subprocess.Popen([*command, f"{timeout:g}", "train", *others], stdin=subprocess.PIPE)
    try:
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def _timeout(environ: Mapping[str, str]) -> float:
    raw = environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT_S))
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ClusterError(f"{TIMEOUT_VARIABLE} = {raw!r} is not a positive number of seconds")
    return timeout


# --- GPU ------------------------------------------------------------------------------------


def cudnn_blockers(classifier: keras.Model, x: np.ndarray) -> list[str]:
    """Why Keras could not run this model's LSTMs on cuDNN for the encoded reviews ``x``
    (empty: it could).

    Keras picks cuDNN for an LSTM with the default activations, a bias, no unrolling and no
    recurrent dropout, and only for masks that are right-padded (``padding: post``) with at
    least one token in each row: any other mask fails cuDNN's mask check at run time.
    """
    blockers = []
    for layer in _lstms(classifier):
        config = layer.get_config()
        wanted = {
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "use_bias": True,
            "unroll": False,
            "recurrent_dropout": 0.0,
        }
        blockers += [
            f"{layer.name}: {key} is {config[key]!r}, cuDNN needs {value!r}"
            for key, value in wanted.items()
            if config[key] != value
        ]
    tokens = x != PAD_ID
    lengths = tokens.sum(axis=1)
    if not (tokens == (np.arange(x.shape[1]) < lengths[:, None])).all():
        blockers.append("the reviews are not right-padded (preprocess.padding: post)")
    if (lengths == 0).any():
        blockers.append(f"{int((lengths == 0).sum())} reviews have no tokens")
    return blockers


def keep_lstms_off_cudnn(model: keras.Model) -> int:
    """Make every LSTM in ``model`` use Keras' generic kernel; returns how many it set.

    On a GPU, Keras tries cuDNN for an eligible LSTM and fails at run time on a mask it
    cannot take (left padding, occluded words). ``use_cudnn`` is not saved with the model,
    so this applies to this process only.
    """
    lstms = _lstms(model)
    for layer in lstms:
        layer.use_cudnn = False
    return len(lstms)


def gpu_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def _lstms(model: keras.Model) -> list[keras.layers.LSTM]:
    """Every LSTM in ``model``, inside nested models and Bidirectional wrappers, once each."""
    found: dict[int, keras.layers.LSTM] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            inner = [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.LSTM):
            inner = [layer]
        else:
            inner = _lstms(layer) if isinstance(layer, keras.Model) else []
        found.update((id(lstm), lstm) for lstm in inner)
    return list(found.values())
