import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.data import text
from imdb_sentiment.scoring import evaluation


def test_classification_metrics_on_known_values():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.8, 0.4])
    report = evaluation.classification_metrics(labels, probabilities, threshold=0.5)
    assert report["accuracy"] == 0.5 and report["precision"] == 0.5 and report["recall"] == 0.5
    assert report["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert report["roc_auc"] == 0.75 and report["count"] == 4
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4]))
    assert report["loss"] == pytest.approx(expected_loss, abs=1e-4)


def test_curves_are_thinned_but_keep_their_ends():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20_000)
    probabilities = np.clip(labels * 0.3 + rng.random(20_000) * 0.7, 0, 1)
    roc = evaluation.roc_points(labels, probabilities)
    pr = evaluation.precision_recall_points(labels, probabilities)
    assert len(roc) <= evaluation.CURVE_POINTS and len(pr) <= evaluation.CURVE_POINTS
    assert (roc.fpr.iloc[0], roc.tpr.iloc[0]) == (0, 0)
    assert (roc.fpr.iloc[-1], roc.tpr.iloc[-1]) == (1, 1)
    assert roc.threshold.max() <= 1.0 and pr.recall.iloc[0] == 1.0


def test_confusion_rows_one_per_review():
    rows = evaluation.confusion_rows(np.array([0, 1, 1]), np.array([0.7, 0.9, 0.1]), 0.5)
    assert rows.values.tolist() == [
        ["negative", "positive"],
        ["positive", "positive"],
        ["positive", "negative"],
    ]


def test_confident_errors_are_the_most_confident_wrong_ones():
    table = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "label": [0, 0, 1, 1],
            "rating": [1, 2, 9, 10],
            "movie": ["tt1"] * 4,
            "text": ["a", "b", "c", "d"],
        }
    )
    wrong = evaluation.confident_errors(table, np.array([0.99, 0.6, 0.9, 0.05]), 0.5, count=2)
    assert wrong["id"].tolist() == [1, 4]


def test_last_sentence_is_the_last_of_four_words_or_more():
    review = "Great start.<br /><br />The middle was long and slow. Loved it! Ten/10."
    assert evaluation.last_sentence(review) == "The middle was long and slow."
    assert evaluation.last_sentence("Too short. Really.") == "Really."
    assert evaluation.last_sentence("") == ""


def test_long_sentences_are_every_sentence_of_four_words_or_more_in_order():
    review = "Great start.<br /><br />The middle was long and slow. Loved it! Ten out of ten."
    assert evaluation.sentences(review) == [
        "Great start.", "The middle was long and slow.", "Loved it!", "Ten out of ten.",
    ]  # fmt: skip
    assert evaluation.long_sentences(review) == ["The middle was long and slow.", "Ten out of ten."]
    assert evaluation.long_sentences("Too short. Really.") == []
    assert evaluation.sentences("") == [] and evaluation.long_sentences("  ") == []


def test_first_words_drop_line_breaks():
    review = "One<br />two " + " ".join(f"w{i}" for i in range(30))
    assert evaluation.first_words(review) == "One two " + " ".join(f"w{i}" for i in range(18))
    assert evaluation.short_views([review, "a b. c d e f."]) == {
        "last_sentence": [evaluation.last_sentence(review), "c d e f."],
        "first_20_words": [evaluation.first_words(review), "a b. c d e f."],
    }


def test_each_view_is_encoded_in_order():
    encoder = text.TextEncoder(["good", "bad"], max_length=3)
    encoded = evaluation.encode_views({"a": ["good bad", "x"], "b": ["bad"]}, encoder)
    assert list(encoded) == ["a", "b"]
    np.testing.assert_array_equal(encoded["a"], [[0, 2, 3], [0, 0, 1]])
    np.testing.assert_array_equal(encoded["b"], [[0, 0, 3]])


def test_trimmed_views_keep_the_ids_in_rows_as_wide_as_the_longest_text():
    encoder = text.TextEncoder(["good", "bad"], max_length=6)
    views = {"a": ["good bad", "x"], "b": ["bad"], "c": [""], "d": ["good " * 9]}
    trimmed = evaluation.encode_views(views, encoder, trimmed=True)
    np.testing.assert_array_equal(trimmed["a"], [[2, 3], [0, 1]])
    np.testing.assert_array_equal(trimmed["b"], [[3]])
    np.testing.assert_array_equal(trimmed["c"], [[0]])
    np.testing.assert_array_equal(trimmed["d"], [[2] * 6])  # capped at max_length
    full = evaluation.encode_views(views, encoder)
    for name, rows in trimmed.items():
        np.testing.assert_array_equal(full[name][:, 6 - rows.shape[1] :], rows)
        assert not full[name][:, : 6 - rows.shape[1]].any()


