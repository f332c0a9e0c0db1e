import keras
import numpy as np
import pytest

from imdb_sentiment.scoring import calibration
from imdb_sentiment.training.model import build_classifier


def tiny_classifier() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_classifier(20, 4, 3, 1, False, 0.0, pooling="mean_max", lstm_kernel="keras")


def logits_of(model: keras.Model, x: np.ndarray) -> np.ndarray:
    p = model.predict_on_batch(x).reshape(-1).astype(np.float64)
    return np.log(p / (1 - p))


def test_output_heads_are_the_sigmoid_dense_layers_nested_too():
    words = tiny_classifier()
    ids = keras.Input(shape=(None,), dtype="int32")
    outer = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(words(ids)[:, :1]))
    assert calibration.output_heads(words) == [words.layers[-1]]
    assert calibration.output_heads(outer) == [words.layers[-1], outer.layers[-1]]


def test_fit_temperature_recovers_an_over_confident_model():
    # Labels drawn from the model's own probabilities are perfectly calibrated at T = 1; the
    # same model with every logit tripled is over-confident, and T = 3 undoes it.
    rng = np.random.default_rng(1)
    model = tiny_classifier()
    x = rng.integers(2, 20, (4000, 9)).astype(np.int32)
    kernel, bias = model.layers[-1].get_weights()
    spread = np.std(logits_of(model, x) - bias[0])
    model.layers[-1].set_weights([kernel * (2.0 / spread), np.zeros_like(bias)])
    truth = 1 / (1 + np.exp(-logits_of(model, x)))
    assert truth.std() > 0.1  # a spread of confidences to fit on
    y = (rng.random(len(x)) < truth).astype(np.int8)
    model.layers[-1].set_weights([w * 3.0 for w in model.layers[-1].get_weights()])  # x3 logits
    temperature = calibration.fit_temperature(model, x, y)
    assert temperature == pytest.approx(3.0, rel=0.15)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-logits_of(model, x))), truth, atol=0.1 * truth.std() + 0.02
    )


def test_a_model_without_a_sigmoid_output_is_refused():
    ids = keras.Input(shape=(3,))
    model = keras.Model(ids, keras.layers.Dense(1)(ids), name="linear_out")
    with pytest.raises(ValueError, match="linear_out: no sigmoid output layer"):
        calibration.fit_temperature(model, np.zeros((2, 3)), np.array([0, 1]))


def best_temperature_by_grid(logits: np.ndarray, y: np.ndarray) -> float:
    """The log-loss-minimising T found independently: float64, a fine grid of log T."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 20001))
    scaled = logits[None, :] / grid[:, None]
    # log loss of sigmoid(s): log(1 + e^-s) for positives, log(1 + e^s) for negatives
    losses = np.mean(np.logaddexp(0, np.where(y == 1, -scaled, scaled)), axis=1)
    return float(grid[np.argmin(losses)])


@pytest.mark.parametrize("stretch", [0.5, 2.5])  # under- and over-confident
def test_the_fitted_temperature_is_the_log_loss_minimum_and_divides_the_head(stretch):
    rng = np.random.default_rng(2)
    model = tiny_classifier()
    x = rng.integers(2, 20, (3000, 9)).astype(np.int32)
    kernel, bias = model.layers[-1].get_weights()
    spread = np.std(logits_of(model, x) - bias[0])
    model.layers[-1].set_weights([kernel * (1.5 / spread), bias + 0.3])  # off-centre
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logits_of(model, x)))).astype(np.int8)
    model.layers[-1].set_weights([w * stretch for w in model.layers[-1].get_weights()])
    before = [w.copy() for w in model.layers[-1].get_weights()]
    expected = best_temperature_by_grid(logits_of(model, x), y)
    assert (expected < 1) == (stretch < 1)
    temperature = calibration.fit_temperature(model, x, y)
    assert temperature == pytest.approx(expected, rel=2e-3)  # the optimiser's xatol in log T
    for after, original in zip(model.layers[-1].get_weights(), before, strict=True):
        np.testing.assert_allclose(after, original / temperature, rtol=2e-4)
