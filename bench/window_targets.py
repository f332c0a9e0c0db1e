"""Round 22 (validation only): the student's random windows scored by the teachers, not
given their review's target.

    python bench/window_targets.py > bench/rounds/round22/window_targets.md

(the training logs go to stderr, the table to stdout)

Reads a project after `dvc repro` (data/prepared, data/raw, data/linear_baseline and
models/classifier.keras, the served network of params.yaml: the base row). The teachers of
``teachers.seeds`` are trained again (the largest gap between their scores and their stages'
saved ones is printed), and score the windows that the train stage draws for the student.
Each variant then trains the whole served network as the train stage does (student,
temperature, linear branch and blend), its windows' targets being:

- ``teachers``: the teachers' average P(positive) of the window itself;
- ``half``: the mean of that and the review's target (the teachers' and the linear baseline's
  scores of the whole review, as now);

with ``train.window_copies`` 1 or 2; and a larger student with the review targets (128 LSTM
units, as in round 2). Scored on the 1,250 validation reviews and their two short
views (last sentence, first 20 words, as evaluate defines them): accuracy / ECE.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.blend_forms import VIEWS, print_validation_table, validation_views  # noqa: E402
from imdb_sentiment.data import dataset, text  # noqa: E402
from imdb_sentiment.network.model_file import load_model  # noqa: E402
from imdb_sentiment.params import load_stage_params  # noqa: E402
from imdb_sentiment.scoring.inference import predict_probabilities, scorer  # noqa: E402
from imdb_sentiment.training import fitting  # noqa: E402
from stages import teacher, train  # noqa: E402

VARIANTS = {  # name -> (window copies, share of the teachers' window score in its target, more)
    "teachers score the window, 1 copy": (1, 1.0, {}),
    "half teachers' window score, half review target, 1 copy": (1, 0.5, {}),
    "teachers score the window, 2 copies": (2, 1.0, {}),
    "review targets, a larger student (128 LSTM units)": (1, 0.0, {"lstm_units": 128}),
}


def windows_of(params: fitting.StudentParams, x: np.ndarray, copies: int) -> list[np.ndarray]:
    """The windows the train stage draws for the student (fitting.with_windows' draws)."""
    rng = np.random.default_rng(params.seed + fitting.WINDOW_SEED_OFFSET)
    return [
        dataset.random_windows(x, params.window_min_tokens, params.window_max_tokens, rng)
        for _ in range(copies)
    ]


def teachers_window_scores(data: dict, words: int, windows: list[np.ndarray]) -> np.ndarray:
    """The teachers' average P(positive) of every window, each teacher trained again."""
    teacher_params = load_stage_params(teacher.SECTION, teacher.Params, REPO_ROOT / "params.yaml")
    per_teacher = []
    for seed in train.teacher_seeds(REPO_ROOT / "params.yaml"):
        taught = fitting.train_teacher(
            teacher_params, seed, data["train"], data["validation"], words
        )
        with np.load(teacher.scores_file(REPO_ROOT / "data/teachers", seed)) as saved:
            gap = float(np.max(np.abs(saved["train"] - taught.train)))
        print(f"teacher {seed}: largest gap to its stage's scores {gap:.2e}", file=sys.stderr)
        score = scorer(taught.member.model, windows[0].shape[1])
        per_teacher.append(
            np.concatenate([predict_probabilities(score, w, 256).reshape(-1) for w in windows])
        )
    return fitting.average_teachers(per_teacher)


def served_network(params, data: dict, words: int, soft: tuple, windows, window_targets):
    """The served network trained as the train stage does (``soft``: the teachers' average
    and the linear scores of the training reviews), with these windows and their targets."""
    x = data["train"][0]
    targets = fitting.student_targets(params, *soft)
    chosen = (np.concatenate([x, *windows]), np.concatenate([targets, window_targets]))
    original = fitting.with_windows
    fitting.with_windows = lambda *_: chosen
    try:
        return fitting.train_student(
            params, data["train"], data["validation"], words, None, *soft
        ).classifier
    finally:
        fitting.with_windows = original


def main() -> int:
    return print_validation_table(scored_variants)


def scored_variants() -> tuple[dict, np.ndarray]:
    """Each variant's P(positive) of the validation views, and the labels."""
    tf.config.experimental.enable_op_determinism()
    params = load_stage_params(train.SECTION, train.Params, REPO_ROOT / "params.yaml")
    prepared = REPO_ROOT / "data/prepared"
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    data = {s: dataset.load_arrays(prepared, s)[1:] for s in ("train", "validation")}
    _, encoded, y = validation_views(REPO_ROOT)
    x = data["train"][0]
    windows = windows_of(params, x, max(c for c, _, _ in VARIANTS.values()))
    window_scores = teachers_window_scores(data, words, windows)
    teachers_average = train.load_teachers(
        REPO_ROOT / "data/teachers", train.teacher_seeds(REPO_ROOT / "params.yaml"), len(x)
    )
    linear = train.load_linear_scores(params, REPO_ROOT / "data/linear_baseline/out_of_fold.npz")
    targets = fitting.student_targets(params, teachers_average, linear)
    soft = (teachers_average, linear)

    def scores(model) -> dict:
        score = scorer(model, encoded["full"].shape[1])
        return {v: predict_probabilities(score, encoded[v], 256).reshape(-1) for v in VIEWS}

    rows = {"review targets (params.yaml, models/classifier.keras)": scores(
        load_model(REPO_ROOT / "models/classifier.keras")
    )}  # fmt: skip
    for name, (copies, share, more) in VARIANTS.items():
        started = time.perf_counter()
        own = window_scores[: copies * len(x)]
        window_targets = (share * own + (1 - share) * np.tile(targets, copies)).astype(np.float32)
        # As round 22 ran: before round 23, the linear branch learned no short views.
        update = {"window_copies": copies, "linear_branch_short_views": False, **more}
        variant = params.model_copy(update=update)
        model = served_network(variant, data, words, soft, windows[:copies], window_targets)
        rows[name] = scores(model)
        print(f"{name}: {(time.perf_counter() - started) / 60:.1f} min")
    return rows, y


if __name__ == "__main__":
    raise SystemExit(main())
