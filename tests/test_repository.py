"""Repository-level promises: CI runs the README's test command; no data in git."""

import re
import subprocess

from tests.conftest import REPO_ROOT


def readme_test_command() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Tests", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    command = readme_test_command()
    assert command.startswith("python -m pytest")
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci/run").read_text().splitlines()]
    assert any(line.startswith(command + " ") or line == command for line in ci_lines)


def test_no_dataset_or_model_files_are_tracked():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [p for p in tracked if p.startswith(("data/raw", "data/prepared", "models/"))]
    assert not [p for p in tracked if p.endswith((".tar.gz", ".npz", ".keras"))]
    too_big = [
        p for p in tracked if (REPO_ROOT / p).is_file() and (REPO_ROOT / p).stat().st_size > 2**21
    ]
    assert too_big == []
