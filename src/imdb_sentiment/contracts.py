"""Checks of the private library members a fast path relies on, and the warning when one fails.

A module that reaches into Keras or TensorFlow (``rowwise_adam``, ``hoisted_lstm``,
``multi_worker_fit``) lists the members it uses in a ``contract_problems()`` function built
from these checks. Its contract test asserts that list is empty, so it fails on the day a
release changes them; at run time a non-empty list makes the code take the public route
instead, with :func:`warn_fallback`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable


class InternalsChanged(UserWarning):
    """A library's private members changed: a fast path was turned off for a public one."""


def missing_members(owner: object, names: Iterable[str]) -> list[str]:
    """The names in ``names`` that ``owner`` lacks, each as "<type>.<name> is gone"."""
    kind = type(owner).__name__ if not isinstance(owner, type) else owner.__name__
    return [f"{kind}.{name} is gone" for name in names if not hasattr(owner, name)]


def signature_changed(function: Callable | None, parameters: list[str], name: str) -> list[str]:
    """A one-item list naming ``name`` when ``function``'s parameters are not ``parameters``."""
    if function is None:
        return [f"{name} is gone"]
    found = list(inspect.signature(function).parameters)
    return [] if found == parameters else [f"{name} takes {found}, not {parameters}"]


def warn_fallback(mechanism: str, problems: list[str], fallback: str) -> None:
    """Say once per call site that ``mechanism`` is off, why, and what runs instead."""
    warnings.warn(
        f"{mechanism} is turned off: {'; '.join(problems)}. {fallback}",
        InternalsChanged,
        stacklevel=3,
    )
