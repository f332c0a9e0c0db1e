"""Models from the GTO model registry: ``sentiment-model#prod`` or ``sentiment-model@v1.2.0``.

GTO records versions and stages as git tags (``sentiment-model@v1.2.0``,
``sentiment-model#prod#3``); ``dvc artifacts get`` reads those tags (or DVC Studio, where a
token is set) and downloads the file from the DVC remote configured at that commit. Serving
uses the same command a user would, so what is served is what the registry points to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imdb-sentiment"
REFERENCE = re.compile(
    r"(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"(?:@(?P<version>v\d+\.\d+\.\d+)|#(?P<stage>[A-Za-z0-9][\w-]*))"
)


MODEL_FILE = "end_to_end.keras"  # the artifact is the end-to-end model; Keras needs the suffix


class RegistryError(RuntimeError):
    """A registry reference that cannot be fetched; the message names it and the repository."""


@dataclass(frozen=True)
class Reference:
    name: str
    version: str | None = None
    stage: str | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.version else f"{self.name}#{self.stage}"


def parse_reference(text: str) -> Reference | None:
    """``name@vX.Y.Z`` or ``name#stage`` as a Reference; None for anything else (a path)."""
    match = REFERENCE.fullmatch(text)
    if match is None:
        return None
    return Reference(match["name"], match["version"], match["stage"])


def fetch(reference: Reference, repo: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Download the model ``reference`` points to in ``repo`` (a path or git URL) with
    ``dvc artifacts get``; returns the local file. The previous download of the same
    reference is replaced only once the new one is complete."""
    folder = cache_dir / "registry" / reference.name / str(reference).replace("#", "_")
    target = folder / MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.partial")
    selector = ["--rev", reference.version] if reference.version else ["--stage", reference.stage]
    command = [sys.executable, "-m", "dvc", "artifacts", "get", repo, reference.name, *selector]
    result = subprocess.run(
        [*command, "-o", str(scratch), "--force"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        scratch.unlink(missing_ok=True)
        reason = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise RegistryError(f"{reference}: cannot fetch it from {repo}: {' '.join(reason)}")
    os.replace(scratch, target)
    return target


def resolve(model: str, repo: str, cache_dir: Path = CACHE_DIR) -> Path:
    """A model file for ``model``: the path itself when it exists or is not a registry
    reference, else the file the reference points to, fetched from ``repo``."""
    reference = parse_reference(model)
    if reference is None or Path(model).exists():
        return Path(model)
    path = fetch(reference, repo, cache_dir)
    print(f"{reference}: fetched from the registry of {repo} to {path}", file=sys.stderr)
    return path