def test_expected_calibration_error_by_hand():
    labels = np.array([1, 1, 0, 0, 1])
    # Confidences 0.9, 0.9 (bin 13), 0.6, 0.7 (bins 9 and 10), 0.55 (bin 8).
    probabilities = np.array([0.9, 0.9, 0.4, 0.7, 0.45])
    # Bin 13: accuracy 1, confidence 0.9; bin 9: 1 vs 0.6; bin 10: 0 vs 0.7; bin 8: 0 vs 0.55.
    expected = (2 * 0.1 + 1 * 0.4 + 1 * 0.7 + 1 * 0.55) / 5
    assert evaluation.expected_calibration_error(labels, probabilities) == round(expected, 4)
    table = evaluation.reliability_table(labels, probabilities)
    assert table["bin"].tolist() == [8, 9, 10, 13]
    assert table["count"].tolist() == [1, 1, 1, 2]
    assert table["accuracy"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_a_confidence_of_one_lands_in_the_last_bin_and_a_probability_on_the_threshold_is_positive():
    table = evaluation.reliability_table(np.array([1, 0]), np.array([1.0, 0.5]))
    assert table["bin"].tolist() == [7, 14]
    # p == threshold is positive: the negative review at 0.5 is wrong.
    assert table["accuracy"].tolist() == [0.0, 1.0]


def test_view_metrics_on_an_asymmetric_case():
    labels = np.array([1, 1, 1, 0])
    probabilities = np.array([0.8, 0.6, 0.3, 0.1])
    figures = evaluation.view_metrics(labels, probabilities, 0.5)
    assert figures["count"] == 4 and figures["accuracy"] == 0.75
    assert figures["mean_confidence"] == round((0.8 + 0.6 + 0.7 + 0.9) / 4, 4)


def test_accuracy_by_length_buckets_each_model():
    tokens = np.array([3, 10, 11, 20, 500, 401])
    labels = np.array([1, 0, 1, 1, 0, 0])
    scores = {"lstm": np.array([0.9, 0.9, 0.9, 0.1, 0.2, 0.2]), "linear": np.full(6, 0.6)}
    table = evaluation.accuracy_by_length(tokens, labels, scores, 0.5)
    lstm = table[table.model == "lstm"]
    assert lstm["tokens"].tolist() == ["1-10", "11-20", "401+"]
    assert lstm["accuracy"].tolist() == [0.5, 0.5, 1.0] and lstm["count"].tolist() == [2, 2, 2]
    linear = table[table.model == "linear"]
    assert linear["accuracy"].tolist() == [0.5, 1.0, 0.0]


def test_probe_results_mark_each_model():
    probes = pd.DataFrame(
        {"capability": ["negation", "one_word"], "text": ["Not bad.", "Awful."],
         "expected": ["positive", "negative"]}
    )  # fmt: skip
    results = evaluation.probe_results(
        probes, {"lstm": np.array([0.2, 0.123456]), "linear": np.array([0.7, 0.5])}, 0.5
    )
    assert results["lstm_passed"].tolist() == [False, True]
    assert results["linear_passed"].tolist() == [True, False]  # 0.5 is on the positive side
    assert results["lstm_probability"].tolist() == [0.2, 0.1235]  # four places


def test_the_probes_file_is_well_formed():
    probes = pd.read_csv(evaluation_root() / "data/probes.csv")
    assert list(probes.columns) == ["capability", "text", "expected"]
    assert set(probes["expected"]) == {"positive", "negative"}
    assert set(probes["capability"]) == {"negation", "contrast", "intensifier", "one_word"}
    assert probes["text"].str.strip().str.len().gt(0).all() and probes["text"].is_unique
    for capability, group in probes.groupby("capability"):
        assert group["expected"].nunique() == 2, f"{capability}: both labels, so no bias passes"


def evaluation_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_classification_metrics_on_an_asymmetric_confusion_matrix():
    # tp 3, fp 1, fn 2, tn 4: precision 3/4, recall 3/5, F1 2·3/(2·3 + 1 + 2) = 2/3.
    labels = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    probabilities = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.6, 0.4, 0.3, 0.2, 0.1])
    report = evaluation.classification_metrics(labels, probabilities, threshold=0.5)
    assert report["confusion"] == {"tn": 4, "fp": 1, "fn": 2, "tp": 3}
    assert report["precision"] == 0.75 and report["recall"] == 0.6
    assert report["f1"] == round(2 / 3, 4) and report["accuracy"] == 0.7


def test_a_probability_exactly_on_the_threshold_is_positive():
    labels = np.array([1, 0, 0])
    report = evaluation.classification_metrics(labels, np.array([0.7, 0.7, 0.2]), threshold=0.7)
    assert report["confusion"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 1}
    rows = evaluation.confusion_rows(labels, np.array([0.7, 0.69, 0.2]), 0.7)
    assert rows["predicted"].tolist() == ["positive", "negative", "negative"]


def _log_loss_by_hand(labels: np.ndarray, probabilities: np.ndarray) -> float:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))


