"""Rounds 18-21: which linear model to put beside the LSTM, and how to blend the two
(validation only).

    python bench/blend_forms.py --project /path/to/a/repro > bench/rounds/round18/blends.md
    python bench/blend_forms.py --project /path/to/a/repro --triples 50000 200000
    python bench/blend_forms.py --project /path/to/a/repro --triples 50000 --windows 1 3
    python bench/blend_forms.py --project /path/to/a/repro --triples 50000 --tfidf

Reads a project after `dvc repro` (data/raw, data/prepared, data/linear_baseline/model.pkl and
models/classifier.keras; with a linear branch, only its LSTM network is used). On the 1,250
validation reviews and their two short views (last sentence, first 20 words, as evaluate
defines them on the test set) it scores: the LSTM; the linear baseline stage's model (words of
the cleaned text); the same NB-weighted regression over the network's own ids (its words and
the N most frequent pairs of its ids, for several N; with ``--triples T ...``, also the first
N's pairs and the T most frequent triples, round 19; with ``--windows W ...``, that with the
first T also fitted on W random windows of each training review, round 20; with ``--tfidf``,
those bags weighted as the TF-IDF text model weighs words, round 21); and blends of the LSTM
with the latter:
a plain average of logits, and logistic regressions on [both logits] or on
:func:`~imdb_sentiment.network.layers.blend_features` (length-aware), each fitted on 4/5 of the
validation reviews with their short views and scored on the other fifth (5 folds by review).
Prints a markdown table: accuracy / ECE on each view.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imdb_sentiment.data import archive, dataset, ngrams, text  # noqa: E402
from imdb_sentiment.network.branches import STUDENT_LAYER, has_linear_branch  # noqa: E402
from imdb_sentiment.network.layers import blend_features  # noqa: E402
from imdb_sentiment.network.model_file import load_model  # noqa: E402
from imdb_sentiment.scoring import evaluation  # noqa: E402
from imdb_sentiment.scoring.inference import predict_probabilities, scorer  # noqa: E402
from imdb_sentiment.training import linear, linear_branch  # noqa: E402

VIEWS = ("full", "last_sentence", "first_20_words")
PAIR_VOCABULARIES = (50_000, 200_000, 1_000_000)
FOLDS = 5
# The served network's linear branch (train.linear_branch_triples, adopted in round 19).
ADOPTED = f"NB LR over ids, {PAIR_VOCABULARIES[0]:,} pairs + 50,000 triples"
WINDOW_TOKENS = (5, 40)
WINDOW_SEED = 0
TABLE_TITLE = "Accuracy / ECE (15 bins) on the 1,250 validation reviews and their short views."


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def validation_views(
    project: Path,
) -> tuple[dict[str, list[str]], dict[str, np.ndarray], np.ndarray]:
    """The validation texts and their encoded ids by view, and the labels."""
    ids, x, y = dataset.load_arrays(project / "data/prepared", "validation")
    table = archive.read_table(project / "data/raw", "train")
    reviews = list(archive.texts_of(table, ids, y, project / "data/raw/train.csv"))
    texts = {"full": reviews, **evaluation.short_views(reviews)}
    encoder = text.load_encoder(project / "data/prepared/encoder.json")
    encoded = {"full": x, **{v: encoder.encode(texts[v]) for v in VIEWS[1:]}}
    return texts, encoded, y


def id_regressions(
    project: Path,
    encoded: dict[str, np.ndarray],
    words: int,
    triples: tuple[int, ...] = (),
    windows: tuple[int, ...] = (),
    tfidf: bool = False,
) -> dict[str, dict]:
    """P(positive) by view of the NB-weighted regression over word ids and N pair ids, and
    over word ids, the first N's pairs and T triples of ids for each T in ``triples``; for
    each W in ``windows``, the latter with the first T, fitted on the training reviews and W
    random windows of each (with its review's label); with ``tfidf``, the bags of the first T
    weighted as the TF-IDF text model weighs words (idf, L2 norm, C 8) instead."""
    _, x_train, y_train = dataset.load_arrays(project / "data/prepared", "train")
    pair_layers = {
        size: ngrams.WordNgrams(ngrams.build_ngram_vocabulary(x_train, words, size, 2), words)
        for size in PAIR_VOCABULARIES
    }
    scored = {
        f"NB LR over ids, {size:,} pairs": _regression(
            [None, pairs], words, (x_train, y_train), encoded
        )
        for size, pairs in pair_layers.items()
    }
    triple_bags = {size: _with_triples(x_train, words, pair_layers, size) for size in triples}
    for size, bags in triple_bags.items():
        name = f"NB LR over ids, {PAIR_VOCABULARIES[0]:,} pairs + {size:,} triples"
        scored[name] = _regression(bags, words, (x_train, y_train), encoded)
    first = f"{PAIR_VOCABULARIES[0]:,} pairs + {triples[0]:,} triples" if triples else ""
    for copies in windows:
        name = f"NB LR over ids, {first}, and {copies} window(s) of each review"
        train = with_windows(x_train, y_train, copies)
        scored[name] = _regression(triple_bags[triples[0]], words, train, encoded)
    if tfidf:
        name = f"TF-IDF LR over ids, {first}"
        train = (x_train, y_train)
        scored[name] = _regression(triple_bags[triples[0]], words, train, encoded, tfidf_head)
    return scored


def _with_triples(x_train: np.ndarray, words: int, pair_layers: dict, size: int) -> list:
    """The bags of word ids, the first pair vocabulary's ids and ``size`` triples' ids."""
    kept = ngrams.build_ngram_vocabulary(x_train, words, size, 3)
    return [None, pair_layers[PAIR_VOCABULARIES[0]], ngrams.WordNgrams(kept, words, 3)]


def tfidf_head() -> Pipeline:
    """Binary ids weighted by idf and L2-normalised per text, then a logistic regression: the
    TF-IDF text model's weighting (``linear.tfidf_model``), whose logit does not grow with
    the text's length."""
    return make_pipeline(
        TfidfTransformer(norm="l2"), LogisticRegression(C=8.0, solver="liblinear", max_iter=1000)
    )


def with_windows(x: np.ndarray, y: np.ndarray, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """The reviews and ``copies`` random windows of each, as the student's windows are cut
    (train.window_min_tokens..window_max_tokens at their defaults), with the review's label."""
    rng = np.random.default_rng(WINDOW_SEED)
    extra = [dataset.random_windows(x, *WINDOW_TOKENS, rng) for _ in range(copies)]
    return np.concatenate([x, *extra]), np.tile(y, 1 + copies)


def _regression(
    bags: list,
    words: int,
    train: tuple[np.ndarray, np.ndarray],
    encoded: dict[str, np.ndarray],
    make_head: Callable[[], Pipeline] = lambda: linear.nb_head(0.1, 1.0),
) -> dict[str, np.ndarray]:
    """Fit the regression (NB-weighted unless ``make_head`` says otherwise) on the bags' ids
    of the training reviews; score views."""
    views = [None if bag is None else bag.traced() for bag in bags]
    rows = [words if bag is None else bag.vocab_size for bag in bags]
    head = make_head().fit(linear_branch.id_features(train[0], views, rows), train[1])
    return {
        view: head.predict_proba(linear_branch.id_features(ids, views, rows))[:, 1]
        for view, ids in encoded.items()
    }


def cross_fitted(features: dict[str, np.ndarray], y: np.ndarray) -> dict[str, np.ndarray]:
    """A logistic regression on all views' rows, fitted per fold of reviews, scoring the
    held-out reviews' rows of every view."""
    stacked = np.concatenate([features[v] for v in VIEWS])
    review = np.tile(np.arange(len(y)), len(VIEWS))
    scores = np.empty(len(stacked))
    for fitted_on, _ in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(y, y):
        seen = np.isin(review, fitted_on)
        regression = LogisticRegression(C=linear_branch.BLEND_C, max_iter=1000)
        regression.fit(stacked[seen], np.tile(y, len(VIEWS))[seen])
        scores[~seen] = regression.predict_proba(stacked[~seen])[:, 1]
    return dict(zip(VIEWS, np.split(scores, len(VIEWS)), strict=True))


def blends(lstm: dict, ids_model: dict, encoded: dict, y: np.ndarray) -> dict[str, dict]:
    rows = {}
    for weight in (0.4, 0.5, 0.6):
        rows[f"average of logits, linear weight {weight}"] = {
            v: 1 / (1 + np.exp(-((1 - weight) * logit(lstm[v]) + weight * logit(ids_model[v]))))
            for v in VIEWS
        }
    pair = {v: np.c_[logit(lstm[v]), logit(ids_model[v])] for v in VIEWS}
    rows["logistic regression on both logits"] = cross_fitted(pair, y)
    rows["length-aware blend (round 18)"] = length_aware_blend(lstm, ids_model, encoded, y)
    return rows


def length_aware_blend(
    lstm: dict, ids_model: dict, encoded: dict, y: np.ndarray, second: dict | None = None
) -> dict:
    """The blend of the LSTM and ``ids_model`` on ``blend_features``; with ``second``, that
    model's logit and its length term as two more features (round 21)."""
    features = {}
    for v in VIEWS:
        features[v] = blend_features(lstm[v][:, None], logit(ids_model[v])[:, None], encoded[v])
        if second is not None:
            more = blend_features(lstm[v][:, None], logit(second[v])[:, None], encoded[v])
            features[v] = np.c_[features[v], more.numpy()[:, [1, 3]]]  # logit, logit x length
    return cross_fitted({v: np.asarray(f) for v, f in features.items()}, y)


def table(rows: dict[str, dict], y: np.ndarray) -> str:
    lines = ["| model | full | last sentence | first 20 words |", "|---|---|---|---|"]
    for name, scores in rows.items():
        cells = [
            f"{np.mean((scores[v] >= 0.5) == y):.4f} / "
            f"{evaluation.expected_calibration_error(y, scores[v], 0.5):.3f}"
            for v in VIEWS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def print_validation_table(score_rows: Callable[[], tuple[dict, np.ndarray]]) -> int:
    """Run ``score_rows`` (its training logs to stderr, not into the table) and print the
    table of the rows it returns, with the labels it returns."""
    with contextlib.redirect_stdout(sys.stderr):
        rows, y = score_rows()
    print(TABLE_TITLE + "\n")
    print(table(rows, y), end="")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=REPO_ROOT)
    parser.add_argument(
        "--triples", type=int, nargs="*", default=[], help="also a bag of this many id triples"
    )
    parser.add_argument(
        "--windows",
        type=int,
        nargs="*",
        default=[],
        help="also the first triples' regression fitted on this many windows of each review",
    )
    parser.add_argument(
        "--tfidf",
        action="store_true",
        help="also the first triples' bags weighted by idf and L2-normalised (round 21)",
    )
    args = parser.parse_args()
    if (args.windows or args.tfidf) and not args.triples:
        parser.error("--windows and --tfidf need --triples (the triples of their regression)")
    project = args.project
    texts, encoded, y = validation_views(project)
    network = load_model(project / "models/classifier.keras")
    student = network.get_layer(STUDENT_LAYER) if has_linear_branch(network) else network
    score = scorer(student, encoded["full"].shape[1])
    rows = {"the LSTM (student)": {v: predict_probabilities(score, encoded[v], 256) for v in VIEWS}}
    baseline = linear.LinearModel.load(project / "data/linear_baseline/model.pkl")
    rows["linear_baseline stage (words of the text)"] = {
        v: baseline.probabilities(texts[v]) for v in VIEWS
    }
    words = text.load_encoder(project / "data/prepared/encoder.json").vocab_size
    regressions = id_regressions(
        project, encoded, words, tuple(args.triples), tuple(args.windows), args.tfidf
    )
    rows.update(regressions)
    lstm = rows["the LSTM (student)"]
    rows.update(
        blends(lstm, regressions[f"NB LR over ids, {PAIR_VOCABULARIES[0]:,} pairs"], encoded, y)
    )
    for name, scores in regressions.items():
        if "triples" in name:
            mark = " (adopted)" if name == ADOPTED else ""
            label = f"length-aware blend with the {name}{mark}"
            rows[label] = length_aware_blend(lstm, scores, encoded, y)
    if args.tfidf:
        bags = f"LR over ids, {PAIR_VOCABULARIES[0]:,} pairs + {args.triples[0]:,} triples"
        nb, tfidf = regressions[f"NB {bags}"], regressions[f"TF-IDF {bags}"]
        label = "length-aware blend with both (NB-weighted and TF-IDF-weighted ids)"
        rows[label] = length_aware_blend(lstm, nb, encoded, y, second=tfidf)
    print(TABLE_TITLE + "\n")
    print(table(rows, y), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
