"""Round 24 (validation only): what the served network's linear branch is fitted on, and how
large it is, with the LSTM held fixed.

    python bench/linear_views.py > bench/rounds/round24/linear_views.md

(the fitting logs go to stderr, the table to stdout)

Reads a project after `dvc repro` (data/raw, data/prepared and models/classifier.keras). The
LSTM student of the served network stays as trained; each variant refits the linear branch
and the blend as the train stage does (``fitting.fit_linear_model``, ``add_linear_branch``),
on the training reviews and their two short views (round 23) plus, as the variant says,
sentences of at least four words of each training review (every one, the last k or k random
ones; each with its review's label, alike or one review's sentences weighing a total), with
another regression strength, with pair and triple vocabularies of its own, or with the
sentences in a second linear branch that the blend weighs apart. Scored on the 1,250
validation reviews and their two short views: accuracy / ECE.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the train stage sets it

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.blend_forms import VIEWS, print_validation_table, validation_views  # noqa: E402
from imdb_sentiment.data import dataset, text  # noqa: E402
from imdb_sentiment.network.branches import STUDENT_LAYER, linear_logit  # noqa: E402
from imdb_sentiment.network.layers import blend_features  # noqa: E402
from imdb_sentiment.network.model_file import load_model  # noqa: E402
from imdb_sentiment.params import load_stage_params  # noqa: E402
from imdb_sentiment.scoring.inference import keras_scorer, predict_probabilities  # noqa: E402
from imdb_sentiment.training import fitting, linear_branch  # noqa: E402
from stages import train  # noqa: E402


class Variant(NamedTuple):
    sentences: str | None = None  # None | "every" | "last k" | "random k"
    total: float | None = None  # one review's sentences weigh this in all (None: 1 each)
    c: float = 0.1
    pairs: int = 0  # the branch's own pairs (0: the LSTM's)
    triples: int = 50_000
    second_branch: bool = False  # the sentences in a branch of their own


BIG = {"pairs": 200_000, "triples": 200_000}
VARIANTS = {
    "round 23 (reviews and their two short views)": Variant(),
    "C 0.3": Variant(c=0.3),
    "200,000 pairs of its own and 200,000 triples": Variant(**BIG),
    "and every sentence": Variant("every"),
    "and every sentence, C 0.3": Variant("every", c=0.3),
    "and every sentence, 200,000 pairs and triples": Variant("every", **BIG),
    "and every sentence, 200,000 pairs and triples, C 0.03": Variant("every", c=0.03, **BIG),
    "and every sentence, 500,000 pairs and triples": Variant(
        "every", pairs=500_000, triples=500_000
    ),
    "and the last 3 sentences, 200,000 pairs and triples": Variant("last 3", **BIG),
    "and 3 random sentences, 200,000 pairs and triples": Variant("random 3", **BIG),
    **{
        f"and every sentence, a review's weighing {total:g} in all, 200,000 pairs and triples": (
            Variant("every", total, **BIG)
        )
        for total in (0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
    },
    "and every sentence, a review's weighing 2 in all (adopted: params.yaml)": Variant(
        "every", 2.0, **BIG
    ),
    "and every sentence, a review's weighing 2 in all, the LSTM's 50,000 pairs": Variant(
        "every", 2.0
    ),
    "every sentence in a second linear branch, both in the blend": Variant(
        "every", second_branch=True, **BIG
    ),
}


def picked(parts: list[str], pick: str, rng: np.random.Generator) -> list[int]:
    """Which of a review's sentences ``pick`` takes: every one, the last k or k random ones."""
    if pick == "every":
        return list(range(len(parts)))
    how, k = pick.split()
    if how == "last":
        return list(range(len(parts)))[-int(k) :]
    return sorted(rng.permutation(len(parts))[: int(k)].tolist())


