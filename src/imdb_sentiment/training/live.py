"""Per-epoch figures through DVCLive, one folder per trained classifier.

dvc.yaml declares the folders' ``metrics.json`` as metrics and ``plots/`` as plots, so DVCLive
writes no dvc.yaml of its own (``dvcyaml=False``) and makes no experiment (the stages run under
``dvc repro``/``dvc exp run``, which record them). Each epoch is written when it ends: `dvc exp
show`, `dvc plots show` and the VS Code extension see a stage's epochs while it trains, and a
killed run leaves its finished epochs readable until the stage runs again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dvclive import Live
from dvclive.keras import DVCLiveCallback
from scmrepo.exceptions import SCMError


class LiveLoggingError(RuntimeError):
    """DVCLive cannot start here; the message says why and what to do."""


class EpochLogger(DVCLiveCallback):
    """DVCLive's Keras callback, logging each epoch under the names the histories use
    (``multi_view_loss`` for a two-view network's summed loss), and leaving ``live`` open so
    that the stage can add its best epoch's figures to the summary before it ends it."""

    def __init__(self, live: Live, renames: dict[str, str]) -> None:
        super().__init__(live=live)
        self.renames = renames

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {self.renames.get(name, name): value for name, value in (logs or {}).items()}
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        """Not ended here: :func:`finish` ends it, summary and all."""


def start(folder: Path, writes_outputs: bool = True) -> Live:
    """A DVCLive logger writing into ``folder`` (emptied first), or into a scratch folder on a
    worker that leaves no outputs (multi-worker training: only the chief writes)."""
    if not writes_outputs:
        folder = Path(tempfile.mkdtemp(prefix="dvclive-worker-"))
    try:
        return Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None)
    except SCMError as error:  # DVCLive 3.49 reads the current commit of the git repository
        raise LiveLoggingError(
            f"{folder}: DVCLive cannot log in a git repository with no commit yet ({error}); "
            "commit first: git add -A && git commit -m 'first commit'"
        ) from error


def finish(live: Live, summary: dict) -> None:
    """Add ``summary`` (best epoch, time) to metrics.json beside the last epoch's figures."""
    live.summary.update(summary)
    live.end()
