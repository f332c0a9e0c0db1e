"""The GTO model registry: references, `dvc artifacts get`, and serving what a stage points to."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from imdb_sentiment.serving import registry
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sentiment-model#prod", registry.Reference("sentiment-model", stage="prod")),
        ("sentiment-model@v1.2.0", registry.Reference("sentiment-model", version="v1.2.0")),
        ("models/end_to_end.keras", None),
        ("sentiment-model@1.2.0", None),  # GTO's versions start with v
        ("sentiment-model", None),
        ("Sentiment#prod", None),
    ],
)
def test_registry_references_are_told_from_paths(text, expected):
    assert registry.parse_reference(text) == expected
    if expected:
        assert str(expected) == text


def test_an_existing_file_wins_over_a_reference_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd#name").write_text("a model")
    assert registry.resolve("odd#name", "/nowhere") == Path("odd#name")


def test_a_reference_that_cannot_be_fetched_is_named_with_its_repository(tmp_path):
    with pytest.raises(registry.RegistryError, match=r"^sentiment-model#prod: cannot fetch it "):
        registry.fetch(registry.Reference("sentiment-model", stage="prod"), str(tmp_path), tmp_path)
    assert list((tmp_path / "registry").rglob("*")) == [
        tmp_path / "registry/sentiment-model",
        tmp_path / "registry/sentiment-model/sentiment-model_prod",
    ]  # no partial download left


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gto(project, *args: str) -> None:
    project.run("gto", *args)


@contextlib.contextmanager
def served(project, reference: str, cache: Path):
    """`sentiment serve --model <reference>` on 127.0.0.1; yields its base URL when ready."""
    port = free_port()
    command = ["sentiment", "serve", "--model", reference, "--registry", str(project.root)]
    log = cache / "serve.log"  # a file, not a pipe: a full pipe would block the server
    server = subprocess.Popen(
        [*command, "--no-ui", "--no-access-log", "--host", "127.0.0.1", "--port", str(port)],
        env={**project.env, "XDG_CACHE_HOME": str(cache)},
        cwd=cache,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"never ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(60)


@pytest.mark.integration
def test_two_versions_prod_moves_and_what_is_served_follows_it(trained_project, tmp_path):
    project, params = trained_project
    model = project.root / "models/end_to_end.keras"
    remote = tmp_path / "remote"
    project.run("dvc", "remote", "add", "-d", "local", str(remote))
    project.commit("a local remote")
    project.run("dvc", "push")
    first = sha256(model)
    gto(project, "register", "sentiment-model", "--version", "v1.0.0")
    gto(project, "assign", "sentiment-model", "--version", "v1.0.0", "--stage", "prod")

    params["train"]["dropout"] = 0.2
    project.set_params(params)
    project.repro()
    project.commit("dropout 0.2")
    project.run("dvc", "push")
    second = sha256(model)
    assert second != first
    gto(project, "register", "sentiment-model", "--version", "v2.0.0")

    fetched = tmp_path / "fetched.keras"
    elsewhere = {"cwd": tmp_path}  # as a user would, outside the project
    get = ["dvc", "artifacts", "get", str(project.root), "sentiment-model", "--stage", "prod"]
    subprocess.run([*get, "-o", str(fetched)], env=project.env, check=True, **elsewhere)
    assert sha256(fetched) == first  # prod is still v1.0.0
    cache = tmp_path / "cache"
    cache.mkdir()
    with served(project, "sentiment-model#prod", cache) as base:
        assert httpx.get(f"{base}/health").json()["model"]["sha256"] == first

    gto(project, "assign", "sentiment-model", "--version", "v2.0.0", "--stage", "prod")
    tags = project.run("git", "tag").split()
    assert {"sentiment-model@v1.0.0", "sentiment-model@v2.0.0"} <= set(tags)
    assert {"sentiment-model#prod#1", "sentiment-model#prod#2"} <= set(tags)
    with served(project, "sentiment-model#prod", cache) as base:
        assert httpx.get(f"{base}/health").json()["model"]["sha256"] == second
    with served(project, "sentiment-model@v1.0.0", cache) as base:
        assert httpx.get(f"{base}/health").json()["model"]["sha256"] == first


@pytest.mark.integration
def test_serving_an_unknown_stage_fails_with_the_reference_named(trained_project, tmp_path):
    project, _ = trained_project
    result = subprocess.run(
        ["sentiment", "predict", "--model", "sentiment-model#nowhere", "--registry",
         str(project.root), "a fine film"],
        env={**project.env, "XDG_CACHE_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "sentiment: error: sentiment-model#nowhere: cannot fetch it from" in result.stderr
    assert os.listdir(tmp_path / "imdb-sentiment/registry/sentiment-model") == [
        "sentiment-model_nowhere"
    ]
