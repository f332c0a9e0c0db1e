"""Benchmark the full pipeline against a reference-style baseline, in one run.

    python bench/benchmark.py --archive ../shared/datasets/aclImdb_labeled.tar.gz

Copies the pipeline into scratch git+dvc repositories under bench/runs/ and runs `dvc repro`
stage by stage for these configurations:
  pipeline  the committed params.yaml, every stage;
  reference round 13's defaults (ROUND_13), pinned: the pipeline's full repro time is divided
            by this one's, measured in the same run (when the committed params are round 13's,
            the pipeline run is the reference too, and the ratio is 1);
  defaults_6_dec  the defaults of 6 December (DEC_6), pinned: the second time reference (the
            linear baseline's issue asks for a repro no slower than it);
  naive     the same params with every batch padded to the full max length
            (train.bucket_by_length: false), one epoch, up to train: the throughput reference;
  baseline  configured like the reference projects (Embedding(10000,128) -> LSTM(64) -> Dense,
            max length 500 post-padded, batch 32, full-length batches), bounded epochs.
(naive and baseline are left out with --skip-baseline.) Every configuration runs the
linear_baseline stage, and evaluate scores that NB-weighted linear model beside the LSTM; the
benchmark also fits the TF-IDF linear model (imdb_sentiment.training.linear.tfidf_model) on the
pipeline run's training split. For each: time, test accuracy, both short-view accuracies and
ECE. Records per-stage wall time and peak memory, test metrics and training throughput, the
machine's float32 matrix rate and the share of it that training uses (bench.flops),
and writes bench/report.json and bench/report.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: bench as a package

from bench import flops  # noqa: E402
from imdb_sentiment.data import dataset  # noqa: E402

PROBES = "data/probes.csv"
STAGES = ("download", "preprocess", "linear_baseline", "teacher", "train", "evaluate")
TRAINING_STAGES = ("download", "preprocess", "train")  # what a labels-only student needs
# Keys that came after a pinned configuration, set as that configuration trained: off.
NO_LINEAR_TEACHER = {"linear_teacher_weight": 0.0, "window_copies": 0, "window_min_tokens": 5,
                     "window_max_tokens": 40, "calibrate": False,
                     "linear_branch": False, "linear_branch_C": 0.1,
                     "linear_branch_triples": 0, "linear_branch_pairs": 0,
                     "linear_branch_short_views": False,
                     "linear_branch_sentences": 0.0}  # fmt: skip
BASELINE = {
    "preprocess": {"vocab_size": 10000, "max_length": 500, "padding": "post", "truncating": "post"},
    "train": {
        "embedding_dim": 128,
        "lstm_units": 64,
        "lstm_layers": 1,
        "bidirectional": False,
        "lstm_kernel": "keras",  # the reference projects' layer and optimiser
        "rowwise_embedding_updates": False,
        "batch_size": 32,
        # Pinned, not inherited: tuning the pipeline's optimiser must not move the reference.
        "learning_rate": 0.002,
        "learning_rate_schedule": "constant",
        "clipnorm": 1.0,
        "bucket_by_length": False,
        "pooling": "last",  # Dense on the final LSTM state, as the reference projects do
        "pair_vocab_size": 0,  # words only
        "triple_vocab_size": 0,
        "dropout": 0.0,
        "embedding_dropout": 0.0,
        "ema_momentum": 0.0,
        **NO_LINEAR_TEACHER,
        "seed": 42,
    },
    "teachers": {"seeds": []},  # one model trained on the labels
}

# The defaults of accuracy round 13 (test accuracy 0.9117; docs/history.md), pinned
# so that a faster default is timed against them on the same machine in the same run.
ROUND_13_NETWORK = {
    "embedding_dim": 128, "lstm_units": 64, "lstm_layers": 1, "bidirectional": False,
    "lstm_kernel": "keras", "dropout": 0.3, "embedding_dropout": 0.0, "pooling": "mean_max",
    "pair_vocab_size": 50000, "triple_vocab_size": 0,
    "learning_rate": 0.003, "learning_rate_schedule": "constant", "clipnorm": 1.0,
    "rowwise_embedding_updates": False,
    "ema_momentum": 0.99, "batch_size": 64, "max_epochs": 4, "bucket_by_length": True,
    "early_stopping_monitor": "val_loss", "early_stopping_patience": 1,
    "early_stopping_min_delta": 0.001,
}  # fmt: skip
ROUND_13 = {
    "preprocess": {
        "vocab_size": 10000, "max_length": 600, "padding": "pre", "truncating": "pre",
        "validation_fraction": 0.05, "seed": 42,
        "lowercase": True, "strip_html": True, "strip_punctuation": True,
    },
    # Three teachers (seeds 42-44) of at most 2 epochs, then the student (seed 45): the seeds
    # and epochs they had when one stage trained them all.
    "teachers": {"seeds": [42, 43, 44]},
    "teacher": {**ROUND_13_NETWORK, "max_epochs": 2},
    "train": {**ROUND_13_NETWORK, **NO_LINEAR_TEACHER, "seed": 45},
}  # fmt: skip

# The defaults of 6 December (test accuracy 0.9111, 6.4 minutes on the AMD EPYC host), pinned
# as the second reference: the linear baseline's issue times the new defaults against them.
FASTER_LOOP = {"lstm_kernel": "hoisted", "rowwise_embedding_updates": True}
DEC_6 = {
    "preprocess": ROUND_13["preprocess"],
    "teachers": ROUND_13["teachers"],
    "teacher": {**ROUND_13["teacher"], **FASTER_LOOP},
    "train": {**ROUND_13["train"], **FASTER_LOOP, "max_epochs": 2},
}


def with_overrides(params: dict, overrides: dict[str, dict]) -> dict:
    """A copy of ``params`` with some keys of some sections replaced."""
    changed = json.loads(json.dumps(params))
    for section, values in overrides.items():
        changed[section].update(values)
    return changed


def baseline_params(params: dict, epochs: int) -> dict:
    """``params`` configured like the reference projects, with at most ``epochs`` epochs."""
    bounded = {**BASELINE["train"], "max_epochs": epochs}
    return with_overrides(params, {**BASELINE, "train": bounded})


def reference_params(params: dict) -> dict:
    """``params`` with round 13's preprocess and train sections."""
    return with_overrides(params, ROUND_13)


