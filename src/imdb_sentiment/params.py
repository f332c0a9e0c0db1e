"""Load one stage's section of params.yaml and validate it before any heavy work starts.

Each stage declares its keys as a frozen dataclass. Range limits live in field metadata
(``min``, ``max``, ``gt``, ``lt``) so that the schema reads as documentation.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import signal
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")
DEFAULT_PARAMS_FILE = Path("params.yaml")


class ParamsError(ValueError):
    """A params.yaml problem; the message names the file, the key and the value."""


def load_stage_params(section: str, schema: type[T], path: Path = DEFAULT_PARAMS_FILE) -> T:
    """Return ``schema`` filled from ``section`` of ``path``, or raise ParamsError."""
    values = _read_section(Path(path), section)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for key in values:
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            suggestion = f" (did you mean '{section}.{hint[0]}'?)" if hint else ""
            raise ParamsError(f"{path}: unknown key '{section}.{key}'{suggestion}")
    for name, field in fields.items():
        if name not in values:
            raise ParamsError(f"{path}: missing key '{section}.{name}'")
        _check_value(path, f"{section}.{name}", values[name], hints[name], field.metadata)
    return schema(**values)


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


def _check_value(path: Path, key: str, value: Any, hint: Any, limits: Any) -> None:
    if not _matches_type(value, hint):
        raise ParamsError(
            f"{path}: {key} = {value!r} has the wrong type: expected {_describe(hint)}"
        )
    bounds = {
        "min": (lambda v, b: v >= b, ">="),
        "max": (lambda v, b: v <= b, "<="),
        "gt": (lambda v, b: v > b, ">"),
        "lt": (lambda v, b: v < b, "<"),
    }
    for name, (accepts, symbol) in bounds.items():
        if name in limits and value is not None and not accepts(value, limits[name]):
            raise ParamsError(
                f"{path}: {key} = {value!r} is out of range: must be {symbol} {limits[name]}"
            )
    pattern = limits.get("pattern")
    if pattern is not None and value is not None and not pattern.fullmatch(value):
        raise ParamsError(f"{path}: {key} = {value!r} is not valid: {limits['pattern_help']}")


def _matches_type(value: Any, hint: Any) -> bool:
    if typing.get_origin(hint) is Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # "float | None": any one
        return any(_matches_type(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    return isinstance(value, typing.get_origin(hint) or hint)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(typing.get_origin(hint) or hint, "__name__", str(hint))


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
