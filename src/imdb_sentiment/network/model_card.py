"""The model card: what a trained model is, written by the train stage beside the model files.

``models/model_card.json`` holds the params that trained the model, the network in one line,
its validation figures and the sha256 of each model file. Serving (``/health``, the UI)
reads it from the model's folder, so a model fetched with ``dvc artifacts get`` or copied
elsewhere still says what it is, and whether the bytes loaded are the ones it describes.
It holds no times, so the same training writes the same card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imdb_sentiment.fileio import write_json
from imdb_sentiment.layout import EVAL_METRICS

CARD_FILE = "model_card.json"
MODEL_FILES = ("classifier.keras", "end_to_end.keras")
VALIDATION_KEYS = ("val_accuracy", "val_loss", "epochs_run")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_card(
    folder: Path, params: dict[str, Any], training_summary: dict, train_reviews: int
) -> dict:
    """Write the card of the model files in ``folder``; returns it.

    ``params``: the params sections that made the model, e.g. ``{"train": StudentParams,
    "teachers": {"seeds": [...]}}`` (schema models or dicts); ``training_summary``: the train
    stage's metrics (their timings are left out).
    """
    sections = {
        k: v.model_dump() if isinstance(v, BaseModel) else dict(v) for k, v in params.items()
    }
    card = {
        "architecture": describe_architecture(sections),
        "params": sections,
        "train_reviews": train_reviews,
        "validation": {key: training_summary[key] for key in VALIDATION_KEYS},
        "files": {
            name: {"sha256": file_sha256(folder / name)}
            for name in MODEL_FILES
            if (folder / name).is_file()
        },
    }
    write_json(Path(folder) / CARD_FILE, card)
    return card


def describe_architecture(params: dict[str, dict]) -> str | None:
    """One line on the network the params sections build, e.g. for the UI's header."""
    train = params.get("train") or {}
    if "lstm_units" not in train:
        return None
    direction = "bidirectional" if train.get("bidirectional") else "one-direction"
    views = ["words"]
    views += ["word pairs"] * bool(train.get("pair_vocab_size"))
    views += ["word triples"] * bool(train.get("triple_vocab_size"))
    line = (
        f"{direction} LSTM ({train.get('lstm_layers', 1)} x {train['lstm_units']} units) "
        f"over {' and '.join(views)}"
    )
    teachers = len((params.get("teachers") or {}).get("seeds") or [])
    if teachers:
        line = f"{line}, distilled from {teachers} teachers"
    if train.get("linear_branch"):
        line = f"{line}, beside a linear branch over the same ids"
    return line


def read_card(model_path: Path, sha256: str, size: int) -> dict:
    """What serving says of a loaded model: its path, hash and size, and the card written
    beside it (``matches_card``: whether these bytes are the ones the card describes; None
    without a card). The test accuracy comes from the project's metrics/eval.json, where
    the model sits in a project's models/ folder."""
    model_path = Path(model_path)
    summary: dict[str, Any] = {"path": str(model_path), "sha256": sha256}
    summary["size_mb"] = round(size / 2**20, 2)
    card_path = model_path.parent / CARD_FILE
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
    recorded = card.get("files", {}).get(model_path.name, {}).get("sha256")
    summary["matches_card"] = None if recorded is None else recorded == sha256
    for key in ("architecture", "params", "train_reviews", "validation"):
        summary[key] = card.get(key)
    metrics = model_path.resolve().parent.parent / EVAL_METRICS
    if metrics.is_file():
        summary["test_accuracy"] = json.loads(metrics.read_text()).get("accuracy")
    return summary