def test_classification_metrics_exact_to_four_places_with_certain_mistakes():
    # 6 positives, 3 negatives; 0.5 sits on the threshold; 0.0 and 1.0 are wrong and certain,
    # so the loss depends on the clipping at 1e-7.
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0])
    probabilities = np.array([0.9, 0.5, 0.2, 0.0, 0.3, 0.4, 1.0, 0.1, 0.45])
    assert evaluation.classification_metrics(labels, probabilities, 0.5) == {
        "count": 9,
        "threshold": 0.5,
        "accuracy": 0.4444,  # 4 of 9
        "precision": 0.6667,  # 2 of 3 predicted positive
        "recall": 0.3333,  # 2 of 6
        "f1": 0.4444,
        "roc_auc": 0.3889,  # 7 of 18 (positive, negative) pairs in order
        "loss": round(_log_loss_by_hand(labels, probabilities), 4),
        "confusion": {"tn": 2, "fp": 1, "fn": 4, "tp": 2},
    }


def test_precision_with_nothing_predicted_positive_is_zero_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = evaluation.classification_metrics(
            np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3]), 0.5
        )
    assert report["precision"] == 0.0 and report["confusion"]["tp"] == 0


def test_long_curves_keep_exactly_curve_points_rows_rounded_to_five_places():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 5000)
    probabilities = rng.random(5000)
    roc = evaluation.roc_points(labels, probabilities)
    assert len(roc) == evaluation.CURVE_POINTS and list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert roc.index.equals(pd.RangeIndex(evaluation.CURVE_POINTS))
    assert roc.equals(roc.round(5)) and not roc.equals(roc.round(4))
    short = evaluation.precision_recall_points(labels[:50], probabilities[:50])
    assert list(short.columns) == ["recall", "precision", "threshold"]
    assert short.equals(short.round(5)) and not short.equals(short.round(4))


def test_confusion_rows_columns_are_named():
    rows = evaluation.confusion_rows(np.array([1, 0]), np.array([0.9, 0.9]), 0.5)
    assert list(rows.columns) == ["actual", "predicted"]


def test_confident_errors_include_the_threshold_and_break_ties_by_id():
    table = pd.DataFrame(
        {"id": [4, 3, 2, 1], "label": [0, 1, 0, 1], "rating": [1, 10, 2, 9],
         "movie": ["m"] * 4, "text": ["a", "b", "c", "d"]}
    )  # fmt: skip
    probabilities = np.array([0.5, 0.25, 0.75, 0.9123456])  # the last one is right
    errors = evaluation.confident_errors(table, probabilities, 0.5, count=10)
    assert errors["id"].tolist() == [2, 3, 4]  # 0.75 and 0.25 tie at 0.25: lower id first
    assert errors["probability_positive"].tolist() == [0.75, 0.25, 0.5]
    right = evaluation.confident_errors(table.assign(label=[0, 1, 0, 0]), probabilities, 0.5, 9)
    assert right["probability_positive"].tolist()[0] == 0.91235  # rounded to five places


def test_a_last_sentence_of_exactly_the_minimum_words_is_kept():
    assert evaluation.last_sentence("A long first sentence here. Four words right here.") == (
        "Four words right here."
    )


def test_expected_calibration_error_uses_its_bins_and_one_review():
    labels, probabilities = np.array([1, 1, 0]), np.array([0.9, 0.6, 0.7])
    # two bins of confidence: [0.5, 1) holds all three; accuracy 2/3, mean confidence 0.7333
    assert evaluation.expected_calibration_error(labels, probabilities, bins=2) == 0.0667
    # fifteen bins: 0.9 alone (right), 0.6 alone (right), 0.7 alone (wrong)
    by_hand = (abs(1 - 0.9) + abs(1 - 0.6) + abs(0 - 0.7)) / 3
    assert evaluation.expected_calibration_error(labels, probabilities) == round(by_hand, 4)
    assert evaluation.expected_calibration_error(np.array([1]), np.array([0.8])) == 0.2


def test_view_metrics_exact_with_a_probability_on_the_threshold():
    labels, probabilities = np.array([1, 1, 0]), np.array([0.5, 0.5, 0.1])
    assert evaluation.view_metrics(labels, probabilities, 0.5) == {
        "count": 3,
        "accuracy": 1.0,  # both 0.5s are positive
        "ece": 0.3667,  # the 0.5s: 2/3 x |1 - 0.5|; the 0.9: 1/3 x |1 - 0.9|
        "mean_confidence": 0.6333,
    }
    # at another threshold, 0.55 is a wrong negative, and the ECE counts it wrong too
    other = evaluation.view_metrics(np.array([1, 0]), np.array([0.55, 0.2]), 0.6)
    assert other["accuracy"] == 0.5 and other["ece"] == 0.375  # (0.55 + 0.2) / 2
    thirds = evaluation.view_metrics(np.array([1, 0, 0]), np.array([0.9, 0.2, 0.7]), 0.5)
    assert thirds["accuracy"] == 0.6667  # four places


def test_accuracy_by_length_to_four_places_with_the_threshold_positive():
    counts = np.array([5, 6, 7, 15])
    labels = np.array([1, 1, 0, 1])
    scores = {"lstm": np.array([0.5, 0.2, 0.1, 0.9])}
    table = evaluation.accuracy_by_length(counts, labels, scores, 0.5)
    assert table.to_dict("records") == [
        {"model": "lstm", "tokens": "1-10", "accuracy": 0.6667, "count": 3},
        {"model": "lstm", "tokens": "11-20", "accuracy": 1.0, "count": 1},
    ]
