"""Experiments beyond one run, with real dvc: a queued grid run by two queue workers, and a
failed queued experiment whose log carries the project's own error message."""

from __future__ import annotations

import csv
import io
import time

import pytest

from tests.dvc_project import Project


def wait_for_queue(project: Project, count: int, seconds: float = 600) -> str:
    """`dvc queue status` once ``count`` experiments have ended (succeeded or failed)."""
    deadline = time.monotonic() + seconds
    while True:
        status = project.run("dvc", "queue", "status")
        ended = status.count("Success") + status.count("Failed")
        if ended >= count:
            return status
        assert time.monotonic() < deadline, f"queue not done in {seconds} s:\n{status}"
        time.sleep(2)


@pytest.mark.integration
def test_a_queued_grid_runs_on_two_workers_and_a_bad_param_fails_in_its_log(trained_project):
    project, _ = trained_project
    project.run("dvc", "exp", "run", "--queue", "-S", "train.lstm_units=8,16")
    project.run("dvc", "exp", "run", "--queue", "--name", "bad-units", "-S", "train.lstm_units=0")
    try:
        project.run("dvc", "queue", "start", "-j", "2")
        status = wait_for_queue(project, 3)
    finally:
        project.run("dvc", "queue", "stop", "--kill")
    assert status.count("Success") == 2 and status.count("Failed") == 1, status

    shown = project.run("dvc", "exp", "show", "--csv", "--no-pager")
    rows = list(csv.DictReader(io.StringIO(shown)))
    finished = {r["train.lstm_units"]: r for r in rows if r["Experiment"] and r["accuracy"]}
    assert {"8", "16"} <= set(finished), shown
    assert all(0.0 <= float(finished[u]["accuracy"]) <= 1.0 for u in ("8", "16"))

    log = project.run("dvc", "queue", "logs", "bad-units")
    assert "train: error:" in log and "lstm_units" in log, log


@pytest.mark.integration
def test_an_experiment_pushed_by_one_clone_is_pulled_and_applied_by_another(
    trained_project, tmp_path
):
    project, _ = trained_project
    origin, store, clone = tmp_path / "origin.git", tmp_path / "dvc-store", tmp_path / "clone"
    project.run("git", "init", "-q", "--bare", str(origin))
    project.run("dvc", "remote", "add", "-d", "team", str(store))
    project.commit("tiny project, team remote")
    project.run("git", "remote", "add", "origin", str(origin))
    project.run("git", "push", "-q", "origin", "HEAD:refs/heads/main")
    project.run("dvc", "exp", "run", "-n", "units-8", "-S", "train.lstm_units=8")
    project.run("dvc", "exp", "push", "origin", "units-8")

    teammate = project.clone(str(origin), clone)
    teammate.run("dvc", "exp", "pull", "origin", "units-8")
    teammate.run("dvc", "exp", "apply", "units-8")
    teammate.run("dvc", "checkout")
    for output in ("metrics/eval.json", "models/end_to_end.keras"):
        assert (clone / output).read_bytes() == (project.root / output).read_bytes(), output
    assert "up to date" in teammate.run("dvc", "status")
