"""Student-only ablations: teachers trained once, then one student per variant (validation only).

    python bench/student_ablation.py --round round17   # bench/rounds/round17/students.yaml

Reads data/prepared and data/linear_baseline (run `dvc repro linear_baseline` first). Each
variant sets keys of params.yaml's train section, and ``teachers`` (a seed list; default
teachers.seeds). A teacher's scores come from its stage's data/teachers/<seed>.npz where `dvc
repro` made it, else from bench/runs/teacher-<seed>.npz, else it is trained once (the teacher
section) into that cache. Each variant then trains only its student, as the train stage would.
Reported per variant, on the validation split only: accuracy and ECE on the whole reviews and
on their first and last 20 tokens, the fitted temperature and the student's minutes. Rows are
appended to the round's students.jsonl. (`dvc exp run -S train.<key>=...` does the same with
the pipeline's own figures, since the teachers are cached stages.)
"""

from __future__ import annotations

import argparse
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

from imdb_sentiment.data import dataset, text  # noqa: E402
from imdb_sentiment.params import load_stage_params  # noqa: E402
from imdb_sentiment.scoring import calibration, evaluation  # noqa: E402
from imdb_sentiment.scoring.inference import predict_probabilities, scorer  # noqa: E402
from imdb_sentiment.training import fitting  # noqa: E402
from stages import teacher, train  # noqa: E402

PREPARED = REPO_ROOT / "data/prepared"


def teacher_average(seeds: list[int], data: dict, words: int) -> np.ndarray:
    """The teachers' averaged P(positive) of the training reviews, each trained at most once."""
    teacher_params = load_stage_params(teacher.SECTION, teacher.Params, REPO_ROOT / "params.yaml")
    scores = []
    for seed in seeds:
        staged = teacher.scores_file(REPO_ROOT / "data/teachers", seed)
        cache = REPO_ROOT / f"bench/runs/teacher-{seed}.npz"
        if not staged.exists() and not cache.exists():
            taught = fitting.train_teacher(
                teacher_params, seed, data["train"], data["validation"], words
            )
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, train=taught.train, validation=taught.validation)
        with np.load(staged if staged.exists() else cache) as saved:
            scores.append(saved["train"])
    return fitting.average_teachers(scores)


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
    vocabularies = fitting.build_vocabularies(base, data["train"][0], encoder.vocab_size)
    for name, variant in variants.items():
        if args.only and name not in args.only:
            continue
        overrides = {k: v for k, v in variant.items() if k != "teachers"}
        params = type(base).model_validate({**base.model_dump(), **overrides})
        seeds = variant.get("teachers", train.teacher_seeds(REPO_ROOT / "params.yaml"))
        soft = teacher_average(seeds, data, encoder.vocab_size)
        started = time.perf_counter()
        targets = fitting.student_targets(params, soft, linear)
        window_seed = params.seed + fitting.WINDOW_SEED_OFFSET
        student_data = fitting.with_windows(params, (data["train"][0], targets), window_seed)
        student = fitting.train_member(
            params, "student", params.seed, vocabularies, student_data, data["validation"],
            soft_targets=True,
        ).model  # fmt: skip
        temperature = None
        if params.calibrate:
            temperature = calibration.fit_temperature(
                student, *fitting.calibration_set(*data["validation"])
            )
        row = {
            "variant": name,
            "overrides": variant,
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
