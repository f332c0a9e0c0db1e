"""The training orchestration (imdb_sentiment.training.fitting): teachers, the student and what it
learns from, on the tiny pipeline's prepared data."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment.data import dataset, ngrams, text
from imdb_sentiment.network import model_file
from imdb_sentiment.network.model_file import load_model
from imdb_sentiment.params import ParamsError
from imdb_sentiment.training import batches, fitting
from stages import train
from tests.networks import views_of
from tests.stages.test_train import train_briefly, train_params

PLAIN_STUDENT = {
    "linear_teacher_weight": 0.0, "window_copies": 0, "calibrate": False, "linear_branch": False,
}  # fmt: skip


@pytest.fixture
def data_seen(monkeypatch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The (reviews, targets) that each classifier trained next is given, by its name."""
    seen = {}
    train_member = fitting.train_member

    def recording(params, name, seed, vocabularies, data, validation, *args, **kwargs):
        member = train_member(params, name, seed, vocabularies, data, validation, *args, **kwargs)
        seen[name] = data
        return member

    monkeypatch.setattr(fitting, "train_member", recording)
    return seen


def test_one_student_is_saved_as_a_plain_classifier(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path)
    classifier = load_model(tmp_path / "models/classifier.keras")
    assert classifier.name == "lstm_classifier"
    assert [m["member"] for m in model_file.network_description(classifier)["members"]] == [None]
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["epochs_run"] == summary["student"]["epochs_run"] == 1


def test_without_teachers_the_student_learns_the_labels(pipeline_run, tmp_path, data_seen):
    train_briefly(pipeline_run, tmp_path, **PLAIN_STUDENT)
    _, _, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    assert np.array_equal(data_seen["student"][1], y)
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["val_accuracy"] == summary["student"]["best_val_accuracy"]


def test_the_student_learns_the_teachers_probabilities(pipeline_run, tmp_path, data_seen):
    train_briefly(pipeline_run, tmp_path, seeds=[42, 43], **PLAIN_STUDENT)
    soft = data_seen["student"][1]
    _, _, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    assert soft.shape == y.shape and not np.isin(soft, (0.0, 1.0)).all()
    each = [np.load(pipeline_run / f"data/teachers/{seed}.npz")["train"] for seed in (42, 43)]
    np.testing.assert_array_equal(soft, fitting.average_teachers(each))
    # "accuracy" against soft targets is agreement with the teachers, not a 0/1 comparison.
    accuracy = pd.read_csv(tmp_path / "live/plots/metrics/train/accuracy.tsv", sep="\t")
    assert accuracy.accuracy.iloc[0] > 0.3


def test_a_teachers_scores_are_its_own_models_probabilities(pipeline_run):
    values = {**train_params(pipeline_run), "max_epochs": 1, "pair_vocab_size": 0}
    network = fitting.NetworkParams.model_fields
    params = fitting.NetworkParams(**{name: values[name] for name in network})
    train_split, validation, words = prepared_splits(pipeline_run)
    taught = fitting.train_teacher(params, 7, train_split, validation, words)
    assert taught.member.name == "teacher_7" and taught.member.seed == 7
    for scores, (x, _) in ((taught.train, train_split), (taught.validation, validation)):
        expected = taught.member.model.predict_on_batch(x).reshape(-1)
        np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_average_teachers_sums_in_float32_in_order():
    first = np.array([0.1, 0.7], np.float32)
    second = np.array([0.4, 0.2], np.float64)
    averaged = fitting.average_teachers([first, second])
    assert averaged.dtype == np.float32
    np.testing.assert_array_equal(averaged, (first + second.astype(np.float32)) / 2)
    np.testing.assert_array_equal(fitting.average_teachers([first]), first)


def test_pair_vocab_size_adds_a_pairs_branch_and_zero_keeps_words_only(pipeline_run, tmp_path):
    values = train_params(pipeline_run)
    assert values["pair_vocab_size"] > 0  # the default: the tiny run trained a two-view model
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    words = text.load_encoder(pipeline_run / "data/prepared/encoder.json").vocab_size
    saved = load_model(pipeline_run / "models/classifier.keras")
    saved_pairs = views_of(saved)[1][0]
    kept = ngrams.build_ngram_vocabulary(x, words, values["pair_vocab_size"], 2)
    assert np.array_equal(saved_pairs.vocabulary, kept) and len(kept) > 10

    train_briefly(pipeline_run, tmp_path, pair_vocab_size=0, triple_vocab_size=0)
    words_only = load_model(tmp_path / "models/classifier.keras")
    assert views_of(words_only) is None
    assert not any(isinstance(layer, ngrams.WordNgrams) for layer in words_only.layers)


