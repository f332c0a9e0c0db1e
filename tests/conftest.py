"""Shared fixtures: tiny archives and a tiny end-to-end pipeline run."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

from tests.archive_factory import make_archive

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
REPO_ROOT = Path(__file__).resolve().parent.parent

TINY_NETWORK = {
    "embedding_dim": 8,
    "lstm_units": 4,
    "batch_size": 8,
    "max_epochs": 2,
    # Scaled to ~5 steps an epoch: the full run's 0.99 would leave the weights near init.
    "ema_momentum": 0.5,
    "learning_rate": 0.01,
}
TINY_PARAMS = {
    "preprocess": {
        "vocab_size": 40,
        "max_length": 24,
        "validation_fraction": 0.25,
    },
    "teacher": TINY_NETWORK,
    "train": TINY_NETWORK,
    "evaluate": {"batch_size": 16, "confident_errors": 3},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow real-dvc tests first: started early, they do not end the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


def tiny_params(archive: Path, sha256: str) -> dict:
    """The committed params.yaml shrunk for a seconds-long run on ``archive``."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["download"].update(url=str(archive), sha256=sha256)
    for section, values in TINY_PARAMS.items():
        params[section].update(values)
    return params


@pytest.fixture
def tiny_archive(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "aclImdb_tiny.tar.gz"
    return path, make_archive(path)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the four stages in-process on a tiny archive; return the working folder."""
    from imdb_sentiment.params import load_stage_params
    from stages import download, evaluate, linear_baseline, preprocess, teacher, train

    workdir = tmp_path_factory.mktemp("pipeline")
    archive = workdir / "aclImdb_tiny.tar.gz"
    params_file = workdir / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(archive, make_archive(archive))))
    (workdir / "data").mkdir()
    shutil.copy(REPO_ROOT / "data/probes.csv", workdir / "data/probes.csv")
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        for stage in (download, preprocess, linear_baseline):
            stage.run(load_stage_params(stage.SECTION, stage.Params, params_file))
        teachers = load_stage_params(teacher.SECTION, teacher.Params, params_file)
        for seed in train.teacher_seeds(params_file):
            teacher.run(teachers, seed)
        for stage in (train, evaluate):
            stage.run(load_stage_params(stage.SECTION, stage.Params, params_file))
    finally:
        os.chdir(previous)
    return workdir


@pytest.fixture(scope="session")
def trained_project_template(tmp_path_factory: pytest.TempPathFactory):
    """One tiny git + dvc project after `dvc repro`, shared by the real-dvc tests."""
    from tests.dvc_project import TrainedProject

    return TrainedProject(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def trained_project(trained_project_template, tmp_path: Path):
    """A fresh copy of the trained tiny project and its params: (project, params)."""
    return trained_project_template.copy(tmp_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(app: object, **config: object) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 in a thread; yields its base URL once /ready is 200."""
    port = free_port()
    server = uvicorn.Server(
        # log_config=None: uvicorn's own dictConfig would close every logging handler of this
        # process, and absl's closes its stream, which can be pytest's capture of an earlier test.
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", log_config=None, **config
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(pipeline_run: Path) -> Iterator[str]:
    """The full app (API + UI) under uvicorn on 127.0.0.1, ready to serve."""
    from imdb_sentiment.serving import serve

    settings = serve.ServerSettings(model_path=pipeline_run / "models/end_to_end.keras")
    with serving(serve.create_app(settings)) as base:
        yield base


@pytest.fixture
def http_root(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1; yield (folder, base url)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
