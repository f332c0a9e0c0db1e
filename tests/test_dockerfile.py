"""The Dockerfile's own commands, run in a plain venv so that they cannot rot unseen.

Docker cannot run here (no daemon, and no registry to pull the base image from), so the test
plays the image build itself: each WORKDIR, COPY, ENV and RUN in order inside a temporary
folder standing for the image's `/`, then the CMD, then the HEALTHCHECK against it. The venv
sees the suite's installed packages, so the RUN pip lines only check that the pins are the
tested ones. What only Docker can check (the base image, the user switch) is read, not run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
NEEDS_ROOT = re.compile(r"^(useradd|groupadd|adduser)\b")  # the container's root only


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines())
        if word
    ]


def only(name: str) -> str:
    found = [
        arguments for instruction, arguments in instructions(DOCKERFILE) if instruction == name
    ]
    assert len(found) == 1, f"the Dockerfile has {len(found)} {name} lines, expected one"
    return found[0]


def test_the_image_is_slim_python_at_the_pinned_version_and_runs_as_a_user():
    assert only("FROM") == "python:3.11-slim"
    assert "(Python 3.11" in (REPO_ROOT / "requirements.txt").read_text()
    user = only("USER")
    assert user not in ("root", "0")
    creates = [a for i, a in instructions(DOCKERFILE) if i == "RUN" and NEEDS_ROOT.match(a)]
    assert any(re.search(rf"\b{user}$", command) for command in creates), creates


def test_tensorflow_in_the_image_is_requirements_txt_s_cpu_pin():
    cpu_pin = re.search(
        r"^(tensorflow-cpu==\S+);", (REPO_ROOT / "requirements.txt").read_text(), re.M
    )
    runs = " ".join(a for i, a in instructions(DOCKERFILE) if i == "RUN")
    assert re.findall(r"tensorflow\S*==\S+", runs) == [cpu_pin.group(1)]


def test_the_build_context_admits_every_copied_file():
    admitted = {
        line[1:].rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for source in copied_sources():
        assert source.rstrip("/") in admitted, f".dockerignore keeps {source} out of the image"


def test_the_healthcheck_asks_ready_on_the_served_port():
    check = only("HEALTHCHECK")
    port = only("EXPOSE")
    assert f"127.0.0.1:{port}/ready" in check
    command = json.loads(only("CMD"))
    assert command[command.index("--port") + 1] == port


@pytest.mark.integration
def test_the_build_commands_then_the_command_serve_and_the_healthcheck_passes(
    tmp_path, pipeline_run
):
    image = tmp_path / "image"
    env, workdir = build_in_venv(image, tmp_path / "venv", context=[pipeline_run, REPO_ROOT])
    port = free_port()
    check = only("HEALTHCHECK").split(" CMD ", 1)[1].replace(only("EXPOSE"), str(port))
    assert not healthy(check, workdir, env), "the healthcheck passes with no server"

    command = json.loads(only("CMD"))
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    server = subprocess.Popen(command, cwd=workdir, env=env)
    try:
        deadline = time.monotonic() + 180
        while not healthy(check, workdir, env):
            assert server.poll() is None, "the image's command exited"
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(1)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "superb"}, timeout=30)
        assert answer.status_code == 200 and answer.json()["label"] in ("positive", "negative")
        model = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["model"]
        assert model["matches_card"] is True and model["test_accuracy"] is not None
        assert httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(60)


def copied_sources() -> list[str]:
    return [s for i, a in instructions(DOCKERFILE) if i == "COPY" for s in shlex.split(a)[:-1]]


def build_in_venv(image: Path, venv: Path, context: list[Path]) -> tuple[dict, Path]:
    """Run the Dockerfile's build steps; return the command's environment and working folder.

    `context` lists folders to take each COPY source from, the first that has it winning: the
    tiny pipeline's model and metrics stand for the real ones.
    """
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (next(venv.glob("lib/python*/site-packages")) / "suite.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    workdir = image
    for instruction, arguments in instructions(DOCKERFILE):
        if instruction == "WORKDIR":
            workdir = image / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
        elif instruction == "COPY":
            *sources, target = shlex.split(arguments)
            for source in sources:
                found = next(c / source for c in context if (c / source).exists())
                copy_into(found, workdir, target)
        elif instruction == "RUN" and not NEEDS_ROOT.match(arguments):
            subprocess.run(["bash", "-euc", arguments], cwd=workdir, env=env, check=True)
    return env, workdir


def copy_into(source: Path, workdir: Path, target: str) -> None:
    """COPY's rule: a folder's contents go to the target; a file goes into a target ending /."""
    destination = workdir / target
    if source.is_dir():
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(source, destination, dirs_exist_ok=True, ignore=skip)
        return
    if target.endswith("/"):
        destination.mkdir(parents=True, exist_ok=True)
        destination = destination / source.name
    shutil.copy2(source, destination)


def healthy(check: str, workdir: Path, env: dict) -> bool:
    return (
        subprocess.run(["bash", "-c", check], cwd=workdir, env=env, capture_output=True).returncode
        == 0
    )
