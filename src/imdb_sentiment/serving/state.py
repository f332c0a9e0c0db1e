"""What a running server knows of its model: shared by the API's routes, the UI and tests
(``app.state.serving``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imdb_sentiment.serving.predict import Predictor

WORKER_STOPPED = "the prediction worker has stopped; the server needs a restart"


@dataclass
class ServingState:
    predictor: Predictor | None = None  # set once the model has loaded
    card: dict | None = None  # the model card, with the kernel that serves it
    error: str | None = None  # why the model could not be loaded, worded for clients
    batcher: Any = None  # the MicroBatcher, once the app has started with a model

    @property
    def started(self) -> bool:
        """A model is loaded and its batcher started (it may since have stopped)."""
        return self.predictor is not None and self.batcher is not None

    @property
    def serving(self) -> bool:
        """Requests can be scored now."""
        return self.batcher is not None and self.batcher.alive

    def unavailable_reason(self) -> str:
        """Why requests cannot be scored now, worded for clients."""
        if self.batcher is not None:
            return WORKER_STOPPED
        return self.error or "model is loading; retry when /ready says 200"