def dec_6_params(params: dict) -> dict:
    """``params`` with the preprocess and train sections of 6 December's defaults."""
    return with_overrides(params, DEC_6)


def naive_params(params: dict) -> dict:
    """``params`` with every batch padded to the full length (no length buckets), one epoch,
    learning the labels: the reference the student's training throughput is divided by."""
    naive = {"bucket_by_length": False, "max_epochs": 1, **NO_LINEAR_TEACHER}
    return with_overrides(params, {"train": naive, "teachers": {"seeds": []}})


def peak_rss_of_tree(process: subprocess.Popen, interval: float = 0.2) -> list[int]:
    """Start polling the RSS of ``process`` and its children; the list holds the peak so far."""
    peak = [0]

    def poll() -> None:
        try:
            root = psutil.Process(process.pid)
            while process.poll() is None:
                tree = [root, *root.children(recursive=True)]
                total = 0
                for member in tree:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += member.memory_info().rss
                peak[0] = max(peak[0], total)
                time.sleep(interval)
        except psutil.NoSuchProcess:
            pass

    threading.Thread(target=poll, daemon=True).start()
    return peak


def make_project(folder: Path, params: dict) -> dict[str, str]:
    """A scratch git+dvc copy of the pipeline; returns the environment to run it in."""
    folder.mkdir(parents=True)
    for name in ("dvc.yaml", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, folder / name)
    (folder / "data/teachers").mkdir(parents=True)  # the student's dependency, teachers or not
    shutil.copy(REPO_ROOT / PROBES, folder / PROBES)
    for sub in ("stages", "src", "plots/templates"):
        shutil.copytree(REPO_ROOT / sub, folder / sub, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return init_project(folder)


def init_project(folder: Path) -> dict[str, str]:
    """`git init` and `dvc init` in ``folder``; returns the environment to run its code in."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{folder / 'src'}{os.pathsep}{folder}",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    author = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    commands = (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", *author, "commit", "-qm", "the pipeline"])  # fmt: skip
    for command in commands:  # DVCLive needs a commit to log to
        subprocess.run(command, cwd=folder, env=env, check=True)
    return env


def run_pipeline(
    name: str, folder: Path, params: dict, log: Path, stages_to_run: tuple = STAGES
) -> dict:
    env = make_project(folder, params)
    stages = {}
    with open(log, "a") as log_file:
        for stage in stages_to_run:
            print(f"[{name}] {stage} ...", flush=True)
            started = time.perf_counter()
            command = ["dvc", "repro", "--single-item", stage]
            process = subprocess.Popen(
                command, cwd=folder, env=env, stdout=log_file, stderr=log_file
            )
            peak = peak_rss_of_tree(process)
            if process.wait() != 0:
                raise SystemExit(f"[{name}] stage {stage} failed; see {log}")
            seconds = time.perf_counter() - started
            stages[stage] = {"wall_s": round(seconds, 1), "peak_rss_mb": round(peak[0] / 2**20)}
            print(f"[{name}] {stage}: {seconds:.1f} s, peak {peak[0] / 2**20:.0f} MB", flush=True)
    metrics = {
        name: json.loads((folder / "metrics" / f"{name}.json").read_text())
        for name in ("train", "eval", "linear_baseline")
        if (folder / "metrics" / f"{name}.json").exists()
    }
    return {
        "params": params,
        "stages": stages,
        "total_wall_s": round(sum(s["wall_s"] for s in stages.values()), 1),
        "max_peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
        **metrics,
    }


def cpuinfo_field(name: str) -> str:
    """The first value of ``name`` in /proc/cpuinfo ('' where there is none)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), "")


