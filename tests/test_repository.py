"""Repository-level promises: CI runs the README's test command; no data in git; the
parameter reference shows the committed defaults; the README is short and every link in the
docs resolves."""

import re
import subprocess

import pytest

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


def test_pyproject_admits_only_the_python_the_pins_were_made_for():
    # Before 3.11 asyncio.TimeoutError is not the built-in TimeoutError that the serving code
    # catches, and the pinned wheels were built and tested for 3.11.
    pins_python = re.search(r"\(Python (3\.\d+)", (REPO_ROOT / "requirements.txt").read_text())
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert re.search(rf'requires-python = ">={re.escape(pins_python.group(1))}"', pyproject)
    assert f'target-version = "py{pins_python.group(1).replace(".", "")}"' in pyproject


DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\((?!https?://|mailto:)([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_short_and_every_docs_page_says_what_it_is_for():
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 250
    for page in DOCS[1:]:
        opening = page.read_text().split("\n\n")[1]
        assert opening.startswith("What this page is for:"), page.name


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_link_to_a_repository_file_resolves(page):
    targets = LINK.findall(page.read_text())
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert missing == [], f"{page.name} links to missing files: {missing}"


def test_the_gpu_requirements_pin_the_cpu_pins_tensorflow_and_share_every_other_pin():
    cpu = (REPO_ROOT / "requirements.txt").read_text()
    gpu = (REPO_ROOT / "requirements-gpu.txt").read_text()
    cpu_version = re.search(r"^tensorflow-cpu==(\S+);", cpu, re.M).group(1)
    assert re.search(rf"^tensorflow\[and-cuda\]=={re.escape(cpu_version)}$", gpu, re.M)
    for requirements in (cpu, gpu):
        assert re.search(r"^-r requirements-common\.txt", requirements, re.M)
    assert "tensorflow" not in (REPO_ROOT / "requirements-common.txt").read_text()
