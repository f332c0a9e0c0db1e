"""Temperature scaling (Guo et al. 2017), folded into the model's own output layers.

A network trained on cross-entropy is often over- or under-confident; dividing its logits by
one temperature T, fitted on held-out reviews, fixes most of that without moving any
prediction across 0.5 (for one output; an average of several heads can move a little).
Here T is folded into every sigmoid output layer (kernel and bias divided by T), so the saved
model, the serving kernel, the API and the UI all show the calibrated probability, with no
extra layer and no extra code to load.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import log_loss

from imdb_sentiment.scoring.inference import predict_probabilities, scorer

TEMPERATURE_BOUNDS = (0.25, 4.0)  # a fitted T outside these says something else is wrong
SCORING_BATCH = 256


def output_heads(model: keras.Model) -> list[keras.layers.Dense]:
    """Every Dense layer with a sigmoid, in the model and the models nested in it."""
    heads = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            heads += output_heads(layer)
        elif isinstance(layer, keras.layers.Dense) and _is_sigmoid(layer):
            heads.append(layer)
    return heads


def _is_sigmoid(layer: keras.layers.Dense) -> bool:
    return layer.get_config()["activation"] == "sigmoid"


def fit_temperature(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """The T in :data:`TEMPERATURE_BOUNDS` that minimises the log loss of ``model`` on
    ``(x, y)``; the model is left with its logits divided by that T."""
    heads = output_heads(model)
    if not heads:
        raise ValueError(f"{model.name}: no sigmoid output layer to calibrate")
    original = [head.get_weights() for head in heads]

    def set_temperature(log_t: float) -> None:
        factor = np.float32(math.exp(-log_t))
        for head, weights in zip(heads, original, strict=True):
            head.set_weights([weight * factor for weight in weights])

    def loss(log_t: float) -> float:
        set_temperature(log_t)
        scores = predict_probabilities(scorer(model, x.shape[1]), x, SCORING_BATCH)
        return log_loss(y, np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7), labels=[0, 1])

    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    best = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-3})
    set_temperature(float(best.x))
    return round(math.exp(float(best.x)), 4)
