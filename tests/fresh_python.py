"""Run a script in a new Python process and read the JSON it prints last: how a user's own
program, which has never imported this package, sees the saved models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Printed by every script, so a test can assert what the process never loaded.
LOADED_MODULES = """
import json as _json, sys as _sys
print(_json.dumps({"result": RESULT, "numba": "numba" in _sys.modules,
                   "imdb_sentiment": [m for m in _sys.modules if m.startswith("imdb_sentiment")]}))
"""


def run_fresh(script: str, cwd: Path) -> dict:
    """Run ``script`` (which sets ``RESULT``) in a new interpreter in ``cwd``; return
    {"result": RESULT, "numba": loaded?, "imdb_sentiment": [its modules loaded]}."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", script + LOADED_MODULES],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
