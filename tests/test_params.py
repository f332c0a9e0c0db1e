import errno
import os
import re
import signal
from pathlib import Path

import pytest
import yaml

from imdb_sentiment import schema
from imdb_sentiment.params import ParamsError, load_stage_params, run_stage
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


def test_messages_start_with_the_file_and_suggest_only_close_names(tmp_path):
    path = write_params(tmp_path, "train", max_epochs=0)
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(path))}: train\.max_epochs = 0 "):
        load_stage_params("train", train.Params, path)
    path = write_params(tmp_path, "train", zzzz=1)
    with pytest.raises(ParamsError) as raised:
        load_stage_params("train", train.Params, path)
    assert str(raised.value).endswith("unknown key 'train.zzzz'")  # nothing close to suggest


def test_yaml_and_section_shape_problems_name_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(path))}: not valid YAML"):
        load_stage_params("train", train.Params, path)
    path.write_text("train: 3\n")
    with pytest.raises(ParamsError, match=r"section 'train' must be a mapping, got 3$"):
        load_stage_params("train", train.Params, path)


def _stage_in(tmp_path, monkeypatch, run, expected_errors=()):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, "evaluate")
    return run_stage("evaluate", evaluate.Params, run, expected_errors)


def test_run_stage_passes_the_params_and_exits_0(tmp_path, monkeypatch):
    seen = []
    assert _stage_in(tmp_path, monkeypatch, seen.append) == 0
    assert isinstance(seen[0], evaluate.Params)


def test_run_stage_turns_known_failures_into_exit_1_with_a_message(tmp_path, monkeypatch, capsys):
    def refuse(params):
        raise KeyError("no such review")

    assert _stage_in(tmp_path, monkeypatch, refuse, (KeyError,)) == 1
    assert capsys.readouterr().err == "evaluate: error: 'no such review'\n"
    write_params(tmp_path, "evaluate", batch_size=0)
    assert run_stage("evaluate", evaluate.Params, print) == 1
    assert capsys.readouterr().err.startswith("evaluate: error: params.yaml: evaluate.batch_size")


def test_run_stage_exits_143_on_sigterm(tmp_path, monkeypatch, capsys):
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = _stage_in(tmp_path, monkeypatch, lambda p: os.kill(os.getpid(), signal.SIGTERM))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143
    assert capsys.readouterr().err == (
        "evaluate: stopped by SIGTERM; the previous outputs are unchanged\n"
    )


@pytest.mark.parametrize("filename", ["metrics/eval.json", None])
def test_run_stage_exits_1_on_a_full_disk_and_raises_other_os_errors(
    tmp_path, monkeypatch, capsys, filename
):
    def full(params):
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    assert _stage_in(tmp_path, monkeypatch, full) == 1
    name = filename or "an output"
    assert capsys.readouterr().err == (
        f"evaluate: error: cannot write {name}: No space left on device; "
        "the previous outputs are unchanged\n"
    )

    def denied(params):
        raise PermissionError(errno.EACCES, "Permission denied", "metrics")

    with pytest.raises(PermissionError):
        run_stage("evaluate", evaluate.Params, denied)
