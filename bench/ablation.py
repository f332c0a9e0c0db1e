"""Train variants of params.yaml and record validation accuracy and minutes (no test set).

    python bench/ablation.py --round round5     # bench/rounds/round5/ablations.yaml

Each round of the accuracy journal (docs/accuracy-journal.md) has a folder in bench/rounds/:
its variants (ablations.yaml), their results as recorded (ablation.jsonl) and the table made
from them (ablation.md). Without --round, the newest round runs. Each variant overrides keys of
params.yaml (the base params). Preprocessing runs once per distinct preprocess section (reading
data/raw from `dvc repro download`); every variant trains into bench/runs/ablation/. Results
are appended to the round's ablation.jsonl as they finish, and its ablation.md is rewritten
from all recorded rows.
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

ROUNDS_DIR = REPO_ROOT / "bench" / "rounds"


def _round_number(folder: Path) -> int:
    return int("".join(c for c in folder.name if c.isdigit()) or 0)


def round_folder(name: str | None = None) -> Path:
    """bench/rounds/<name>, or the newest round (highest number) without a name."""
    rounds = sorted(
        (p for p in ROUNDS_DIR.iterdir() if (p / "ablations.yaml").is_file()), key=_round_number
    )
    if name is None:
        return rounds[-1]
    folder = ROUNDS_DIR / name
    if not (folder / "ablations.yaml").is_file():
        known = [p.name for p in rounds]
        raise SystemExit(f"no {folder / 'ablations.yaml'}; rounds: {', '.join(known)}")
    return folder


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
    parser.add_argument("--round", help="a folder of bench/rounds (default: the newest)")
    parser.add_argument("--raw", type=Path, default=REPO_ROOT / "data/raw")
    parser.add_argument("--only", nargs="*", help="run only these variant names")
    args = parser.parse_args()
    folder = round_folder(args.round)
    variants = yaml.safe_load((folder / "ablations.yaml").read_text())
    scratch = REPO_ROOT / "bench/runs/ablation"
    scratch.mkdir(parents=True, exist_ok=True)
    results = folder / "ablation.jsonl"  # rows are appended; the .md table is written beside it
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
