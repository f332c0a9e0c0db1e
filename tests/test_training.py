"""The training orchestration (imdb_sentiment.training): members, teachers, students,
averaging and naming, on the tiny pipeline's prepared data."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import dataset, hoisted_lstm, model, ngrams, text, training
from imdb_sentiment.model import load_model
from imdb_sentiment.params import ParamsError
from stages import train
from tests.stages.test_train import train_briefly, train_params


def assert_saved_as_the_average_of(pipeline_run, out, names: list[str]) -> None:
    """The model saved in ``out`` averages members so named, of different seeds, and
    ``out``/t.json reports the average's validation accuracy."""
    saved = load_model(out / "models/classifier.keras")
    members = model.ensemble_members(saved)
    assert [member.name for member in members] == names
    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "validation")
    each = [member(x).numpy().reshape(-1) for member in members]
    assert not np.allclose(each[0], each[1])  # different seeds
    averaged = saved(x).numpy().reshape(-1)
    assert np.allclose(averaged, np.mean(each, axis=0), atol=1e-6)
    summary = json.loads((out / "t.json").read_text())
    assert summary["val_accuracy"] == round(float(np.mean((averaged >= 0.5) == y)), 4)


def test_saved_model_averages_different_members_and_reports_its_validation(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path, ensemble_size=2)
    summary = json.loads((tmp_path / "t.json").read_text())
    assert list(summary["members"]) == ["member_1", "member_2"]
    assert_saved_as_the_average_of(pipeline_run, tmp_path, ["member_1", "member_2"])


def test_one_member_is_saved_as_a_plain_classifier(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path, ensemble_size=1)
    classifier = load_model(tmp_path / "models/classifier.keras")
    assert classifier.name == "lstm_classifier"
    assert model.ensemble_members(classifier) == [classifier]
    summary = json.loads((tmp_path / "t.json").read_text())
    assert list(summary["members"]) == ["member_1"] and summary["epochs_run"] == 1
    assert summary["val_accuracy"] == summary["members"]["member_1"]["best_val_accuracy"]


@pytest.fixture
def targets_seen(monkeypatch) -> dict[str, np.ndarray]:
    """The training targets each member of the next train run is given, by member name."""
    seen = {}
    train_member = training.train_member

    def recording(params, number, vocabularies, data, validation, placement=None):
        member = train_member(params, number, vocabularies, data, validation, placement)
        seen[member.name] = data[1]
        return member

    monkeypatch.setattr(training, "train_member", recording)
    return seen


PLAIN_STUDENT = {"linear_teacher_weight": 0.0, "window_copies": 0, "calibrate": False}


def test_distilling_saves_one_student_trained_on_the_teachers_probabilities(
    pipeline_run, tmp_path, targets_seen
):
    train_briefly(pipeline_run, tmp_path, ensemble_size=2, distill=True, **PLAIN_STUDENT)

    summary = json.loads((tmp_path / "t.json").read_text())
    assert list(summary["members"]) == ["member_1", "member_2", "student"]
    assert [m["seed"] for m in summary["members"].values()] == [42, 43, 44]
    assert summary["val_accuracy"] == summary["members"]["student"]["best_val_accuracy"]
    student = load_model(tmp_path / "models/classifier.keras")
    assert student.name == "lstm_classifier" and model.ensemble_members(student) == [student]

    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    assert np.array_equal(targets_seen["member_1"], y)
    soft = targets_seen["student"]
    assert soft.shape == y.shape and not np.isin(soft, (0.0, 1.0)).all()
    # The teachers, retrained the same way, give back the student's targets.
    teachers = tmp_path / "teachers"
    train_briefly(pipeline_run, teachers, ensemble_size=2, calibrate=False)
    ensemble = load_model(teachers / "models/classifier.keras")
    assert np.allclose(soft, ensemble(x).numpy().reshape(-1), atol=1e-5)
    # "accuracy" against soft targets is agreement with the teachers, not a 0/1 comparison.
    student_history = pd.read_csv(tmp_path / "plots/history/student.csv")
    assert student_history.accuracy.iloc[0] > 0.3


