"""A real DVC remote: moto's S3 server on 127.0.0.1, which dvc-s3 talks to over HTTP.

push → fresh git clone → pull gives a workspace with nothing to reproduce and a model that
scores reviews with no training run; with the server stopped, a missing bucket or credentials the
server refuses, push and pull fail with DVC's message and leave the cache and the workspace
as they were.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import moto.server as moto_server
import pytest
import requests

from tests.conftest import free_port

BUCKET = "imdb-sentiment"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, **_boto_credentials()).create_bucket(Bucket=BUCKET)
    yield endpoint, server
    server.stop()


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def run_in(folder: Path, env: dict, *command: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    if ok:
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under the workspace's outputs and DVC cache, with its bytes."""
    files = {}
    for top in ("models", "data", "metrics", ".dvc/cache"):
        for path in sorted((folder / top).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(folder))] = path.read_bytes()
    return files


@pytest.mark.integration
def test_push_then_a_fresh_clone_pulls_a_model_that_scores_with_no_training(
    trained_project, tmp_path, s3_endpoint
):
    endpoint, server = s3_endpoint
    project, _ = trained_project
    project.env.update(CREDENTIALS)
    project.run("dvc", "remote", "add", "-d", "storage", f"s3://{BUCKET}/cache")
    project.run("dvc", "remote", "modify", "storage", "endpointurl", endpoint)
    project.commit("tiny run, S3 remote")
    project.run("dvc", "push")

    clone = tmp_path / "clone"
    run_in(tmp_path, project.env, "git", "clone", "-q", str(project.root), str(clone))
    assert not (clone / "models").exists()
    run_in(clone, project.env, "dvc", "pull")
    assert "Data and pipelines are up to date" in run_in(clone, project.env, "dvc", "status").stdout
    scored = run_in(
        clone, project.env, "sentiment", "predict", "--format", "json",
        "--model", "models/end_to_end.keras", "a wonderful, moving film",
    )  # fmt: skip
    assert '"label"' in scored.stdout
    assert "in sync" in run_in(clone, project.env, "dvc", "status", "-c").stdout

    # the model registry entry (dvc.yaml artifacts:), its version registered as a git tag the
    # way GTO and DVC Studio write it: fetched with no clone and no training
    project.run("git", "tag", "-a", "sentiment-model@v1.0.0", "-m", "Registered v1.0.0")
    fetched = tmp_path / "fetched.keras"
    run_in(
        tmp_path, project.env, "dvc", "artifacts", "get", str(project.root), "sentiment-model",
        "--rev", "v1.0.0", "-o", str(fetched),
    )  # fmt: skip
    assert fetched.read_bytes() == (clone / "models/end_to_end.keras").read_bytes()

    # the server goes away: push and pull fail with DVC's message, nothing local changes
    before = snapshot(clone)
    server.stop()
    (clone / "params.yaml").touch()
    fails_and_keeps(clone, project.env, before, "ERROR")
    server.start()

    # a bucket that does not exist: push fails, and so does a fresh clone's pull (a pull with
    # everything in the local cache never asks the remote), which then holds no outputs
    second = tmp_path / "second"
    run_in(tmp_path, project.env, "git", "clone", "-q", str(project.root), str(second))
    for folder in (clone, second):
        run_in(folder, project.env, "dvc", "remote", "modify", "--local", "storage", "url",
               "s3://no-such-bucket/cache")  # fmt: skip
    fails_and_keeps(clone, project.env, before, "NoSuchBucket", commands=(("dvc", "push"),))
    fresh = snapshot(second)  # only what git holds: metrics/, .gitignore files
    assert not (second / "models").exists()
    fails_and_keeps(second, project.env, fresh, "NoSuchBucket", commands=(("dvc", "pull"),))
    (clone / ".dvc/config.local").unlink()

    # credentials the server does not accept: moto checks signatures once auth is switched on
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        fails_and_keeps(clone, project.env, before, "Forbidden")
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)
    run_in(clone, project.env, "dvc", "push")  # and with auth off again, the same clone works


def fails_and_keeps(
    clone: Path,
    env: dict,
    before: dict[str, bytes],
    message: str,
    commands: tuple[tuple[str, ...], ...] = (("dvc", "push"), ("dvc", "pull", "--force")),
) -> None:
    """Each command fails with DVC's message, and every local output and cache file is kept."""
    for command in commands:
        result = run_in(clone, env, *command, ok=False)
        assert result.returncode != 0, f"{command} succeeded"
        assert "ERROR" in result.stderr and message in result.stderr, result.stderr
        assert snapshot(clone) == before, f"{command} changed local files"
