"""Train variants of params.yaml and record validation accuracy and minutes (no test set).

    python bench/ablation.py --round round5     # bench/rounds/round5/ablations.yaml

Each round of the project history (docs/history.md) has a folder in bench/rounds/:
its variants (ablations.yaml), their results as recorded (ablation.jsonl) and the table made
from them (ablation.md). Without --round, the newest round runs. Each variant overrides keys of
params.yaml (the base params). Preprocessing runs once per distinct preprocess section (reading
data/raw from `dvc repro download`), each teacher and the linear baseline once per section and
prepared data; every variant's student trains into bench/runs/ablation/. Results
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
from stages import linear_baseline, preprocess, teacher, train  # noqa: E402

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


def digest(*sections: dict) -> str:
    return hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()[:10]


def prepared_for(params: dict, raw: Path, scratch: Path) -> Path:
    section = params["preprocess"]
    folder = scratch / f"prepared-{digest(section)}"
    if not (folder / "train.npz").exists():
        print(f"preprocess {section} -> {folder}", flush=True)
        preprocess.run(preprocess.Params(**section), raw, folder, folder.with_suffix(".json"))
    return folder


def teachers_for(params: dict, prepared: Path, scratch: Path, params_file: Path) -> Path:
    """A folder of the variant's teachers' scores, each teacher trained once per teacher
    section and prepared data, as the teacher stages would (cached across variants)."""
    folder = scratch / f"teachers-{digest(params['teacher'], str(prepared))}"
    section = load_stage_params(teacher.SECTION, teacher.Params, params_file)
    for seed in params["teachers"]["seeds"]:
        if not teacher.scores_file(folder, seed).exists():
            teacher.run(section, seed, prepared, folder, folder / "live")
    return folder


def linear_scores_for(params: dict, raw: Path, prepared: Path, scratch: Path) -> Path:
    """The linear baseline's out-of-fold scores for the variant's prepared data (fitted once)."""
    section = params["linear_baseline"]
    folder = scratch / f"linear-{digest(section, str(prepared))}"
    if not (folder / "out_of_fold.npz").exists():
        linear = linear_baseline.Params(**section)
        linear_baseline.run(linear, raw, prepared, folder, folder.with_suffix(".json"))
    return folder / "out_of_fold.npz"


def run_variant(name: str, overrides: dict, raw: Path, scratch: Path, params_file: Path) -> dict:
    import keras

    params = merged_params(overrides)
    params_file.write_text(yaml.safe_dump(params))
    train_params = load_stage_params("train", train.Params, params_file)  # validates overrides
    prepared = prepared_for(params, raw, scratch)
    out = scratch / name
    keras.backend.clear_session()
    started = time.perf_counter()
    teachers = teachers_for(params, prepared, scratch, params_file)
    linear_scores = linear_scores_for(params, raw, prepared, scratch)
    seeds = params["teachers"]["seeds"]
    train.run(
        train_params, seeds, prepared, out / "models", out / "train.json", out / "live",
        linear_scores, teachers,
    )  # fmt: skip
    summary = json.loads((out / "train.json").read_text())
    return {
        "variant": name,
        "overrides": overrides,
        "best_val_accuracy": summary["val_accuracy"],
        "best_val_loss": summary["val_loss"],
        "epochs_run": summary["epochs_run"],
        "best_epoch": summary["student"]["best_epoch"],
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