def test_several_students_learn_the_same_targets_and_are_saved_as_their_average(
    pipeline_run, tmp_path, targets_seen
):
    train_briefly(
        pipeline_run, tmp_path, ensemble_size=2, distill=True, students=2, window_copies=0
    )

    summary = json.loads((tmp_path / "t.json").read_text())
    names = ["member_1", "member_2", "student_1", "student_2"]
    assert list(summary["members"]) == names
    assert [m["seed"] for m in summary["members"].values()] == [42, 43, 44, 45]
    assert sorted(path.stem for path in (tmp_path / "plots/history").iterdir()) == names
    assert np.array_equal(targets_seen["student_1"], targets_seen["student_2"])
    assert not np.isin(targets_seen["student_1"], (0.0, 1.0)).all()
    assert_saved_as_the_average_of(pipeline_run, tmp_path, ["student_1", "student_2"])


def test_students_without_distill_change_nothing(pipeline_run, tmp_path):
    for students in (1, 3):
        train_briefly(pipeline_run, tmp_path / str(students), ensemble_size=2, students=students)
    summaries = [json.loads((tmp_path / f"{n}/t.json").read_text()) for n in (1, 3)]
    assert list(summaries[1]["members"]) == ["member_1", "member_2"]
    assert summaries[0]["members"] == summaries[1]["members"]


@pytest.mark.parametrize(
    ("distill", "expected_epochs"),
    [(True, {"member_1": 1, "member_2": 1, "student": 3}), (False, {"member_1": 3, "member_2": 3})],
)
def test_teacher_max_epochs_bounds_only_the_teachers_of_a_student(
    pipeline_run, tmp_path, distill, expected_epochs
):
    # Patience above max_epochs: every classifier runs to its limit, whatever its losses.
    train_briefly(
        pipeline_run,
        tmp_path,
        ensemble_size=2,
        distill=distill,
        max_epochs=3,
        teacher_max_epochs=1,
        early_stopping_patience=5,
    )
    members = json.loads((tmp_path / "t.json").read_text())["members"]
    assert {name: member["epochs_run"] for name, member in members.items()} == expected_epochs


def test_pair_vocab_size_adds_a_pairs_branch_and_zero_keeps_words_only(pipeline_run, tmp_path):
    values = train_params(pipeline_run)
    assert values["pair_vocab_size"] > 0  # the default: the tiny run trained a two-view model
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    words = text.load_encoder(pipeline_run / "data/prepared/encoder.json").vocab_size
    saved = load_model(pipeline_run / "models/classifier.keras")
    saved_pairs = model.view_branches(saved)[1][0]
    kept = ngrams.build_ngram_vocabulary(x, words, values["pair_vocab_size"], 2)
    assert np.array_equal(saved_pairs.vocabulary, kept) and len(kept) > 10

    train_briefly(pipeline_run, tmp_path, ensemble_size=1, pair_vocab_size=0, triple_vocab_size=0)
    words_only = load_model(tmp_path / "models/classifier.keras")
    assert model.view_branches(words_only) is None
    assert not any(isinstance(layer, ngrams.WordNgrams) for layer in words_only.layers)


def test_triple_vocab_size_adds_a_triples_branch(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path, ensemble_size=1, pair_vocab_size=60, triple_vocab_size=40)
    saved = load_model(tmp_path / "models/classifier.keras")
    views = model.view_branches(saved)
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
        train_briefly(pipeline_run, tmp_path, ensemble_size=1, **{key: size})
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


