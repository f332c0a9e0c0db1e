from pathlib import Path

import pytest
import yaml

from imdb_sentiment import schema
from imdb_sentiment.params import ParamsError, load_stage_params
from stages import download, evaluate, linear_baseline, preprocess, train
from tests.conftest import REPO_ROOT

STAGES = (download, preprocess, linear_baseline, train, evaluate)


def write_params(tmp_path: Path, section: str, **changes) -> Path:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            del params[section][key]
        else:
            params[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: stage.SECTION)
def test_committed_params_are_valid(stage):
    params = load_stage_params(stage.SECTION, stage.Params, REPO_ROOT / "params.yaml")
    assert isinstance(params, stage.Params)


def test_missing_key_is_named(tmp_path):
    path = write_params(tmp_path, "train", lstm_units=None)
    with pytest.raises(ParamsError, match=r"missing key 'train\.lstm_units'"):
        load_stage_params("train", train.Params, path)


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = write_params(tmp_path, "train", lstm_unit=64)
    with pytest.raises(ParamsError, match=r"unknown key 'train\.lstm_unit'.*'train\.lstm_units'"):
        load_stage_params("train", train.Params, path)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "preprocess",
            "max_length",
            0,
            r"preprocess\.max_length = 0 is out of range: must be >= 1$",
        ),
        (
            "preprocess",
            "validation_fraction",
            1.5,
            r"preprocess\.validation_fraction = 1\.5 is out of range: must be < 1\.0$",
        ),
        ("train", "max_epochs", -3, r"train\.max_epochs = -3 is out of range: must be >= 1"),
        ("train", "dropout", 1.0, r"train\.dropout = 1\.0 is out of range: must be < 1\.0"),
        ("evaluate", "threshold", 0, r"evaluate\.threshold = 0 is out of range: must be > 0\.0"),
        ("teachers", "seeds", [1, -2], r"teachers\.seeds\[1\] = -2 is out of range: must be >= 0"),
        (
            "teachers",
            "seeds",
            [3, 3],
            r"teachers\.seeds = \[3, 3\] is not valid: names a seed twice",
        ),
    ],
)
def test_out_of_range_values_are_named(tmp_path, section, key, value, message):
    path = write_params(tmp_path, section, **{key: value})
    with pytest.raises(ParamsError, match=message):
        load_stage_params(section, path=path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lstm_units", "64", "a valid integer"),
        ("lstm_units", True, "a valid integer"),
        ("lstm_units", 64.0, "a valid integer"),
        ("bidirectional", "yes", "a valid boolean"),
        ("learning_rate", "fast", "a valid number"),
        ("early_stopping_monitor", "loss", "'val_loss' or 'val_accuracy'"),
    ],
)
def test_wrong_types_are_named(tmp_path, key, value, expected):
    path = write_params(tmp_path, "train", **{key: value})
    with pytest.raises(
        ParamsError, match=rf"train\.{key} = .* has the wrong type: Input should be {expected}"
    ):
        load_stage_params("train", train.Params, path)


def test_integers_are_accepted_for_floats(tmp_path):
    path = write_params(tmp_path, "train", clipnorm=2)
    assert load_stage_params("train", train.Params, path).clipnorm == 2


def test_bad_sha256_is_named(tmp_path):
    path = write_params(tmp_path, "download", sha256="abc")
    with pytest.raises(
        ParamsError,
        match=r"download\.sha256 = 'abc' is not valid: expected 64 hex digits",
    ):
        load_stage_params("download", download.Params, path)


def test_missing_section_and_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {}\n")
    with pytest.raises(ParamsError, match="missing section 'evaluate'"):
        load_stage_params("evaluate", evaluate.Params, path)
    with pytest.raises(ParamsError, match="file not found"):
        load_stage_params("evaluate", evaluate.Params, tmp_path / "absent.yaml")


def test_every_section_of_the_committed_params_has_a_schema_and_is_valid():
    document = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert set(document) == set(schema.SECTIONS)
    for section in document:
        load_stage_params(section, path=REPO_ROOT / "params.yaml")


def test_the_parameter_reference_is_generated_from_the_schema():
    # Regenerate with: python -m imdb_sentiment.schema > docs/parameters.md
    generated = schema.reference_markdown(REPO_ROOT / "params.yaml")
    assert (REPO_ROOT / "docs/parameters.md").read_text() == generated


def test_engine_keys_are_marked_in_the_reference():
    engine = {
        (section, key)
        for section, model in schema.SECTIONS.items()
        for key, field in model.model_fields.items()
        if (field.json_schema_extra or {}).get("engine")
    }
    assert engine == {
        ("teacher", "lstm_kernel"),
        ("train", "lstm_kernel"),
        ("evaluate", "batch_size"),
    }
    assert schema.reference_markdown(REPO_ROOT / "params.yaml").count("| *engine*: ") == 3
