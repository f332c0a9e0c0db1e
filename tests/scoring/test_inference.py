import numpy as np

from imdb_sentiment.scoring import inference, lstm_kernel
from imdb_sentiment.training import model


def test_predict_probabilities_keeps_row_order():
    classifier = model.build_classifier(30, 4, 4, 1, False, 0.0)
    x = np.array([[0, 0, 0, 7], [3, 4, 5, 6], [0, 0, 8, 9]], np.int32)
    expected = classifier(x).numpy().reshape(-1)
    assert np.allclose(
        inference.predict_probabilities(inference.scorer(classifier, 4), x, batch_size=2),
        expected,
        atol=1e-6,
    )


def test_scorer_pads_to_buckets_without_changing_scores():
    classifier = model.build_classifier(30, 4, 4, 1, True, 0.0, "mean_max")
    x = np.array([[0, 0, 0, 7], [3, 4, 5, 6], [0, 0, 8, 9]], np.int32)
    expected = classifier(x).numpy().reshape(-1)
    for xla_max_rows in (0, 16):  # the plain graph, then XLA at bucketed shapes
        score = inference.keras_scorer(classifier, 4, xla_max_rows)
        assert np.allclose(score(x), expected, atol=1e-5)
        assert np.allclose(score(x[:1]), expected[:1], atol=1e-5)


def test_scorer_uses_the_kernel_for_one_lstm_layer_and_keras_otherwise():
    x = np.array([[0, 0, 0, 7], [3, 4, 5, 6], [0, 0, 8, 9]], np.int32)
    for bidirectional, runs_kernel in ((False, True), (True, False)):
        classifier = model.build_classifier(30, 4, 4, 1, bidirectional, 0.0, "mean_max")
        score = inference.scorer(classifier, 4)
        assert (score.__module__ == lstm_kernel.__name__) is runs_kernel
        assert np.allclose(score(x), classifier(x).numpy().reshape(-1), atol=1e-5)


def test_length_buckets_are_fine_when_short_coarse_when_long_and_end_at_max_length():
    assert inference.length_buckets(400) == [64, 128, 192, 256, 384, 400]
    assert inference.length_buckets(1000) == [64, 128, 192, 256, 384, 512, 768, 1000]
    assert inference.length_buckets(512) == [64, 128, 192, 256, 384, 512]
    assert inference.length_buckets(24) == [24]
