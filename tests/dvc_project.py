"""A throwaway git + dvc copy of the pipeline, for the tests that run real dvc commands."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.archive_factory import make_archive
from tests.conftest import REPO_ROOT, tiny_params

RAN = re.compile(r"Running stage '([\w@-]+)'")
DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
PROBES = "data/probes.csv"  # versioned in git, read by evaluate

# These tests prove DVC's wiring (what reruns, what is pushed, queued, killed), which does
# not depend on the network trained. One words-only teacher and a words-only student train in
# a third of the time of the default two-view ones; those are trained in-process by
# `pipeline_run`.
DVC_NETWORK = {"pair_vocab_size": 0}
DVC_TEACHERS = [42]


class Project:
    """A git + dvc repository holding a copy of the pipeline's code and params."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        for name in ("dvc.yaml", "params.yaml", "pyproject.toml"):
            shutil.copy(REPO_ROOT / name, root / name)
        for folder in ("stages", "src", "plots/templates"):
            shutil.copytree(
                REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
            )
        (root / PROBES).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / PROBES, root / PROBES)
        self.env = self._environment(root)
        self.run("git", "init", "-q", "--initial-branch", "main")
        self.run("dvc", "init", "-q")
        self.commit("the pipeline")  # DVCLive needs a commit to log to

    @staticmethod
    def _environment(root: Path) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}",
            "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        env.pop("IMDB_ARCHIVE", None)
        return env

    @classmethod
    def copy_of(cls, other: Project, root: Path) -> Project:
        """An independent copy of ``other`` (git history, dvc cache, workspace) at ``root``."""
        # .dvc/tmp holds locks, queue state and a hash cache keyed by inode: not to be shared
        shutil.copytree(other.root, root, symlinks=True, ignore=_dvc_tmp(other.root))
        return cls._existing(root, cls._environment(root))

    @classmethod
    def _existing(cls, root: Path, env: dict[str, str]) -> Project:
        """A Project for a repository already at ``root``, run with ``env``."""
        project = object.__new__(cls)
        project.root, project.env = root, env
        return project

    def run(self, *command: str) -> str:
        result = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def clone(self, origin: str, root: Path) -> Project:
        """A git clone of ``origin`` at ``root``, run with this project's environment."""
        self.run("git", "clone", "-q", "--branch", "main", origin, str(root))
        return Project._existing(root, self.env)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run(
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--allow-empty",
            "-qm",
            message,
        )

    def repro(self) -> list[str]:
        return RAN.findall(self.run("dvc", "repro"))

    def set_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def declared_outputs(self) -> list[Path]:
        """Every out, metric and plot of dvc.yaml, one per teacher for the teachers' stages."""
        seeds = yaml.safe_load((self.root / "params.yaml").read_text())["teachers"]["seeds"]
        paths = []
        for stage in DVC_YAML["stages"].values():
            for kind in ("outs", "metrics", "plots"):
                for out in stage.get(kind, []):
                    path = out if isinstance(out, str) else next(iter(out))
                    each = [path.replace("${item.seed}", str(s)) for s in seeds]
                    paths += each if "matrix" in stage else [path]
        return [self.root / path for path in paths]


def _dvc_tmp(root: Path):
    def ignore(folder: str, names: list[str]) -> list[str]:
        return ["tmp"] if Path(folder) == root / ".dvc" else []

    return ignore


def tiny_project(tmp_path: Path) -> tuple[Project, dict]:
    """A Project whose params.yaml points at a fresh tiny archive; returns it and the params."""
    project = Project(tmp_path / "project")
    archive = tmp_path / "tiny.tar.gz"
    params = tiny_params(archive, make_archive(archive))
    params["teacher"].update(DVC_NETWORK)
    params["train"].update(DVC_NETWORK)
    params["teachers"]["seeds"] = list(DVC_TEACHERS)
    project.set_params(params)
    return project, params


class TrainedProject:
    """A tiny project after its first `dvc repro` and a commit, kept to be copied per test."""

    def __init__(self, folder: Path) -> None:
        self.project, self.params = tiny_project(folder)
        self.first_run = self.project.repro()
        self.project.commit("tiny run")

    def copy(self, folder: Path) -> tuple[Project, dict]:
        """A copy at ``folder/project`` and its params, both free to change."""
        return Project.copy_of(self.project, folder / "project"), copy.deepcopy(self.params)
