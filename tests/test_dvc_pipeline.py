"""dvc.yaml declares what each stage reads; real `dvc repro` reruns only what changed."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from imdb_sentiment import layout
from stages import download, evaluate, linear_baseline, preprocess, teacher, train
from tests.conftest import REPO_ROOT
from tests.dvc_project import DVC_TEACHERS, DVC_YAML, RAN
from tests.table_factory import TABLE_PARAMS, review_table, write_table

STAGES = (download, preprocess, linear_baseline, teacher, train, evaluate)
STAGE_MODULES = {module.SECTION: module for module in STAGES}
TEACHERS = [f"teacher@{seed}" for seed in DVC_TEACHERS]
EVERY_STAGE = ["download", "preprocess", "linear_baseline", *TEACHERS, "train", "evaluate"]
PACKAGE = "imdb_sentiment"
PACKAGE_DIR = Path("src") / PACKAGE


def _module_files(name: str) -> list[Path]:
    """The files importing ``name`` runs: each package's __init__.py on the way, then the
    module itself (names that are not a module, such as a function, give nothing more)."""
    parts = name.split(".")[1:]
    files = []
    for depth in range(1, len(parts) + 1):
        folder = PACKAGE_DIR.joinpath(*parts[:depth])
        for path in (folder / "__init__.py", folder.with_suffix(".py")):
            if (REPO_ROOT / path).is_file():
                files.append(path)
    return files


def imported_library_modules(script: Path) -> set[str]:
    """Library module files a script imports or runs (`python -m imdb_sentiment.x`),
    followed transitively through the package."""
    found: set[str] = set()
    pending = [script]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
                names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.startswith(PACKAGE)]
            if names:  # importing any module of the package runs its __init__ first
                names.append(f"{PACKAGE}.__init__")
            elif isinstance(node, ast.Constant) and str(node.value).startswith(f"{PACKAGE}."):
                names = [node.value]
            for name in names:
                for path in _module_files(name):
                    if str(path) not in found:
                        found.add(str(path))
                        pending.append(REPO_ROOT / path)
    return found


@pytest.mark.parametrize("stage", list(STAGE_MODULES))
def test_each_stage_depends_on_whole_sections_that_hold_only_what_it_reads(stage):
    declared = DVC_YAML["stages"][stage]["params"]
    # The student reads the seed list to know which teachers' scores to load; no teacher does.
    assert declared == (["teachers", "train"] if stage == "train" else [stage])
    committed = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert set(committed[stage]) == set(STAGE_MODULES[stage].Params.model_fields)


def declared_paths(stage: str) -> set[str]:
    """Every path dvc.yaml names for a stage: deps, outs, metrics and plots."""
    entry, found = DVC_YAML["stages"][stage], set()
    for key in ("deps", "outs", "metrics", "plots"):
        for item in entry.get(key, []):
            found.add(next(iter(item)) if isinstance(item, dict) else item)
    return found


@pytest.mark.parametrize("stage", list(STAGE_MODULES))
def test_each_path_a_stage_uses_is_one_dvc_yaml_declares_for_it(stage):
    script = (REPO_ROOT / "stages" / f"{stage}.py").read_text()
    used = {name for name in vars(layout) if name.isupper() and re.search(rf"\b{name}\b", script)}
    assert used, f"{stage} names no path of imdb_sentiment.layout"
    declared = declared_paths(stage)
    for name in used - {"CACHE_DIR"}:  # the download cache is not a DVC output
        path = str(getattr(layout, name))
        assert any(d == path or d.startswith(f"{path}/") for d in declared), (
            f"{stage} uses {name} = {path}, which dvc.yaml does not declare for it"
        )


@pytest.mark.parametrize("stage", list(STAGE_MODULES))
def test_code_deps_are_exactly_the_script_and_its_library_modules(stage):
    script = Path("stages") / f"{stage}.py"
    declared = {dep for dep in DVC_YAML["stages"][stage]["deps"] if dep.endswith(".py")}
    assert declared == {str(script)} | imported_library_modules(REPO_ROOT / script)


# --- real dvc -------------------------------------------------------------------------------


@pytest.mark.integration
def test_switching_to_your_own_tables_reruns_every_stage_and_an_extra_set_only_evaluate(
    trained_project, tmp_path
):
    """From the archive to a CSV, then to a Parquet file of other rows: every stage reruns
    each time. Then an extra test set: evaluate alone reruns, and scores it under its name."""
    project, params = trained_project
    for name, seed in (("reviews.csv", 1), ("reviews.parquet", 2)):
        table = tmp_path / name
        sha = write_table(review_table(per_class=30, groups=10, seed=seed), table)
        params["download"].update(TABLE_PARAMS, url=str(table), sha256=sha, test_fraction=0.25)
        params["download"]["group_column"] = "product"
        project.set_params(params)
        assert project.repro() == EVERY_STAGE, name
        stats = json.loads((project.root / "metrics/preprocess.json").read_text())
        assert stats["source"]["format"] == "table" and stats["validation_grouped"] is True
        assert sum(stats[split]["reviews"] for split in ("train", "validation", "test")) == 60

    extra = tmp_path / "other-site.jsonl"
    sha = write_table(review_table(per_class=8, seed=3), extra)
    params["evaluate"]["extra_sets"] = [
        {"name": "other-site", "url": str(extra), "sha256": sha, "text_column": "review",
         "label_column": "sentiment", "positive_labels": ["positive"],
         "negative_labels": ["negative"]},
    ]  # fmt: skip
    project.set_params(params)
    assert project.repro() == ["evaluate"]
    scored = json.loads((project.root / "metrics/eval.json").read_text())["extra_sets"]
    assert scored["other-site"]["count"] == 16
    assert set(scored["other-site"]) >= {"accuracy", "f1", "roc_auc", "mean_probability_positive"}
    assert "extra_sets.other-site.accuracy" in project.run("dvc", "metrics", "show", "--md")


@pytest.mark.integration
def test_a_first_dvc_repro_runs_every_stage_and_a_second_runs_none(trained_project_template):
    assert trained_project_template.first_run == EVERY_STAGE
    project = trained_project_template.project
    missing = [out for out in project.declared_outputs() if not out.exists()]
    assert missing == []
    assert "accuracy" in project.run("dvc", "metrics", "show")
    # Each teacher's validation figures sit beside the student's and the test set's.
    shown = json.loads(project.run("dvc", "metrics", "show", "--json"))
    files = next(iter(shown.values()))["data"]  # the workspace's (DVC names it "")
    for member in ("student", *(f"teacher-{seed}" for seed in DVC_TEACHERS)):
        figures = files[f"dvclive/{member}/metrics.json"]["data"]
        assert 0 <= figures["best_val_accuracy"] <= 1 and figures["best_epoch"] >= 1, member
    assert project.repro() == []


@pytest.mark.integration
def test_dvc_repro_reruns_only_the_stages_that_read_a_change(trained_project):
    project, params = trained_project
    assert project.repro() == []  # a copy of the project is as up to date as the original

    def change(section: str, key: str, value) -> list[str]:
        params[section][key] = value
        project.set_params(params)
        return project.repro()

    before = json.loads((project.root / "metrics/eval.json").read_text())
    assert change("evaluate", "threshold", 0.99) == ["evaluate"]
    after = json.loads((project.root / "metrics/eval.json").read_text())
    assert after["threshold"] == 0.99 and after["confusion"] != before["confusion"]
    assert after["roc_auc"] == before["roc_auc"]  # ranking figures do not depend on it
    assert change("train", "dropout", 0.2) == ["train", "evaluate"]  # the teachers stand
    assert change("teacher", "dropout", 0.2) == [*TEACHERS, "train", "evaluate"]
    # A new seed trains its teacher alone; the others' scores are reused.
    assert change("teachers", "seeds", [*DVC_TEACHERS, 7]) == ["teacher@7", "train", "evaluate"]
    assert change("preprocess", "max_length", 16) == [
        "preprocess", "linear_baseline", *TEACHERS, "teacher@7", "train", "evaluate"
    ]  # fmt: skip

    with open(project.root / "stages/train.py", "a") as script:
        script.write("\n# an edit\n")
    # train reruns; it writes the same model bytes, so evaluate has nothing new to read
    assert project.repro() == ["train"]
    with open(project.root / "stages/evaluate.py", "a") as script:
        script.write("\n# an edit\n")
    assert project.repro() == ["evaluate"]
    with open(project.root / PACKAGE_DIR / "scoring" / "evaluation.py", "a") as module:
        # Preprocess cuts the training reviews' short views with it and training scores the
        # validation split with it; preprocess writes the same bytes, so linear_baseline stands.
        module.write("\n# an edit\n")
    teachers = [*TEACHERS, "teacher@7"]
    assert project.repro() == ["preprocess", *teachers, "train", "evaluate"]


@pytest.mark.integration
def test_a_forced_retrain_keeps_dvc_lock_and_exp_show_and_plots_read_well(trained_project):
    project, _ = trained_project
    lock = lock_without_timings(project.root / "dvc.lock")
    project.run("dvc", "repro", "-f", "-s", "train")  # the same weights again: the same bytes
    assert RAN.findall(project.run("dvc", "repro")) == []  # so evaluate has nothing to redo
    assert lock_without_timings(project.root / "dvc.lock") == lock
    project.commit("run")

    rendered = json.loads(project.run("dvc", "plots", "show", "--json"))
    assert "errors" not in rendered, rendered.get("errors")
    declared = [next(iter(p)) if isinstance(p, dict) else p for p in DVC_YAML["plots"]]
    live = [f"dvclive/{member}/plots/metrics/{split}/{figure}.tsv"
            for member in ("student", *(f"teacher-{seed}" for seed in DVC_TEACHERS))
            for split in ("train", "eval") for figure in ("accuracy", "loss")]  # fmt: skip
    assert set(rendered["data"]) == set(declared) | set(live)
    assert all(rendered["data"][name] for name in rendered["data"])
    confusion = rendered["data"]["Confusion matrix"][0]["content"]["data"]["values"]
    assert {row["actual"] for row in confusion} == {"negative", "positive"}

    project.env["COLUMNS"] = "120"
    table = project.run(*readme_exp_show_command())
    header = next(line for line in table.splitlines() if "Experiment" in line)
    columns = [c for c in re.split(r"[\s│┃|]+", header) if c]
    assert columns[:2] == ["Experiment", "Created"], table
    metric_columns = columns[2:7]
    assert "accuracy" in metric_columns and "validation_accuracy" in metric_columns, table
    assert "…" not in metric_columns, table


def lock_without_timings(path: Path) -> dict:
    """dvc.lock less the hashes of the files that record training times (metrics/train.json,
    each dvclive/*/metrics.json)."""
    lock = yaml.safe_load(path.read_text())
    for stage in lock["stages"].values():
        stage["outs"] = [o for o in stage["outs"] if not o["path"].endswith(TIMED)]
    return lock


TIMED = ("metrics/train.json", "/metrics.json")


def readme_exp_show_command() -> list[str]:
    """The headline `dvc exp show` invocation that README.md gives."""
    readme = (REPO_ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("dvc exp show --no-pager"))
    return shlex.split(line)
