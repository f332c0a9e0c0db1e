"""Time scoring with a trained classifier: the LSTM kernel against Keras, in one run.

    python bench/scoring.py --model models/classifier.keras --prepared data/prepared

Scores the whole test set in batches of 256 and 16 random test reviews (the median of
--repeats calls), on the kernel and on Keras' plain graph, and prints JSON with the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: bench as a package

from bench.benchmark import machine, median_seconds  # noqa: E402
from imdb_sentiment.network.model_file import load_model, saved_architecture  # noqa: E402
from imdb_sentiment.scoring.inference import (  # noqa: E402
    keras_scorer,
    predict_probabilities,
    select_scorer,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/classifier.keras"))
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--save-probabilities", type=Path, help="the kernel's, as .npy")
    args = parser.parse_args()
    model = load_model(args.model)
    with zipfile.ZipFile(args.model) as archive:
        path, kernel = select_scorer(model, 600, None, saved_architecture(archive))
    x = np.load(args.prepared / "test.npz")["x"]
    sixteen = x[np.random.default_rng(0).choice(len(x), 16, replace=False)]
    report = {"machine": machine(), "kernel_path": path}
    for name, score in (("kernel", kernel), ("keras", keras_scorer(model, x.shape[1]))):
        report[f"{name}_16_reviews_ms"] = 1000 * median_seconds(
            lambda s=score: predict_probabilities(s, sixteen, 256), args.repeats
        )
        start = time.perf_counter()
        probabilities = predict_probabilities(score, x, 256)
        report[f"{name}_test_set_s"] = time.perf_counter() - start
        if name == "kernel" and args.save_probabilities:
            np.save(args.save_probabilities, probabilities)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
