"""After round 24 (validation only): what the blend is fitted on. The served network's blend is
fitted on the validation reviews and their first and last 20 tokens; the linear branch alone
beats the blended network on the test reviews' last sentences (0.7832 against 0.7772), which
suggests fitting it on sentences instead.

    python bench/blend_rows.py > bench/rounds/round24/blend_rows.md

Reads a project after `dvc repro` (models/classifier.keras: its LSTM and linear branch as
trained). Each blend (``blend_features``, as served) is fitted on 4/5 of the 1,250 validation
reviews (5 folds by review) and scores the other fifth's reviews and their two short views, so
no row is scored by a blend that saw it: fitted on the reviews and their first and last 20
tokens (the train stage's rows), or on the reviews, their last sentence and first 20 words
(evaluate's views), or on all five.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.blend_forms import FOLDS, VIEWS, print_validation_table, validation_views  # noqa: E402
from imdb_sentiment.data import dataset  # noqa: E402
from imdb_sentiment.network.branches import STUDENT_LAYER, linear_logit  # noqa: E402
from imdb_sentiment.network.layers import blend_features  # noqa: E402
from imdb_sentiment.network.model_file import load_model  # noqa: E402
from imdb_sentiment.scoring.inference import keras_scorer, predict_probabilities  # noqa: E402
from imdb_sentiment.training import fitting, linear_branch  # noqa: E402

EDGES = ("first_20_tokens", "last_20_tokens")  # the train stage's short rows
FITTED_ON = {
    "the reviews and their first and last 20 tokens (the train stage's rows)": ("full", *EDGES),
    "the reviews, their last sentence and first 20 words (evaluate's views)": VIEWS,
    "all five": (*VIEWS, *EDGES),
}


def features_by_rows(network, encoded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The blend's features of each kind of row, from the network's two branches."""
    student, logit = network.get_layer(STUDENT_LAYER), linear_logit(network)

    def scores(model, ids: np.ndarray) -> np.ndarray:
        return predict_probabilities(keras_scorer(model, ids.shape[1]), ids, 256).reshape(-1, 1)

    return {
        rows: np.asarray(blend_features(scores(student, ids), scores(logit, ids), ids))
        for rows, ids in encoded.items()
    }


def cross_fitted_on(features: dict, y: np.ndarray, fitted_on: tuple) -> dict[str, np.ndarray]:
    """Each view's P(positive) from a blend fitted on ``fitted_on``'s rows of the other folds."""
    scored = {view: np.empty(len(y)) for view in VIEWS}
    for train_reviews, held_out in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(y, y):
        regression = LogisticRegression(C=linear_branch.BLEND_C, max_iter=1000).fit(
            np.concatenate([features[rows][train_reviews] for rows in fitted_on]),
            np.tile(y[train_reviews], len(fitted_on)),
        )
        for view in VIEWS:
            scored[view][held_out] = regression.predict_proba(features[view][held_out])[:, 1]
    return scored


def scored_blends() -> tuple[dict, np.ndarray]:
    _, encoded, y = validation_views(REPO_ROOT)
    x_val = dataset.load_arrays(REPO_ROOT / "data/prepared", "validation")[1]
    for rows, where in zip(EDGES, ("first", "last"), strict=True):
        encoded[rows] = dataset.edge_windows(x_val, fitting.CALIBRATION_WINDOW, where)
    features = features_by_rows(load_model(REPO_ROOT / "models/classifier.keras"), encoded)
    return {
        f"blend fitted on {n}": cross_fitted_on(features, y, r) for n, r in FITTED_ON.items()
    }, y


def main() -> int:
    return print_validation_table(scored_blends)


if __name__ == "__main__":
    sys.exit(main())