def sentence_sets(variants: dict, project: Path) -> dict:
    """pick -> (sentence rows of preprocess' train_sentences, each one's review index)."""
    ids, _, y = dataset.load_arrays(project / "data/prepared", "train")
    sentence_ids, x, sentence_y = dataset.load_arrays(
        project / "data/prepared", dataset.SENTENCES_SPLIT
    )
    review = train.sentence_reviews(ids, y, sentence_ids, sentence_y)
    first = np.searchsorted(review, np.arange(len(ids)))  # sentences are in review order
    counts = np.bincount(review, minlength=len(ids))
    sets = {}
    for pick in {v.sentences for v in variants.values()} - {None}:
        rng = np.random.default_rng(0)
        rows = [
            first[r] + i
            for r, count in enumerate(counts)
            for i in picked(list(range(count)), pick, rng)
        ]
        sets[pick] = (x[rows], sentence_y[rows], review[rows])
        print(f"{pick}: {len(rows)} sentences of >= 4 words in {len(ids)} training reviews")
    return sets


def scored_variants() -> tuple[dict, np.ndarray]:
    params = load_stage_params(train.SECTION, train.Params, REPO_ROOT / "params.yaml")
    prepared = REPO_ROOT / "data/prepared"
    encoder = text.load_encoder(prepared / "encoder.json")
    x, y = dataset.load_arrays(prepared, "train")[1:]
    validation = dataset.load_arrays(prepared, "validation")[1:]
    _, encoded, y_val = validation_views(REPO_ROOT)
    views = dataset.load_arrays(prepared, dataset.SHORT_VIEWS_SPLIT)[1]  # the raw texts unread
    base = fitting.with_short_views(
        params.model_copy(update={"linear_branch_short_views": True}), (x, y), views
    )
    sets = sentence_sets(VARIANTS, REPO_ROOT)
    student = load_model(REPO_ROOT / "models/classifier.keras").get_layer(STUDENT_LAYER)
    vocabularies = fitting.build_vocabularies(params, x, encoder.vocab_size)
    rows = {}
    for name, variant in VARIANTS.items():
        started = time.perf_counter()
        update = {"linear_branch_C": variant.c, "linear_branch_pairs": variant.pairs,
                  "linear_branch_triples": variant.triples}  # fmt: skip
        chosen = params.model_copy(update=update)
        sentences = None
        if variant.sentences:
            sentence_x, sentence_y, review = sets[variant.sentences]
            weights = np.ones(len(review), np.float32)
            if variant.total is not None:
                weights = fitting.sentence_weights(variant.total, review)
            sentences = fitting.Sentences(sentence_x, sentence_y, weights)
        if variant.second_branch:
            first, second = (
                fitting.add_linear_branch(
                    student, fitting.fit_linear_model(chosen, fit_on, vocabularies), validation,
                    vocabularies,
                )[0]
                for fit_on in (base, (sentences.x, sentences.labels))
            )  # fmt: skip
            rows[name] = two_branch_blend(first, second, validation, encoded)
        else:
            fitted = fitting.fit_linear_model(chosen, base, vocabularies, sentences)
            network, _ = fitting.add_linear_branch(student, fitted, validation, vocabularies)
            rows[name] = {v: _scores(network, encoded[v]) for v in VIEWS}
        print(f"{name}: {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    return rows, y_val


def _scores(model, ids: np.ndarray) -> np.ndarray:
    return predict_probabilities(keras_scorer(model, ids.shape[1]), ids, 256).reshape(-1)


def two_branch_blend(first, second, validation: tuple, encoded: dict) -> dict:
    """The length-aware blend with the second branch's logit and logit x length as two more
    features, fitted as the train stage fits its blend (on the validation reviews and their
    first and last 20 tokens)."""

    def features(ids: np.ndarray) -> np.ndarray:
        lstm = _scores(first.get_layer(STUDENT_LAYER), ids)[:, None]
        one, two = (
            np.asarray(blend_features(lstm, _scores(linear_logit(m), ids)[:, None], ids))
            for m in (first, second)
        )
        return np.c_[one, two[:, [1, 3]]]

    calibration_x, calibration_y = fitting.calibration_set(*validation)
    regression = LogisticRegression(C=linear_branch.BLEND_C, max_iter=1000)
    regression.fit(features(calibration_x), calibration_y)
    return {v: regression.predict_proba(features(encoded[v]))[:, 1] for v in VIEWS}


def main() -> int:
    return print_validation_table(scored_variants)


if __name__ == "__main__":
    sys.exit(main())