def machine() -> dict:
    flags = cpuinfo_field("flags").split()
    # TensorFlow's CPU kernels round differently with AVX-512 than with AVX2 alone, so the
    # widest vector extension is part of what makes a training run repeatable.
    vectors = next((isa for isa in ("avx512f", "avx2", "avx") if isa in flags), "none")
    return {
        "cpu": cpuinfo_field("model name") or platform.processor(),
        "vector_isa": vectors,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def median_seconds(step: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``step`` over ``repeats`` calls, after one untimed call that
    traces and warms it up."""
    step()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def matrix_rate_gflops(size: int = 2048, repeats: int = 15) -> float:
    """The median float32 rate of a ``size``² TensorFlow matrix product on this machine."""
    import tensorflow as tf

    a, b = tf.random.normal([size, size], seed=1), tf.random.normal([size, size], seed=2)
    product = tf.function(lambda: tf.linalg.matmul(a, b))
    seconds = median_seconds(lambda: product().numpy(), repeats)
    return round(2 * size**3 / seconds / 1e9, 1)


def compute_use(run: dict, run_folder: Path, matrix_gflops: float) -> dict:
    """Analytic training FLOPs per review x measured reviews/s, against the matrix rate."""
    _, x_train, _ = dataset.load_arrays(run_folder / "data/prepared", "train")
    tokens = float((x_train != dataset.PAD_ID).sum(axis=1).mean())
    per_review = flops.training_flops_per_review(argparse.Namespace(**run["params"]["train"]),
                                                 tokens)  # fmt: skip
    achieved = per_review * run["train"]["train_reviews_per_second"] / 1e9
    return {
        "mean_tokens_per_review": round(tokens, 1),
        "training_mflop_per_review": round(per_review / 1e6, 1),
        "achieved_gflops": round(achieved, 1),
        "matrix_gflops": matrix_gflops,
        "share_of_matrix_rate": round(achieved / matrix_gflops, 3),
    }


def reference_run(report: dict) -> dict:
    """The round-13 reference's run: the pipeline's own when their params are the same."""
    reference = report["reference"]
    return report["pipeline"] if reference.get("same_as_pipeline") else reference


def tfidf_figures(run_folder: Path, threshold: float = 0.5) -> dict:
    """The TF-IDF linear model fitted on ``run_folder``'s training split, timed, and scored on
    its test reviews and their short views as evaluate scores the other models."""
    from imdb_sentiment.data import archive, text
    from imdb_sentiment.scoring import evaluation
    from imdb_sentiment.training import linear

    prepared, raw = run_folder / "data/prepared", run_folder / "data/raw"
    cleaning = text.load_encoder(prepared / "encoder.json").cleaning
    ids, _, y = dataset.load_arrays(prepared, "train")
    texts = archive.texts_of(archive.read_table(raw, "train"), ids, y, raw / "train.csv")
    started = time.perf_counter()
    cleaned = linear.clean_texts(texts, cleaning)
    model = linear.LinearModel(linear.tfidf_model().fit(cleaned, y), cleaning)
    figures = {"fit_seconds": round(time.perf_counter() - started, 1)}
    test = archive.read_table(raw, "test")
    labels = test["label"].to_numpy()
    views = {"full": test["text"].tolist(), **evaluation.short_views(test["text"].tolist())}
    for name, view in views.items():
        figures[name] = evaluation.view_metrics(labels, model.probabilities(view), threshold)
    return figures


ACCURACY_COLUMNS = "| model | time | test accuracy | last sentence | first 20 words | ECE test / last / first | probes |"  # noqa: E501


def accuracy_rows(report: dict) -> list[str]:
    """One row per model of the run: every LSTM configuration, then the two linear models."""
    rows = [ACCURACY_COLUMNS, "|---|---|---|---|---|---|---|"]
    for name in ("pipeline", "defaults_6_dec", "reference"):
        run = report.get(name, {})
        if "eval" not in run:  # a reference that was skipped, or is the pipeline's own run
            continue
        rows.append(_accuracy_row(f"LSTM: {name}", f"{run['total_wall_s'] / 60:.1f} min (repro)",
                                  run["eval"]))  # fmt: skip
    pipeline = report["pipeline"]
    linear_wall = pipeline["stages"]["linear_baseline"]["wall_s"]
    nb = pipeline["eval"]["linear_baseline"]
    rows.append(_accuracy_row("NB-weighted LR (linear_baseline stage)", f"{linear_wall:.0f} s", nb))
    if "tfidf" in report:
        tfidf = report["tfidf"]
        views = {k: tfidf[k] for k in ("last_sentence", "first_20_words")}
        figures = {**tfidf["full"], "short_views": views}
        rows.append(_accuracy_row("TF-IDF LR (benchmark)", f"{tfidf['fit_seconds']:.0f} s (fit)",
                                  figures))  # fmt: skip
    return rows


def _accuracy_row(name: str, time_cell: str, figures: dict) -> str:
    views = figures.get("short_views", {})
    last, first = views.get("last_sentence", {}), views.get("first_20_words", {})
    probes = figures.get("probes_passed")
    cells = [
        name, time_cell, figures["accuracy"], last.get("accuracy", "-"), first.get("accuracy", "-"),
        f"{figures.get('ece', '-')} / {last.get('ece', '-')} / {first.get('ece', '-')}",
        f"{probes}/{figures['probes_total']}" if probes is not None else "-",
    ]  # fmt: skip
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def targets(report: dict) -> dict[str, dict]:
    """The linear baseline issue's targets, each with the measured value and whether it is met."""
    ours = report["pipeline"]["eval"]
    nb = ours["linear_baseline"]
    best_linear = {
        view: max(nb["short_views"][view]["accuracy"], report["tfidf"][view]["accuracy"])
        for view in ("last_sentence", "first_20_words")
    }
    dec_6 = report.get("defaults_6_dec", {}).get("total_wall_s")
    checks = {
        "test accuracy >= 0.920": (ours["accuracy"], ours["accuracy"] >= 0.920),
        "test accuracy >= NB baseline + 0.006": (
            round(ours["accuracy"] - nb["accuracy"], 4),
            ours["accuracy"] >= nb["accuracy"] + 0.006,
        ),
        "ECE test <= 0.02": (ours["ece"], ours["ece"] <= 0.02),
        "max stage peak <= 2560 MiB": (
            report["pipeline"]["max_peak_rss_mb"],
            report["pipeline"]["max_peak_rss_mb"] <= 2560,
        ),
    }
    for view, best in best_linear.items():
        value = ours["short_views"][view]["accuracy"]
        checks[f"{view} >= best linear + 0.02"] = (round(value - best, 4), value >= best + 0.02)
        ece = ours["short_views"][view]["ece"]
        checks[f"ECE {view} <= 0.05"] = (ece, ece <= 0.05)
    if dec_6:
        ratio = round(report["pipeline"]["total_wall_s"] / dec_6, 3)
        checks["repro time / 6 Dec defaults <= 1"] = (ratio, ratio <= 1.0)
    return {name: {"value": value, "met": bool(met)} for name, (value, met) in checks.items()}


def accuracy_markdown(report: dict) -> str:
    lines = accuracy_rows(report) + ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {check['value']} | {'yes' if check['met'] else '**no**'} |"
              for name, check in report["targets"].items()]  # fmt: skip
    return "\n".join(lines) + "\n"


def markdown(report: dict) -> str:
    ours = report["pipeline"]
    runs = [ours, report["defaults_6_dec"]]
    columns = ["pipeline (params.yaml)", "6 Dec defaults"]
    if not report["reference"].get("skipped"):
        same = " (the same run)" if report["reference"].get("same_as_pipeline") else ""
        runs.append(reference_run(report))
        columns.append(f"reference (round 13){same}")
    if "baseline" in report:
        runs.append(report["baseline"])
        columns.append("baseline (reference-style)")
    machine, use = report["machine"], report["compute_use"]
    lines = [
        f"Benchmark of {report['commit'][:10]} on {machine['cores']} cores "
        f"({machine['cpu']}, {machine.get('vector_isa', '?')}, float32 matrix rate "
        f"{use['matrix_gflops']} GFLOP/s), {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        accuracy_markdown(report),
        "| | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for stage in STAGES:
        cells = [f"{r['stages'][stage]['wall_s']} / {r['stages'][stage]['peak_rss_mb']}"
                 for r in runs]  # fmt: skip
        lines.append(f"| {stage}: wall s / peak MB | " + " | ".join(cells) + " |")
    rows = [
        ("full `dvc repro` wall (min)", lambda r: f"{r['total_wall_s'] / 60:.1f}"),
        ("max stage peak memory (MB)", lambda r: r["max_peak_rss_mb"]),
        ("epochs run", lambda r: r["train"]["epochs_run"]),
        ("training throughput (reviews/s)", lambda r: r["train"]["train_reviews_per_second"]),
        ("validation accuracy", lambda r: r["eval"]["validation_accuracy"]),
        ("test accuracy", lambda r: r["eval"]["accuracy"]),
        ("test F1", lambda r: r["eval"]["f1"]),
        ("test ROC-AUC", lambda r: r["eval"]["roc_auc"]),
    ]
    lines += [f"| {label} | " + " | ".join(str(value(r)) for r in runs) + " |"
              for label, value in rows]  # fmt: skip
    round_13 = report.get("time_ratio_vs_reference", "not run (--skip-round-13)")
    lines += [
        "",
        f"Full `dvc repro` time, pipeline / 6 Dec defaults: **{report['time_ratio_vs_dec_6']}**; "
        f"pipeline / round-13 reference: **{round_13}**.",
        "",
        f"Compute use: {use['training_mflop_per_review']} MFLOP per training review "
        f"(`bench.flops`, {use['mean_tokens_per_review']} tokens on average) x "
        f"{ours['train']['train_reviews_per_second']} reviews/s = {use['achieved_gflops']} "
        f"GFLOP/s, **{use['share_of_matrix_rate']:.1%}** of the machine's float32 matrix rate "
        f"({use['matrix_gflops']} GFLOP/s, a 2048² product, median of 15).",
        "",
    ]
    if "naive" in report:
        lines += [
            f"Training throughput of the same params with every batch padded to the full "
            f"length (naive, 1 epoch): {report['naive']['train']['train_reviews_per_second']} "
            f"reviews/s; pipeline / naive: **{report['throughput_ratio_vs_naive']}x**; "
            f"pipeline / baseline: {report['throughput_ratio_vs_baseline']}x.",
            "",
        ]
    lines += [
        reproduction_line(report["reproduced"]),
    ]
    return "\n".join(lines) + "\n"


def lock_outputs(lock_file: Path) -> dict[str, str]:
    """Every stage output recorded in a dvc.lock: path -> md5."""
    stages = yaml.safe_load(lock_file.read_text())["stages"].values()
    return {out["path"]: out["md5"] for stage in stages for out in stage.get("outs", [])}


def compare_with_committed(run_folder: Path, committed: Path = REPO_ROOT) -> dict:
    """How a scratch run of the committed params differs from the committed run.

    Names the changed metrics and the outputs whose hashes differ, so a difference can be
    placed: metrics/train.json records training times, a .keras file its save time, and
    training rounds differently on a CPU with other vector instructions (AVX2, AVX-512).
    """
    ours = json.loads((run_folder / "metrics/eval.json").read_text())
    theirs = json.loads((committed / "metrics/eval.json").read_text())
    changed = {
        key: [theirs.get(key), ours.get(key)]
        for key in sorted(theirs.keys() | ours.keys())
        if theirs.get(key) != ours.get(key)
    }
    run_outs = lock_outputs(run_folder / "dvc.lock")
    return {
        "eval_json_changes": changed,
        "outputs_changed": [
            path
            for path, md5 in lock_outputs(committed / "dvc.lock").items()
            if run_outs.get(path) != md5
        ],
    }


def reproduction_line(reproduced: dict) -> str:
    changes = reproduced["eval_json_changes"]
    changed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changes.items())
    verdict = f"DIFFERENT ({changed})" if changes else "identical"
    outputs = ", ".join(f"`{path}`" for path in reproduced["outputs_changed"]) or "none"
    return (
        f"Same params and data twice (this run vs. the committed `metrics/eval.json`): "
        f"{verdict}. Outputs whose hash differs from the committed `dvc.lock`: {outputs}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", required=True, type=Path, help="local aclImdb archive")
    parser.add_argument("--baseline-epochs", type=int, default=2, help="bound on baseline epochs")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench")
    parser.add_argument("--skip-baseline", action="store_true", help="no naive and baseline runs")
    parser.add_argument(
        "--skip-round-13",
        action="store_true",
        help="no round-13 reference (its run is the longest)",
    )
    args = parser.parse_args()
    os.environ["IMDB_ARCHIVE"] = str(args.archive.resolve())

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs = REPO_ROOT / "bench" / "runs" / stamp
    runs.mkdir(parents=True)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    report = {
        "date": stamp,
        "commit": commit,
        "command": " ".join(["python", "bench/benchmark.py", *sys.argv[1:]]),
        "machine": machine(),
    }
    matrix_gflops = matrix_rate_gflops()  # on the idle machine, before any stage runs
    report["pipeline"] = run_pipeline("pipeline", runs / "pipeline", params, runs / "pipeline.log")
    report["compute_use"] = compute_use(report["pipeline"], runs / "pipeline", matrix_gflops)
    print("[tfidf] fitting the TF-IDF linear model on the pipeline's split ...", flush=True)
    report["tfidf"] = tfidf_figures(runs / "pipeline")
    report["defaults_6_dec"] = run_pipeline(
        "defaults_6_dec", runs / "defaults_6_dec", dec_6_params(params),
        runs / "defaults_6_dec.log",
    )  # fmt: skip
    report["time_ratio_vs_dec_6"] = round(
        report["pipeline"]["total_wall_s"] / report["defaults_6_dec"]["total_wall_s"], 3
    )
    reference = reference_params(params)
    if reference == params:
        report["reference"] = {"same_as_pipeline": True}
    elif args.skip_round_13:
        report["reference"] = {"skipped": True}
    else:
        report["reference"] = run_pipeline(
            "reference", runs / "reference", reference, runs / "reference.log"
        )
    if not report["reference"].get("skipped"):
        report["time_ratio_vs_reference"] = round(
            report["pipeline"]["total_wall_s"] / reference_run(report)["total_wall_s"], 3
        )
    if not args.skip_baseline:
        naive = naive_params(params)
        report["naive"] = run_pipeline(
            "naive", runs / "naive", naive, runs / "naive.log", TRAINING_STAGES
        )
        baseline = baseline_params(params, args.baseline_epochs)
        report["baseline"] = run_pipeline(
            "baseline", runs / "baseline", baseline, runs / "baseline.log"
        )
        speed = {k: report[k]["train"]["train_reviews_per_second"] for k in report if k in
                 ("pipeline", "naive", "baseline")}  # fmt: skip
        report["throughput_ratio_vs_naive"] = round(speed["pipeline"] / speed["naive"], 2)
        report["throughput_ratio_vs_baseline"] = round(speed["pipeline"] / speed["baseline"], 2)
    report["reproduced"] = compare_with_committed(runs / "pipeline")
    report["targets"] = targets(report)
    write_report(report, markdown(report), args.out / "report")
    return 0


def write_report(report: dict, text: str, stem: Path) -> None:
    """``stem``.json (the figures) and ``stem``.md (the text), and the text on stdout."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