def test_triple_vocab_size_adds_a_triples_branch(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path, pair_vocab_size=60, triple_vocab_size=40)
    saved = load_model(tmp_path / "models/classifier.keras")
    views = views_of(saved)
    assert [branch.name for _, branch in views] == ["words", "pairs", "triples"]
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    words = text.load_encoder(pipeline_run / "data/prepared/encoder.json").vocab_size
    triples = views[2][0]
    assert triples.n == 3 and triples.vocab_size == 40
    assert np.array_equal(triples.vocabulary, ngrams.build_ngram_vocabulary(x, words, 40, 3))
    end_to_end = load_model(tmp_path / "models/end_to_end.keras")
    assert sum(isinstance(layer, ngrams.WordNgrams) for layer in end_to_end.layers[-1].layers) == 2


@pytest.mark.parametrize("key", ["pair_vocab_size", "triple_vocab_size"])
@pytest.mark.parametrize("size", [1, 2])
def test_ngram_vocab_size_too_small_for_one_ngram_is_refused(pipeline_run, tmp_path, size, key):
    with pytest.raises(ParamsError, match=f"train.{key} = {size} is out of range"):
        train_briefly(pipeline_run, tmp_path, **{key: size})
    assert not (tmp_path / "models").exists()


def history(loss_name: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "epoch": [1, 2],
            "accuracy": [0.8, 0.9],
            loss_name: [1.1, 0.4],
            "val_accuracy": [0.85, 0.86],
            f"val_{loss_name}": [0.9, 0.8],
        }
    )


def test_summaries_name_the_loss_they_report():
    two_view = fitting.TrainedMember("student", 44, None, history("multi_view_loss"), 2)
    one_view = fitting.TrainedMember("student", 44, None, history("loss"), 1)
    result = fitting.TrainingResult(None, two_view, {"accuracy": 0.9, "loss": 0.25}, 2.0)
    summary = fitting.summary(result, reviews=10)
    assert summary["student"]["best_val_multi_view_loss"] == 0.8
    assert summary["val_loss"] == 0.25  # the saved model's cross-entropy
    assert summary["train_reviews_per_second"] == 10.0  # 10 reviews, 2 epochs, 2 s
    one = fitting.summary(
        fitting.TrainingResult(None, one_view, {"accuracy": 0.9, "loss": 0.3}, 2.0), 10
    )
    assert one["student"]["best_val_loss"] == 0.9
    assert fitting.member_summary(one_view, 3.21)["train_seconds"] == 3.2


def prepared_splits(pipeline_run) -> tuple[tuple, tuple, int]:
    """The tiny pipeline's (train, validation) arrays and its word vocabulary size."""
    prepared = pipeline_run / "data/prepared"
    _, x_train, y_train = dataset.load_arrays(prepared, "train")
    _, x_val, y_val = dataset.load_arrays(prepared, "validation")
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    return (x_train, y_train), (x_val, y_val), words


def test_the_kept_weights_are_the_best_epochs_when_validation_gets_worse(pipeline_run):
    # Validation labels flipped: the better the model learns, the worse its validation loss.
    values = {**train_params(pipeline_run), **PLAIN_STUDENT}  # the kept weights, as they are
    values.update(pair_vocab_size=0, max_epochs=4, early_stopping_patience=2, learning_rate=0.05)
    params = train.Params(**values)
    (x_train, y_train), (x_val, y_val), words = prepared_splits(pipeline_run)
    result = fitting.train_student(params, (x_train, y_train), (x_val, 1 - y_val), words)
    member = result.student
    history = member.history
    assert member.best_epoch < len(history)  # it trained past the best epoch...
    assert history.val_loss.iloc[member.best_epoch - 1] == history.val_loss.min()
    kept = history.iloc[member.best_epoch - 1]
    last = history.iloc[-1]
    assert kept.val_loss < last.val_loss
    # ...and what it kept scores the flipped validation set as the best epoch did, not the last
    assert result.validation["accuracy"] == pytest.approx(kept.val_accuracy, abs=1e-4)
    assert result.validation["loss"] == pytest.approx(kept.val_loss, abs=1e-3)


@pytest.mark.parametrize(("schedule", "expected"), [("constant", 0), ("linear", 3 * 10)])
def test_a_linear_schedule_decays_over_the_classifiers_epoch_limit(schedule, expected):
    params = argparse.Namespace(learning_rate_schedule=schedule, max_epochs=3)
    assert fitting.decay_steps(params, steps_per_epoch=10) == expected


def test_a_linear_schedule_trains_its_last_step_at_the_smallest_rate(pipeline_run, tmp_path):
    # Patience above max_epochs: the member runs all its steps, and the rate falls to 0.
    values = {**train_params(pipeline_run), **PLAIN_STUDENT}
    values.update(max_epochs=2, pair_vocab_size=0, early_stopping_patience=5)
    values.update(learning_rate_schedule="linear")
    prepared = pipeline_run / "data/prepared"
    _, x, y = dataset.load_arrays(prepared, "train")
    _, x_val, y_val = dataset.load_arrays(prepared, "validation")
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    params = train.Params(**values)
    member = fitting.train_member(
        params, "student", params.seed, fitting.Vocabularies(words, {}), (x, y), (x_val, y_val)
    )
    optimizer = member.model.optimizer
    steps = 2 * len(batches.BucketedBatches(x, y, params.batch_size, params.seed))
    assert int(optimizer.iterations) == steps
    assert float(optimizer.learning_rate) == pytest.approx(0.0)
    assert float(optimizer._get_current_learning_rate()) == pytest.approx(0.0)