def test_curve_tables_hold_every_member_and_name_each_loss():
    members = [
        training.TrainedMember("member_1", 42, None, history("multi_view_loss"), 2),
        training.TrainedMember("student", 43, None, history("multi_view_loss"), 1),
    ]
    tables = training.curve_tables(members)
    loss = tables["loss"]
    assert list(loss.columns) == ["epoch", "member", "split", "loss_name", "loss"]
    student_validation = loss[(loss.member == "student") & (loss.split == "validation")]
    assert student_validation.loss.tolist() == [0.9, 0.8]
    assert set(loss.loss_name) == {"multi_view_loss"}
    accuracy = tables["accuracy"]
    assert len(accuracy) == 8 and accuracy[accuracy.split == "train"].accuracy.max() == 0.9


def test_member_summaries_name_the_loss_they_report():
    two_view = training.TrainedMember("member_1", 42, None, history("multi_view_loss"), 2)
    one_view = training.TrainedMember("member_1", 42, None, history("loss"), 1)
    result = training.TrainingResult(None, [two_view], {"accuracy": 0.9, "loss": 0.25}, 2.0)
    summary = training.summary(result, reviews=10)
    assert summary["members"]["member_1"]["best_val_multi_view_loss"] == 0.8
    assert summary["val_loss"] == 0.25  # the saved model's cross-entropy
    one = training.summary(
        training.TrainingResult(None, [one_view], {"accuracy": 0.9, "loss": 0.3}, 2.0), 10
    )
    assert one["members"]["member_1"]["best_val_loss"] == 0.9


def prepared_splits(pipeline_run) -> tuple[tuple, tuple, int]:
    """The tiny pipeline's (train, validation) arrays and its word vocabulary size."""
    prepared = pipeline_run / "data/prepared"
    _, x_train, y_train = dataset.load_arrays(prepared, "train")
    _, x_val, y_val = dataset.load_arrays(prepared, "validation")
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    return (x_train, y_train), (x_val, y_val), words


def test_the_kept_weights_are_the_best_epochs_when_validation_gets_worse(pipeline_run):
    # Validation labels flipped: the better the model learns, the worse its validation loss.
    values = {**train_params(pipeline_run), "ensemble_size": 1, "distill": False}
    values.update(pair_vocab_size=0, max_epochs=4, early_stopping_patience=2, learning_rate=0.05)
    params = train.Params(**{**values, "calibrate": False})  # the kept weights, as they are
    (x_train, y_train), (x_val, y_val), words = prepared_splits(pipeline_run)
    result = training.train_classifier(params, (x_train, y_train), (x_val, 1 - y_val), words)
    [member] = result.members
    history = member.history
    assert member.best_epoch < len(history)  # it trained past the best epoch...
    assert history.val_loss.iloc[member.best_epoch - 1] == history.val_loss.min()
    kept = history.iloc[member.best_epoch - 1]
    last = history.iloc[-1]
    assert kept.val_loss < last.val_loss
    # ...and what it kept scores the flipped validation set as the best epoch did, not the last
    assert result.validation["accuracy"] == pytest.approx(kept.val_accuracy, abs=1e-4)
    assert result.validation["loss"] == pytest.approx(kept.val_loss, abs=1e-3)


@pytest.mark.parametrize(
    ("schedule", "is_student", "expected"),
    [("constant", False, 0), ("linear", False, 2 * 10), ("linear", True, 3 * 10)],
)
def test_a_linear_schedule_decays_over_the_members_epoch_limit(schedule, is_student, expected):
    params = argparse.Namespace(
        learning_rate_schedule=schedule, distill=True, max_epochs=3, teacher_max_epochs=2
    )
    assert training.decay_steps(params, is_student, steps_per_epoch=10) == expected


