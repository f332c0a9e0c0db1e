"""The pull-request workflow (.github/workflows/pr-report.yaml) and its report script
(.ci/pr_report.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github/workflows/pr-report.yaml"
REPORT_SCRIPT = REPO_ROOT / ".ci/pr_report.py"


def test_the_workflow_is_valid_against_githubs_schema_as_check_jsonschema_vendors_it():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_reproduces_from_the_remote_and_posts_the_report_with_cml():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert list(workflow[True]) == ["pull_request"]  # YAML 1.1 reads the key "on" as True
    steps = workflow["jobs"]["report"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    assert "dvc repro --pull --allow-missing" in commands
    assert "python .ci/pr_report.py" in commands and REPORT_SCRIPT.is_file()
    assert "cml comment create report.md" in commands
    secrets = json.dumps(steps)
    assert "secrets.AWS_ACCESS_KEY_ID" in secrets and "secrets.GITHUB_TOKEN" in secrets


def git(repo: Path, *args: str) -> None:
    author = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", *author, *args], cwd=repo, check=True, capture_output=True)


def write_run(repo: Path, accuracy: float, learning_rate: float, losses: list[float]) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"train": {"learning_rate": learning_rate}}))
    (repo / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "count": 100}))
    rows = "".join(f"{step}\t{loss}\n" for step, loss in enumerate(losses))
    (repo / "loss.tsv").write_text("step\tloss\n" + rows)


def test_the_report_names_the_changed_metric_and_param_with_both_values_and_draws_plots(
    tmp_path,
):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "--initial-branch", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({
        "stages": {"train": {
            "cmd": "true",
            "params": ["train.learning_rate"],
            "metrics": [{"metrics.json": {"cache": False}}],
            "plots": [{"loss.tsv": {"cache": False, "x": "step", "y": "loss"}}],
        }},
    }))  # fmt: skip
    write_run(repo, 0.9012, 0.003, [0.7, 0.5])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main's run")
    git(repo, "checkout", "-q", "-b", "better")
    write_run(repo, 0.9234, 0.001, [0.6, 0.4, 0.3])
    git(repo, "commit", "-qam", "the branch's run")

    result = subprocess.run(
        [sys.executable, str(REPORT_SCRIPT), "--base", "main", "--out", "report.md"],
        cwd=repo, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (repo / "report.md").read_text()
    metric_row = next(line for line in report.splitlines() if "accuracy" in line)
    assert "metrics.json" in metric_row and "0.9012" in metric_row and "0.9234" in metric_row
    param_row = next(line for line in report.splitlines() if "train.learning_rate" in line)
    assert "0.003" in param_row and "0.001" in param_row
    assert "count" not in report  # unchanged metrics stay out
    assert "![loss.tsv](./report_plots/loss-tsv.png)" in report
    assert (repo / "report_plots/loss-tsv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_base_that_is_not_a_commit_here_is_named(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    result = subprocess.run(
        [sys.executable, str(REPORT_SCRIPT), "--base", "no-such-branch"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "pr_report: --base no-such-branch is not a commit of this repository" in result.stderr
    assert not (tmp_path / "report.md").exists()