def test_the_student_learns_the_blend_of_teachers_and_linear_baseline_on_reviews_and_windows(
    pipeline_run, tmp_path, data_seen
):
    train_briefly(pipeline_run, tmp_path / "plain", seeds=[42, 43], **PLAIN_STUDENT)
    teachers = data_seen["student"][1]  # the teachers' average alone
    blend = {"linear_teacher_weight": 0.25, "window_copies": 2, "calibrate": False}
    train_briefly(pipeline_run, tmp_path / "blend", seeds=[42, 43], **blend)
    x, targets = data_seen["student"]

    linear = np.load(pipeline_run / "data/linear_baseline/out_of_fold.npz")["train"]
    _, x_train, _ = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    reviews = len(x_train)
    assert len(x) == 3 * reviews and np.array_equal(x[:reviews], x_train)
    np.testing.assert_allclose(targets[:reviews], 0.75 * teachers + 0.25 * linear, rtol=1e-5)
    # Each window carries its review's target.
    np.testing.assert_array_equal(targets[reviews:], np.concatenate([targets[:reviews]] * 2))
    window_lengths = dataset.token_counts(x[reviews:])
    assert (window_lengths <= 40).all() and (window_lengths >= 1).all()


def test_student_targets_blend_by_hand_and_refuse_missing_scores():
    params = argparse.Namespace(linear_teacher_weight=0.3)
    teachers, linear = np.array([0.9, 0.2], np.float32), np.array([0.5, 0.6], np.float32)
    blended = fitting.student_targets(params, teachers, linear)
    np.testing.assert_allclose(blended, [0.78, 0.32], rtol=1e-6)
    assert blended.dtype == np.float32
    with pytest.raises(ValueError, match="linear_teacher_weight = 0.3 needs .* all 2 training"):
        fitting.student_targets(params, teachers, linear[:1])
    zero = argparse.Namespace(linear_teacher_weight=0.0)
    assert fitting.student_targets(zero, teachers, None) is teachers


def test_calibration_set_adds_the_first_and_last_words(pipeline_run):
    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "validation")
    x_cal, y_cal = fitting.calibration_set(x, y)
    assert len(x_cal) == 3 * len(x) and np.array_equal(y_cal, np.concatenate([y] * 3))
    assert np.array_equal(x_cal[len(x) : 2 * len(x)], dataset.edge_windows(x, 20, "first"))
    assert np.array_equal(x_cal[2 * len(x) :], dataset.edge_windows(x, 20, "last"))


def test_calibrating_records_the_temperature_and_changes_confidence_only(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path / "raw", calibrate=False)
    train_briefly(pipeline_run, tmp_path / "cal", calibrate=True)
    summary = json.loads((tmp_path / "cal/t.json").read_text())
    assert 0.25 <= summary["temperature"] <= 4.0
    assert json.loads((tmp_path / "raw/t.json").read_text())["temperature"] is None
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "test")
    raw = load_model(tmp_path / "raw/models/classifier.keras").predict_on_batch(x).reshape(-1)
    cal = load_model(tmp_path / "cal/models/classifier.keras").predict_on_batch(x).reshape(-1)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(cal), logit(raw) / summary["temperature"], atol=2e-3)


def test_an_empty_window_range_is_refused():
    params = argparse.Namespace(window_min_tokens=9, window_max_tokens=8)
    with pytest.raises(ParamsError, match="window_min_tokens = 9 is more than .*max_tokens = 8"):
        fitting.check_windows(params)


def test_the_sentences_of_one_review_weigh_the_given_total():
    review_of_sentence = np.array([0, 0, 0, 2, 2, 5])  # reviews 1, 3 and 4 have none
    np.testing.assert_allclose(
        fitting.sentence_weights(2.0, review_of_sentence), [2 / 3] * 3 + [1.0, 1.0, 2.0]
    )


def test_the_linear_branch_is_fitted_on_the_short_views_only_when_asked(pipeline_run):
    values = {**train_params(pipeline_run), **PLAIN_STUDENT, "linear_branch": True}
    x, labels = np.arange(12, dtype=np.int32).reshape(3, 4), np.array([0, 1, 1])
    views = -np.arange(24, dtype=np.int32).reshape(6, 4)  # two views of each of the 3 reviews
    off = train.Params(**{**values, "linear_branch_short_views": False})
    assert fitting.with_short_views(off, (x, labels), views)[0] is x
    on = train.Params(**{**values, "linear_branch_short_views": True})
    x_all, y_all = fitting.with_short_views(on, (x, labels), views)
    np.testing.assert_array_equal(x_all, np.concatenate([x, views]))
    np.testing.assert_array_equal(y_all, [0, 1, 1] * 3)
    for wrong in (None, views[:5]):
        with pytest.raises(ParamsError, match="short views of all 3 training reviews"):
            fitting.with_short_views(on, (x, labels), wrong)
