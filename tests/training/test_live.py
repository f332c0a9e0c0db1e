"""Per-epoch figures through DVCLive (imdb_sentiment.training.live), alone and under
`dvc exp run`."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from imdb_sentiment.training import live
from tests.test_faults import LIVE_EPOCHS, wait_for_live_epochs


def test_each_epoch_is_written_when_it_ends_under_the_histories_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no git here: DVCLive logs without DVC
    logger = live.start(tmp_path / "member")
    callback = live.EpochLogger(logger, {"loss": "multi_view_loss"})
    callback.on_epoch_end(0, {"loss": 0.7, "accuracy": 0.5, "val_loss": 0.6})
    tsv = tmp_path / "member/plots/metrics"
    assert pd.read_csv(tsv / "train/multi_view_loss.tsv", sep="\t").multi_view_loss.tolist() == [
        0.7
    ]
    callback.on_epoch_end(1, {"loss": 0.5, "accuracy": 0.7, "val_loss": 0.55})
    assert pd.read_csv(tsv / "eval/loss.tsv", sep="\t").step.tolist() == [0, 1]
    callback.on_train_end()  # left open for the summary
    live.finish(logger, {"best_epoch": 2, "seed": 7})
    summary = json.loads((tmp_path / "member/metrics.json").read_text())
    assert summary["best_epoch"] == 2 and summary["seed"] == 7 and summary["step"] == 1
    assert summary["train"] == {"multi_view_loss": 0.5, "accuracy": 0.7}
    assert not (tmp_path / "dvc.yaml").exists()  # dvc.yaml declares the plots, not DVCLive


def test_a_worker_that_writes_no_outputs_logs_to_scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logger = live.start(tmp_path / "member", writes_outputs=False)
    live.EpochLogger(logger, {}).on_epoch_end(0, {"loss": 0.7})
    live.finish(logger, {})
    assert not (tmp_path / "member").exists()


def test_a_git_repository_with_no_commit_is_named_with_what_to_do(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(live.LiveLoggingError, match="no commit yet .*git commit"):
        live.start(tmp_path / "dvclive/student")


@pytest.mark.integration
def test_dvc_exp_run_shows_finished_epochs_while_the_stage_still_trains(trained_project):
    project, params = trained_project
    # Every epoch runs (patience above the limit), so the stage is still busy after the first.
    params["train"].update(max_epochs=6, early_stopping_patience=10)
    project.set_params(params)
    project.commit("six epochs")
    run = subprocess.Popen(
        ["dvc", "exp", "run"],
        cwd=project.root,
        env={**project.env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    live = project.root / "dvclive/student"
    found = wait_for_live_epochs(live, run, epochs=1)
    assert not (project.root / "metrics/train.json").exists()  # the stage has not finished
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] >= found - 1 and "eval" in summary  # metrics.json is live too
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    assert len(pd.read_csv(live / LIVE_EPOCHS, sep="\t")) == 6
    shown = project.run("dvc", "exp", "show", "--json")
    assert "dvclive/student/metrics.json" in shown and "best_epoch" in shown
