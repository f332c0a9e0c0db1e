import json

import numpy as np
import pytest

from imdb_sentiment.data import archive, dataset
from imdb_sentiment.training import linear
from stages import linear_baseline

PARAMS = linear_baseline.Params(ngram_max=2, C=1.0, nb_alpha=1.0, folds=3, seed=0)


def test_fits_on_the_training_split_and_scores_it_out_of_fold(pipeline_run):
    out = pipeline_run / "data/linear_baseline"
    model = linear.LinearModel.load(out / "model.pkl")
    scores = np.load(out / "out_of_fold.npz")
    _, _, y_train = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    _, _, y_val = dataset.load_arrays(pipeline_run / "data/prepared", "validation")
    assert scores["train"].shape == y_train.shape and scores["validation"].shape == y_val.shape
    report = json.loads((pipeline_run / "metrics/linear_baseline.json").read_text())
    assert report["val_accuracy"] == round(
        float(np.mean((scores["validation"] >= 0.5) == y_val)), 4
    )
    assert report["features"] == len(model.pipeline[0].vocabulary_) > 0
    # The validation scores are the saved model's own on those raw texts.
    table = archive.read_table(pipeline_run / "data/raw", "train")
    ids, _, y = dataset.load_arrays(pipeline_run / "data/prepared", "validation")
    texts = archive.texts_of(table, ids, y, "train.csv")
    np.testing.assert_allclose(model.probabilities(texts), scores["validation"], rtol=1e-6)


def test_the_tiny_task_is_learned(pipeline_run, tmp_path):
    report = linear_baseline.run(
        PARAMS, pipeline_run / "data/raw", pipeline_run / "data/prepared",
        tmp_path / "out", tmp_path / "linear.json",
    )  # fmt: skip
    assert report["val_accuracy"] >= 0.75 and report["out_of_fold_accuracy"] >= 0.7
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "model.pkl", "out_of_fold.npz",
    ]  # fmt: skip


def test_a_review_of_the_split_missing_from_the_raw_table_is_named(pipeline_run, tmp_path):
    table = archive.read_table(pipeline_run / "data/raw", "train")
    ids, _, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    with pytest.raises(archive.ArchiveError, match=r"train.csv: review \(id, label\) \(9999, 1\)"):
        archive.texts_of(table, np.append(ids, 9999), np.append(y, 1), "train.csv")


def test_missing_prepared_data_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "linear_baseline:\n  ngram_max: 2\n  C: 0.1\n  nb_alpha: 1.0\n  folds: 5\n  seed: 42\n"
    )
    assert linear_baseline.main() == 1
    assert "encoder.json" in capsys.readouterr().err
    assert not (tmp_path / "data/linear_baseline").exists()


@pytest.mark.parametrize(("key", "value"), [("folds", 1), ("C", 0), ("ngram_max", 4)])
def test_out_of_range_params_are_named(tmp_path, monkeypatch, capsys, key, value):
    monkeypatch.chdir(tmp_path)
    values = {"ngram_max": 2, "C": 0.1, "nb_alpha": 1.0, "folds": 5, "seed": 42, key: value}
    lines = "".join(f"  {name}: {v}\n" for name, v in values.items())
    (tmp_path / "params.yaml").write_text(f"linear_baseline:\n{lines}")
    assert linear_baseline.main() == 1
    assert f"linear_baseline.{key} = {value} is out of range" in capsys.readouterr().err
