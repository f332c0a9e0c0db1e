"""Faults with real processes: a full disk, SIGTERM and SIGKILL of a stage. Each checks that
the previous outputs are intact, that no scratch is left, and that the next run recovers."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.archive_factory import make_archive
from tests.conftest import REPO_ROOT, tiny_params
from tests.dvc_project import RAN


def scratch_left(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.scratch-*"))


def stage_process(workdir: Path, stage: str, **popen) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    environment.pop("IMDB_ARCHIVE", None)
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "stages" / f"{stage}.py")],
        cwd=workdir,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def write_params(workdir: Path, archive: Path) -> None:
    params = tiny_params(archive, make_archive(archive))
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def limit_file_size(max_bytes: int):
    def apply() -> None:
        # Ignored, SIGXFSZ turns a write past the limit into EFBIG, as a full disk's ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def test_a_disk_that_fills_up_leaves_the_previous_outputs_and_no_scratch(tmp_path):
    write_params(tmp_path, tmp_path / "first.tar.gz")
    first = stage_process(tmp_path, "download")
    assert first.wait(120) == 0, first.stderr.read()
    before = {p.name: p.read_bytes() for p in (tmp_path / "data/raw").iterdir()}
    write_params(tmp_path, tmp_path / "second.tar.gz")  # new reviews: the outputs would change

    full = stage_process(tmp_path, "download", preexec_fn=limit_file_size(2_000))
    _, err = full.communicate(timeout=120)
    assert full.returncode == 1, err
    assert "download: error: cannot write" in err and "File too large" in err, err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "data/raw").iterdir()} == before
    assert scratch_left(tmp_path) == []


def lines_until(process: subprocess.Popen, marker: str, seconds: float = 300) -> str:
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"never saw {marker!r}:\n{''.join(seen)}")


@pytest.fixture
def prepared_workdir(pipeline_run, tmp_path) -> Path:
    for inputs in ("data/prepared", "data/linear_baseline", "data/teachers"):  # train reads them
        shutil.copytree(pipeline_run / inputs, tmp_path / inputs)
    shutil.copy(pipeline_run / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_sigterm_mid_training_exits_cleanly_with_a_message_and_no_scratch(prepared_workdir):
    process = stage_process(prepared_workdir, "train")
    lines_until(process, "Training student")
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "train: stopped by SIGTERM; the previous outputs are unchanged" in err
    assert "Traceback" not in err
    assert not (prepared_workdir / "models").exists()
    assert not (prepared_workdir / "metrics").exists()
    assert scratch_left(prepared_workdir) == []


@pytest.mark.integration
def test_sigkill_mid_training_keeps_the_old_model_and_the_finished_epochs_and_reruns_train(
    trained_project,
):
    project, params = trained_project
    models = project.root / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    eval_before = (project.root / "metrics/eval.json").read_bytes()

    # Every epoch runs (patience above the limit): killed after the first of eight.
    params["train"].update(dropout=0.1, max_epochs=8, early_stopping_patience=10)
    project.set_params(params)
    repro = subprocess.Popen(
        ["dvc", "repro"],
        cwd=project.root,
        env={**project.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one process group: dvc and the stage it runs
    )
    live = project.root / "dvclive/student"
    wait_for_live_epochs(live, repro, epochs=1)  # not the previous run's: that one had ended
    os.killpg(repro.pid, signal.SIGKILL)
    repro.wait(60)

    # DVC removes a stage's outputs before running it; the stage writes its new ones only
    # once complete. So models/ is absent now, never partial, and nothing is lost: the old
    # model is in the cache, and `dvc checkout` brings it back
    assert not models.exists() or {p.name: p.read_bytes() for p in models.iterdir()} == before
    assert (project.root / "metrics/eval.json").read_bytes() == eval_before
    # DVCLive wrote each epoch as it ended: the finished ones stay readable after the kill.
    finished = pd.read_csv(live / LIVE_EPOCHS, sep="\t")
    assert 1 <= len(finished) < 8 and finished.step.tolist() == list(range(len(finished)))
    summary = json.loads((project.root / "dvclive/student/metrics.json").read_text())
    assert summary["step"] == len(finished) - 1 and "best_epoch" not in summary  # not ended
    assert "train" in project.run("dvc", "status")
    project.run("dvc", "checkout", "models")
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
    assert RAN.findall(project.run("dvc", "repro")) == ["train", "evaluate"]
    assert {p.name: p.read_bytes() for p in models.iterdir()} != before
    assert len(pd.read_csv(live / LIVE_EPOCHS, sep="\t")) == 8  # the next run starts afresh
    assert scratch_left(project.root) == []


def wait_for_live_epochs(
    folder: Path, process: subprocess.Popen, epochs: int, timeout: float = 300
) -> int:
    """Poll a DVCLive folder until a run that has not finished (its metrics.json has no
    best_epoch yet, which the stage adds at the end) shows ``epochs`` finished epochs; fail if
    ``process`` ends first. Returns how many it shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ended (exit {process.returncode}) before {folder} filled"
        with contextlib.suppress(FileNotFoundError, ValueError, pd.errors.EmptyDataError):
            summary = json.loads((folder / "metrics.json").read_text())
            found = len(pd.read_csv(folder / LIVE_EPOCHS, sep="\t"))
            if "best_epoch" not in summary and found >= epochs:
                return found
        time.sleep(0.05)
    raise AssertionError(f"{folder}: fewer than {epochs} live epochs after {timeout} s")


LIVE_EPOCHS = "plots/metrics/eval/accuracy.tsv"  # one row per finished epoch
