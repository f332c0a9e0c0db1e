"""How long a student-only experiment takes: teachers as their own stages vs. one train stage.

    python bench/student_rerun.py --archive ../shared/datasets/aclImdb_labeled.tar.gz

Builds two scratch git+dvc copies of the pipeline on the full data: this working tree
(teacher@<seed> stages + the student's train stage) and ``--single-stage-rev`` (the last
commit whose train stage trained the teachers and the student in one process). In each it
runs `dvc repro`, commits, then times `dvc exp run -S train.<key>=<value>` (a key only the
student reads) and records which stages reran. Writes bench/student-rerun.{json,md}: both
times, their ratio, and whether both pipelines' metrics/eval.json are the same bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchmark import (  # noqa: E402
    REPO_ROOT,
    init_project,
    machine,
    make_project,
    write_report,
)

KEPT = {"dvc.yaml", "params.yaml", "pyproject.toml", "stages", "src", "data", "plots"}
SINGLE_STAGE_REV = "21313a5"  # 6 Dec: three (later two) teachers and the student in one stage
STUDENT_KEY = "train.calibrate=false"
RAN = re.compile(r"Running stage '([\w@-]+)'")


def single_stage_project(folder: Path, rev: str) -> dict[str, str]:
    """A scratch copy of the pipeline as it was at ``rev``."""
    folder.mkdir(parents=True)
    archive = folder.parent / f"{folder.name}.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=REPO_ROOT, check=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.split("/")[0] in KEPT]
        tar.extractall(folder, members=members, filter="data")
    archive.unlink()
    return init_project(folder)


def timed(command: list[str], folder: Path, env: dict, log: Path) -> tuple[float, list[str]]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log.write_text(log.read_text() + result.stdout + result.stderr if log.exists() else
                   result.stdout + result.stderr)  # fmt: skip
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed in {folder}; see {log}")
    return round(seconds, 1), RAN.findall(result.stdout + result.stderr)


def commit(folder: Path, env: dict) -> None:
    subprocess.run(["git", "add", "-A"], cwd=folder, env=env, check=True)
    author = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", *author, "commit", "-qm", "run"], cwd=folder, env=env, check=True)


def measure(name: str, folder: Path, env: dict) -> dict:
    log = folder.parent / f"{name}.log"
    print(f"[{name}] dvc repro ...", flush=True)
    repro_s, repro_ran = timed(["dvc", "repro"], folder, env, log)
    commit(folder, env)
    print(f"[{name}] dvc exp run -S {STUDENT_KEY} ...", flush=True)
    exp_s, exp_ran = timed(["dvc", "exp", "run", "-S", STUDENT_KEY], folder, env, log)
    print(f"[{name}] repro {repro_s} s, experiment {exp_s} s ({', '.join(exp_ran)})", flush=True)
    return {
        "repro_s": repro_s,
        "repro_stages": repro_ran,
        "student_experiment_s": exp_s,
        "student_experiment_stages": exp_ran,
    }


def committed_eval(folder: Path) -> bytes:
    show = ["git", "show", "HEAD:metrics/eval.json"]
    return subprocess.run(show, cwd=folder, capture_output=True, check=True).stdout


def markdown(report: dict) -> str:
    split, single = report["teacher_stages"], report["single_train_stage"]
    return "\n".join([
        f"Student-only experiment (`dvc exp run -S {STUDENT_KEY}`), {report['date']}, "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']})",
        "",
        f"Command: `{report['command']}`",
        "",
        "| pipeline | full `dvc repro` (min) | student-only experiment (min) | stages it reran |",
        "|---|---|---|---|",
        *(f"| {label} | {run['repro_s'] / 60:.1f} | {run['student_experiment_s'] / 60:.1f} | "
          f"{', '.join(run['student_experiment_stages'])} |"
          for label, run in (("teacher stages (this commit)", split),
                             (f"one train stage ({report['single_stage_rev']})", single))),
        "",
        f"Ratio (teacher stages / one train stage): **{report['ratio']}**. "
        f"metrics/eval.json of both full runs: {report['eval_json']}.",
        "",
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path, help="local aclImdb archive")
    parser.add_argument("--single-stage-rev", default=SINGLE_STAGE_REV)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    runs = REPO_ROOT / "bench/runs" / f"rerun-{stamp}"
    os.environ["IMDB_ARCHIVE"] = str(args.archive.resolve())
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    split_env = make_project(runs / "teacher_stages", params)
    single_env = single_stage_project(runs / "single_train_stage", args.single_stage_rev)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python " + " ".join(["bench/student_rerun.py", *sys.argv[1:]]),
        "machine": machine(),
        "single_stage_rev": args.single_stage_rev,
        "teacher_stages": measure("teacher_stages", runs / "teacher_stages", split_env),
        "single_train_stage": measure(
            "single_train_stage", runs / "single_train_stage", single_env
        ),
    }
    split, single = report["teacher_stages"], report["single_train_stage"]
    report["ratio"] = round(split["student_experiment_s"] / single["student_experiment_s"], 3)
    # The full runs' files, as committed before the experiments changed the workspaces
    same = committed_eval(runs / "teacher_stages") == committed_eval(runs / "single_train_stage")
    report["eval_json"] = "the same bytes" if same else "different"
    write_report(report, markdown(report), args.out / "student-rerun")
    return 0


if __name__ == "__main__":
    sys.exit(main())
