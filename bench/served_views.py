"""Round 25 (validation only): the served network of one or more trained projects on the
1,250 validation reviews and their two short views, scored as evaluate scores the test set
(through models/end_to_end.keras, raw text in), and never on the test set.

    python bench/served_views.py "round 24=../r24" "round 25=." \
        > bench/rounds/round25/served_views.md

Each ``NAME=PROJECT`` is a copy of this repository after `dvc repro train` with the params of
that row (round 25: `dvc exp run train -S ...` in a clone per row; the commands are in
docs/history.md). All of them must hold the same validation split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.blend_forms import VIEWS, print_validation_table, validation_views  # noqa: E402
from imdb_sentiment.serving.predict import Predictor  # noqa: E402


def served_scores(project: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """P(positive) of the project's served network by view, and the validation labels."""
    texts, _, labels = validation_views(project)
    predictor = Predictor.load(project / "models/end_to_end.keras")
    return {view: predictor.probabilities(texts[view]) for view in VIEWS}, labels


def projects_of(pairs: list[str]) -> dict[str, Path]:
    """``NAME=PROJECT`` arguments as {name: folder}."""
    projects = {}
    for pair in pairs:
        name, separator, folder = pair.partition("=")
        if not separator or not name or not folder:
            raise SystemExit(f"served_views: {pair!r} is not NAME=PROJECT")
        projects[name] = Path(folder)
    return projects


def score_projects(projects: dict[str, Path]) -> tuple[dict[str, dict], np.ndarray]:
    """Each project's row, checked to share the validation labels."""
    rows, labels = {}, None
    for name, project in projects.items():
        rows[name], these = served_scores(project)
        if labels is not None and not np.array_equal(labels, these):
            raise SystemExit(f"served_views: {project} holds another validation split")
        labels = these
    return rows, labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("projects", nargs="+", help="NAME=PROJECT, one per row")
    projects = projects_of(parser.parse_args().projects)
    return print_validation_table(lambda: score_projects(projects))


if __name__ == "__main__":
    sys.exit(main())
