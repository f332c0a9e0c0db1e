"""Student-only ablations: teachers trained once, then one student per variant (validation only).

    python bench/student_ablation.py --round round17   # bench/rounds/round17/students.yaml

Reads data/prepared and data/linear_baseline (run `dvc repro linear_baseline` first). The
teachers of params.yaml's train section are trained once, each one's P(positive) of the
training reviews cached in bench/runs/teacher-<seed>.npz; each variant (keys of the train
section) then trains only its student, as the train stage would. Reported per variant, on the
validation split only: accuracy and ECE on the whole reviews and on their first and last 20
tokens, the fitted temperature and the student's minutes. Rows are appended to the round's
students.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import numpy as np  # noqa: E402
import yaml  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imdb_sentiment import calibration, dataset, evaluation, text, training  # noqa: E402
from imdb_sentiment.inference import predict_probabilities, scorer  # noqa: E402
from imdb_sentiment.params import load_stage_params  # noqa: E402
from stages import train  # noqa: E402

PREPARED = REPO_ROOT / "data/prepared"


def teacher_scores(params: train.Params, data: dict, vocabularies) -> np.ndarray:
    """The teachers' averaged P(positive) of the training reviews; each teacher's scores are
    cached by seed (bench/runs/teacher-<seed>.npz), so a smaller ensemble reuses them."""
    x = data["train"][0]
    scores = []
    for number in range(1, params.ensemble_size + 1):
        cache = REPO_ROOT / f"bench/runs/teacher-{params.seed + number - 1}.npz"
        if not cache.exists():
            member = training.train_member(
                params, number, vocabularies, data["train"], data["validation"]
            ).model
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, soft=predict_probabilities(scorer(member, x.shape[1]), x, 256))
            del member
            training.release_training_memory()
        scores.append(np.load(cache)["soft"])
    return np.mean(scores, axis=0).astype(np.float32)


def validation_figures(model, x_val: np.ndarray, y_val: np.ndarray) -> dict:
    views = {
        "full": x_val,
        "first_20": dataset.edge_windows(x_val, 20, "first"),
        "last_20": dataset.edge_windows(x_val, 20, "last"),
    }
    score = scorer(model, x_val.shape[1])
    figures = {}
    for name, x in views.items():
        p = predict_probabilities(score, x, 256)
        figures[name] = evaluation.view_metrics(y_val, p, 0.5)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round", default="round17")
    parser.add_argument("--only", nargs="*", help="run these variants only (default: all)")
    args = parser.parse_args()
    folder = REPO_ROOT / "bench/rounds" / args.round
    variants = yaml.safe_load((folder / "students.yaml").read_text())
    base = load_stage_params("train", train.Params, REPO_ROOT / "params.yaml")
    encoder = text.load_encoder(PREPARED / "encoder.json")
    data = {s: dataset.load_arrays(PREPARED, s)[1:] for s in ("train", "validation")}
    linear = np.load(REPO_ROOT / "data/linear_baseline/out_of_fold.npz")["train"]
    vocabularies = training.build_vocabularies(base, data["train"][0], encoder.vocab_size)
    for name, overrides in variants.items():
        if args.only and name not in args.only:
            continue
        params = dataclasses.replace(base, **overrides)
        soft = teacher_scores(params, data, vocabularies)
        started = time.perf_counter()
        targets = training.student_targets(params, soft, linear)
        number = params.ensemble_size + 1
        student_data = training.with_windows(
            params, (data["train"][0], targets), params.seed + number
        )
        student = training.train_member(
            params, number, vocabularies, student_data, data["validation"]
        ).model
        temperature = None
        if params.calibrate:
            temperature = calibration.fit_temperature(
                student, *training.calibration_set(*data["validation"])
            )
        row = {
            "variant": name,
            "overrides": overrides,
            "minutes": round((time.perf_counter() - started) / 60, 2),
            "temperature": temperature,
            **validation_figures(student, *data["validation"]),
        }
        print(json.dumps(row), flush=True)
        with open(folder / "students.jsonl", "a") as log:
            log.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
