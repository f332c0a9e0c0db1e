"""Serving-test helpers: a stand-in Predictor that records batches and holds each until
released, and a reader of one sample of Prometheus' text format."""

from __future__ import annotations

import threading
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from imdb_sentiment.serving.predict import ModelFile, Prediction


class BlockingPredictor:
    kernel = "stub"
    source = ModelFile(Path("stub.keras"), "0" * 64, 0)

    def __init__(
        self,
        fail: BaseException | None = None,
        hold: bool = True,
        probabilities: dict[str, float] | None = None,
    ) -> None:
        """``probabilities``: P(positive) by review (0.9 for any other)."""
        self.batches: list[list[str]] = []
        self.probabilities = probabilities or {}
        self.started, self.release = threading.Event(), threading.Event()
        self.fail = fail
        if not hold:
            self.release.set()

    def warm_up(self, batch_sizes: object) -> None:
        pass

    def predict(self, reviews: list[str], threshold: float) -> list:
        self.batches.append(list(reviews))
        self.started.set()
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        return [self._prediction(review, threshold) for review in reviews]

    def _prediction(self, review: str, threshold: float) -> Prediction:
        positive = self.probabilities.get(review, 0.9)
        if positive >= threshold:
            return Prediction(review, "positive", positive, positive, 1)
        return Prediction(review, "negative", positive, 1 - positive, 1)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of Prometheus' text format (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0
