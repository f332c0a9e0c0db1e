"""Train variants of params.yaml and record validation accuracy and minutes (no test set).

    python bench/ablation.py --variants bench/ablations.yaml --results bench/ablation.jsonl

Each variant overrides keys of params.yaml (the base params). Preprocessing runs once per
distinct preprocess section (reading data/raw from `dvc repro download`); every variant trains into
bench/runs/ablation/. Results are appended to bench/ablation.jsonl as they finish, and
bench/ablation.md is rewritten from all recorded rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imdb_sentiment.params import load_stage_params  # noqa: E402
from stages import preprocess, train  # noqa: E402


def merged_params(overrides: dict) -> dict:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        params[section][key] = value
    return params


def prepared_for(params: dict, raw: Path, scratch: Path) -> Path:
    section = params["preprocess"]
    digest = hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()[:10]
    folder = scratch / f"prepared-{digest}"
    if not (folder / "train.npz").exists():
        print(f"preprocess {section} -> {folder}", flush=True)
        preprocess.run(preprocess.Params(**section), raw, folder, scratch / f"{digest}.json")
    return folder


def run_variant(name: str, overrides: dict, raw: Path, scratch: Path, params_file: Path) -> dict:
    import keras

    params = merged_params(overrides)
    params_file.write_text(yaml.safe_dump(params))
    train_params = load_stage_params("train", train.Params, params_file)  # validates overrides
    prepared = prepared_for(params, raw, scratch)
    out = scratch / name
    keras.backend.clear_session()
    started = time.perf_counter()
    train.run(train_params, prepared, out / "models", out / "train.json", out / "plots")
    summary = json.loads((out / "train.json").read_text())
    return {
        "variant": name,
        "overrides": overrides,
        "best_val_accuracy": summary["val_accuracy"],
        "best_val_loss": summary["val_loss"],
        "epochs_run": summary["epochs_run"],
        "best_epoch": ", ".join(str(m["best_epoch"]) for m in summary["members"].values()),
        "train_minutes": round(summary["train_seconds"] / 60, 2),
        "wall_minutes": round((time.perf_counter() - started) / 60, 2),
        "reviews_per_second": summary["train_reviews_per_second"],
    }


def write_table(rows: list[dict], path: Path) -> None:
    lines = [
        "| variant | changes to the base params | val acc | val loss | epochs (best) | train min |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        changes = ", ".join(f"`{k}={v}`" for k, v in row["overrides"].items()) or "(none)"
        lines.append(
            f"| {row['variant']} | {changes} | {row['best_val_accuracy']:.4f} "
            f"| {row['best_val_loss']:.4f} | {row['epochs_run']} ({row['best_epoch']}) "
            f"| {row['train_minutes']:.1f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=Path, default=REPO_ROOT / "bench/ablations.yaml")
    parser.add_argument("--raw", type=Path, default=REPO_ROOT / "data/raw")
    parser.add_argument("--only", nargs="*", help="run only these variant names")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO_ROOT / "bench/ablation.jsonl",
        help="rows are appended here; the markdown table is written beside it (.md)",
    )
    args = parser.parse_args()
    variants = yaml.safe_load(args.variants.read_text())
    scratch = REPO_ROOT / "bench/runs/ablation"
    scratch.mkdir(parents=True, exist_ok=True)
    results = args.results
    for name, overrides in variants.items():
        if args.only and name not in args.only:
            continue
        print(f"=== {name}: {overrides}", flush=True)
        row = run_variant(name, overrides or {}, args.raw, scratch, scratch / f"{name}.params.yaml")
        with open(results, "a") as stream:
            stream.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    write_table(rows, results.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