def test_a_linear_schedule_trains_its_last_step_at_the_smallest_rate(pipeline_run, tmp_path):
    # Patience above max_epochs: the member runs all its steps, and the rate falls to 0.
    values = {**train_params(pipeline_run), "ensemble_size": 1, "distill": False}
    values.update(max_epochs=2, pair_vocab_size=0, early_stopping_patience=5)
    values.update(learning_rate_schedule="linear")
    prepared = pipeline_run / "data/prepared"
    _, x, y = dataset.load_arrays(prepared, "train")
    _, x_val, y_val = dataset.load_arrays(prepared, "validation")
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    params = train.Params(**values)
    member = training.train_member(
        params, 1, training.Vocabularies(words, {}), (x, y), (x_val, y_val)
    )
    optimizer = member.model.optimizer
    steps = 2 * len(model.BucketedBatches(x, y, params.batch_size, params.seed))
    assert int(optimizer.iterations) == steps
    assert float(optimizer.learning_rate) == pytest.approx(0.0)
    assert float(optimizer._get_current_learning_rate()) == pytest.approx(0.0)


def test_each_trained_classifier_leaves_no_traced_gradients_behind(pipeline_run, monkeypatch):
    values = {**train_params(pipeline_run), "ensemble_size": 2, "distill": True}
    values.update(PLAIN_STUDENT, pair_vocab_size=0, max_epochs=1)
    params = train.Params(**values)
    assert params.lstm_kernel == "hoisted"
    left_behind = []
    real_release = training.release_training_memory

    def release_and_count() -> None:
        real_release()
        left_behind.append(hoisted_lstm.forget_traced_gradients())

    monkeypatch.setattr(training, "release_training_memory", release_and_count)
    (x_train, y_train), (x_val, y_val), words = prepared_splits(pipeline_run)
    training.train_classifier(params, (x_train, y_train), (x_val, y_val), words)
    assert left_behind == [0, 0, 0]  # after each teacher, and before the student


@pytest.fixture
def data_seen(monkeypatch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The (reviews, targets) each member of the next train runs is given, by member name."""
    seen = {}
    train_member = training.train_member

    def recording(params, number, vocabularies, data, validation, placement=None):
        member = train_member(params, number, vocabularies, data, validation, placement)
        seen[member.name] = data
        return member

    monkeypatch.setattr(training, "train_member", recording)
    return seen


def test_students_learn_the_blend_of_teachers_and_linear_baseline_on_reviews_and_windows(
    pipeline_run, tmp_path, data_seen
):
    train_briefly(pipeline_run, tmp_path / "plain", ensemble_size=2, distill=True, **PLAIN_STUDENT)
    teachers = data_seen["student"][1]  # the teachers' average alone
    blend = {"linear_teacher_weight": 0.25, "window_copies": 2, "calibrate": False}
    train_briefly(pipeline_run, tmp_path / "blend", ensemble_size=2, distill=True, **blend)
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
    blended = training.student_targets(params, teachers, linear)
    np.testing.assert_allclose(blended, [0.78, 0.32], rtol=1e-6)
    assert blended.dtype == np.float32
    with pytest.raises(ValueError, match="linear_teacher_weight = 0.3 needs .* all 2 training"):
        training.student_targets(params, teachers, linear[:1])
    zero = argparse.Namespace(linear_teacher_weight=0.0)
    assert training.student_targets(zero, teachers, None) is teachers


def test_calibration_set_adds_the_first_and_last_words(pipeline_run):
    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "validation")
    x_cal, y_cal = training.calibration_set(x, y)
    assert len(x_cal) == 3 * len(x) and np.array_equal(y_cal, np.concatenate([y] * 3))
    assert np.array_equal(x_cal[len(x) : 2 * len(x)], dataset.edge_windows(x, 20, "first"))
    assert np.array_equal(x_cal[2 * len(x) :], dataset.edge_windows(x, 20, "last"))


def test_calibrating_records_the_temperature_and_changes_confidence_only(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path / "raw", ensemble_size=1, calibrate=False)
    train_briefly(pipeline_run, tmp_path / "cal", ensemble_size=1, calibrate=True)
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
        training.check_windows(params)
