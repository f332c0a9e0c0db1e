"""Round 23 (validation only): the served network also learns each training review's own
short views (its last sentence and its first 20 words, as evaluate cuts the test reviews).

    python bench/short_views.py > bench/rounds/round23/short_views.md

(the training logs go to stderr, the table to stdout)

Reads a project after `dvc repro` (data/raw, data/prepared, data/teachers, data/linear_baseline
and models/classifier.keras, the served network of params.yaml: the base row). Each variant
trains the whole served network as the train stage does (student, temperature, linear branch
and blend), with the two short views of every training review added, each with its review's
target (the student's soft target; the label for the linear branch), to what the student
learns, what the linear branch is fitted on, or both. Scored on the 1,250 validation reviews
and their two short views: accuracy / ECE. The linear models of issue 32's table, fitted on the
same reviews with and without their short views, are scored beside them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.blend_forms import VIEWS, print_validation_table, validation_views  # noqa: E402
from imdb_sentiment.data import archive, dataset, text  # noqa: E402
from imdb_sentiment.network.model_file import load_model  # noqa: E402
from imdb_sentiment.params import load_stage_params  # noqa: E402
from imdb_sentiment.scoring import evaluation  # noqa: E402
from imdb_sentiment.scoring.inference import predict_probabilities, scorer  # noqa: E402
from imdb_sentiment.training import fitting, linear  # noqa: E402
from stages import linear_baseline, train  # noqa: E402

VARIANTS = {  # name -> (the student learns the views, the linear branch does, window copies)
    "the linear branch learns the views": (False, True, 1),
    "the student and the linear branch learn the views": (True, True, 1),
    "both learn the views, no random windows": (True, True, 0),
}


def training_views(project: Path) -> tuple[list, np.ndarray]:
    """The training reviews' texts and their short views' ids (preprocess'
    ``train_short_views``: view after view, each in the training split's order)."""
    ids, _, y = dataset.load_arrays(project / "data/prepared", "train")
    table_ = archive.read_table(project / "data/raw", "train")
    texts = list(archive.texts_of(table_, ids, y, project / "data/raw/train.csv"))
    return texts, dataset.load_arrays(project / "data/prepared", dataset.SHORT_VIEWS_SPLIT)[1]


@contextlib.contextmanager
def learning_views(student: bool, linear_branch: bool, views: np.ndarray, copies: int):
    """fitting.train_student with the views added to the student's data and the linear
    branch's, as chosen (each with its review's target or label)."""
    with_windows, fit_linear_model = fitting.with_windows, fitting.fit_linear_model

    def student_data(params, train_split, seed):
        x, y = with_windows(params, train_split, seed)
        if not student:
            return x, y
        copies_of_targets = np.tile(train_split[1], len(views) // len(train_split[1]))
        return np.concatenate([x, views]), np.concatenate([y, copies_of_targets])

    def branch(params, train_split, vocabularies, sentences=None):
        x, labels = train_split
        if linear_branch:
            train_split = (np.concatenate([x, views]), np.tile(labels, 1 + len(views) // len(x)))
        return fit_linear_model(params, train_split, vocabularies, sentences)

    fitting.with_windows, fitting.fit_linear_model = student_data, branch
    try:
        yield
    finally:
        fitting.with_windows, fitting.fit_linear_model = with_windows, fit_linear_model


def main() -> int:
    return print_validation_table(scored_variants)


def scored_variants() -> tuple[dict, np.ndarray]:
    """Each variant's P(positive) of the validation views, and the labels."""
    tf.config.experimental.enable_op_determinism()
    params = load_stage_params(train.SECTION, train.Params, REPO_ROOT / "params.yaml")
    prepared = REPO_ROOT / "data/prepared"
    encoder = text.load_encoder(prepared / "encoder.json")
    data = {s: dataset.load_arrays(prepared, s)[1:] for s in ("train", "validation")}
    validation_texts, encoded, y = validation_views(REPO_ROOT)
    texts, views = training_views(REPO_ROOT)
    x = data["train"][0]
    seeds = train.teacher_seeds(REPO_ROOT / "params.yaml")
    teachers = train.load_teachers(REPO_ROOT / "data/teachers", seeds, len(x))
    linear_scores = train.load_linear_scores(
        params, REPO_ROOT / "data/linear_baseline/out_of_fold.npz"
    )

    def scores(model) -> dict:
        score = scorer(model, encoded["full"].shape[1])
        return {v: predict_probabilities(score, encoded[v], 256).reshape(-1) for v in VIEWS}

    rows = linear_rows(texts, data["train"][1], validation_texts, encoder.cleaning)
    rows["served network, params.yaml (models/classifier.keras)"] = scores(
        load_model(REPO_ROOT / "models/classifier.keras")
    )
    for name, (student, linear_branch, copies) in VARIANTS.items():
        started = time.perf_counter()
        # The views are added here (learning_views), as round 23 ran before the train
        # stage could (train.linear_branch_short_views, off for these variants).
        # The linear branch as round 23 found it (its own 50,000 triples, the LSTM's pairs).
        update = {"window_copies": copies, "linear_branch_short_views": False,
                  "linear_branch_pairs": 0, "linear_branch_triples": 50_000,
                  "linear_branch_sentences": 0.0}  # fmt: skip
        variant = params.model_copy(update=update)
        with learning_views(student, linear_branch, views, copies):
            network = fitting.train_student(
                variant, data["train"], data["validation"], encoder.vocab_size, None, teachers,
                linear_scores,
            ).classifier  # fmt: skip
        rows[f"served network, {name}"] = scores(network)
        print(f"{name}: {(time.perf_counter() - started) / 60:.1f} min")
    return rows, y


def linear_rows(texts: list, labels: np.ndarray, validation: dict, cleaning: dict) -> dict:
    """Issue 32's two linear models, fitted on the training reviews alone and with their
    short views: their P(positive) of each validation view."""
    base = load_stage_params(
        linear_baseline.SECTION, linear_baseline.Params, REPO_ROOT / "params.yaml"
    )
    views = evaluation.short_views(texts)
    plain = linear.clean_texts(texts, cleaning)
    more = plain + linear.clean_texts([t for v in views.values() for t in v], cleaning)
    rows = {}
    for suffix, cleaned in (("", plain), (", and the reviews' short views", more)):
        fit_on = np.tile(labels, len(cleaned) // len(labels))
        tfidf = linear.LinearModel(linear.tfidf_model().fit(cleaned, fit_on), cleaning)
        nb_pipeline = Pipeline([("counts", linear.ngram_counts(base.ngram_max)),
                                ("head", linear.nb_head(base.C, base.nb_alpha))])  # fmt: skip
        nb = linear.LinearModel(nb_pipeline.fit(cleaned, fit_on), cleaning)
        rows[f"TF-IDF LR{suffix}"] = {v: tfidf.probabilities(validation[v]) for v in VIEWS}
        rows[f"NB-weighted LR (linear_baseline){suffix}"] = {
            v: nb.probabilities(validation[v]) for v in VIEWS
        }
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
