"""Load one stage's section of params.yaml, validated against :mod:`imdb_sentiment.schema`
before any heavy work starts, and run a stage with clear errors and clean exits."""

from __future__ import annotations

import difflib
import errno
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from imdb_sentiment.schema import SECTIONS

T = TypeVar("T")
DEFAULT_PARAMS_FILE = Path("params.yaml")


class ParamsError(ValueError):
    """A params.yaml problem; the message names the file, the key and the value."""


def load_stage_params(
    section: str, schema: type[T] | None = None, path: Path = DEFAULT_PARAMS_FILE
) -> T:
    """Return ``section`` of ``path`` checked against ``schema`` (default: the section's
    model in :mod:`imdb_sentiment.schema`), or raise ParamsError naming the key and value."""
    schema = schema or SECTIONS[section]
    values = _read_section(Path(path), section)
    try:
        return schema.model_validate(values)
    except ValidationError as error:
        raise ParamsError(_explain(Path(path), section, schema, error.errors()[0])) from None


def _explain(path: Path, section: str, schema: type, error: dict) -> str:
    """One pydantic error as a sentence naming the file, the key and the value."""
    names = [str(part) for part in error["loc"] if isinstance(part, str)]
    key = f"{section}.{names[0]}" + "".join(f"[{i}]" for i in error["loc"] if isinstance(i, int))
    if error["type"] == "missing":
        return f"{path}: missing key '{key}'"
    if error["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(names[0], schema.model_fields, n=1)
        suggestion = f" (did you mean '{section}.{hint[0]}'?)" if hint else ""
        return f"{path}: unknown key '{key}'{suggestion}"
    return f"{path}: {key} = {error['input']!r} {_problem(error)}"


BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
BOUND_KEYS = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def _problem(error: dict) -> str:
    kind, context = error["type"], error.get("ctx", {})
    if kind in BOUNDS:
        return f"is out of range: must be {BOUNDS[kind]} {context[BOUND_KEYS[kind]]}"
    if kind == "string_pattern_mismatch":
        return "is not valid: expected 64 hex digits"
    if kind == "value_error":
        return "is not valid: " + error["msg"].removeprefix("Value error, ")
    return "has the wrong type: " + error["msg"]


def _read_section(path: Path, section: str) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(document, dict) or section not in document:
        raise ParamsError(f"{path}: missing section '{section}'")
    values = document[section]
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: section '{section}' must be a mapping, got {values!r}")
    return values


class Terminated(Exception):
    """SIGTERM arrived: unwind, so every scratch output is removed on the way out."""


DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def run_stage(
    section: str,
    schema: type[T],
    run: Callable[[T], object],
    expected_errors: tuple[type[Exception], ...] = (),
) -> int:
    """A stage's main(): validate its params, run it, turn known failures into exit code 1.

    SIGTERM becomes an exception, so the atomic writes' clean-up runs and the previous outputs
    stay; it exits 143 (128 + SIGTERM), as a process killed by it would. A full disk, a quota
    or a file-size limit ends the stage the same way, with exit code 1.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        run(load_stage_params(section, schema))
    except (ParamsError, *expected_errors) as error:
        print(f"{section}: error: {error}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"{section}: stopped by SIGTERM; the previous outputs are unchanged", file=sys.stderr)
        return 128 + signal.SIGTERM
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        print(
            f"{section}: error: cannot write {error.filename or 'an output'}: {error.strerror}; "
            "the previous outputs are unchanged",
            file=sys.stderr,
        )
        return 1
    return 0


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()
