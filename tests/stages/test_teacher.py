import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from imdb_sentiment.data import dataset
from imdb_sentiment.params import ParamsError
from stages import teacher, train
from tests.conftest import REPO_ROOT


def test_each_teacher_keeps_its_scores_of_both_splits_and_its_epochs(pipeline_run):
    params = yaml.safe_load((pipeline_run / "params.yaml").read_text())
    seeds = params["teachers"]["seeds"]
    assert sorted(p.name for p in (pipeline_run / "data/teachers").iterdir()) == sorted(
        f"{seed}.npz" for seed in seeds
    )
    scores = {}
    for seed in seeds:
        with np.load(pipeline_run / f"data/teachers/{seed}.npz") as saved:
            scores[seed] = {split: saved[split] for split in ("train", "validation")}
        for split, values in scores[seed].items():
            _, _, y = dataset.load_arrays(pipeline_run / "data/prepared", split)
            assert values.shape == y.shape and values.dtype == np.float32
            assert ((values > 0) & (values < 1)).all()
        live = pipeline_run / f"dvclive/teacher-{seed}"
        metrics = json.loads((live / "metrics.json").read_text())
        assert metrics["seed"] == seed and 1 <= metrics["best_epoch"] <= metrics["epochs_run"]
        accuracy = pd.read_csv(live / "plots/metrics/eval/accuracy.tsv", sep="\t")
        assert len(accuracy) == metrics["epochs_run"] <= params["teacher"]["max_epochs"]
        best = accuracy.accuracy.iloc[metrics["best_epoch"] - 1]
        assert metrics["best_val_accuracy"] == round(best, 4)
    assert len(seeds) >= 2
    for first, second in itertools.combinations(seeds, 2):  # different seeds, different scores
        assert not np.array_equal(scores[first]["train"], scores[second]["train"])


def test_the_seed_is_a_required_argument(capsys):
    with pytest.raises(SystemExit):
        teacher.parse_seed([])
    assert "--seed" in capsys.readouterr().err
    assert teacher.parse_seed(["--seed", "7"]) == 7


def test_a_bad_teacher_key_is_named_by_its_section(pipeline_run, tmp_path):
    values = yaml.safe_load((pipeline_run / "params.yaml").read_text())["teacher"]
    params = teacher.Params(**{**values, "triple_vocab_size": 1})
    with pytest.raises(ParamsError, match="teacher.triple_vocab_size = 1 is out of range"):
        teacher.run(params, 42, tmp_path / "absent", tmp_path / "teachers", tmp_path / "live")
    assert not (tmp_path / "teachers").exists()


def test_the_student_learns_the_average_of_the_teachers_scores(pipeline_run):
    seeds = yaml.safe_load((pipeline_run / "params.yaml").read_text())["teachers"]["seeds"]
    _, _, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    average = train.load_teachers(pipeline_run / "data/teachers", seeds, len(y))
    each = [np.load(pipeline_run / f"data/teachers/{seed}.npz")["train"] for seed in seeds]
    np.testing.assert_allclose(average, np.mean(each, axis=0), rtol=1e-6)
    assert train.load_teachers(pipeline_run / "data/teachers", [], len(y)) is None


@pytest.mark.parametrize(("level", "shown"), [(None, False), ("0", True)])
def test_tensorflow_info_lines_are_hidden_unless_the_user_asks_for_them(tmp_path, level, shown):
    # A fresh process: TensorFlow reads the level once, when it loads.
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        environment["TF_CPP_MIN_LOG_LEVEL"] = level
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "stages/teacher.py"), "--seed", "1"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1  # no prepared data here: it stops after TensorFlow loaded
    assert "teacher: error:" in result.stderr and "encoder.json" in result.stderr
    assert ("cpu_feature_guard" in result.stderr) is shown, result.stderr
