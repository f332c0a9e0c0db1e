"""Score raw reviews with a trained end-to-end model: one code path for CLI, API and UI.

The TextEncoder inside the saved end-to-end model is the one preprocess used, so serving
cleans and tokenises exactly as training did. Calls are serialised with a first-come,
first-served lock because a Keras model is not safe to call from several threads at once,
and long work (the UI's word influence) takes it in short turns, so API requests queued
behind it wait one turn, not the whole job.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from pydantic import TypeAdapter, ValidationError

from imdb_sentiment.data import text
from imdb_sentiment.layout import END_TO_END_MODEL
from imdb_sentiment.network.model_file import load_model, saved_architecture
from imdb_sentiment.schema import Fraction
from imdb_sentiment.scoring.inference import (
    Scorer,
    length_buckets,
    predict_probabilities,
    select_scorer,
)

DEFAULT_MODEL = END_TO_END_MODEL
THRESHOLD = TypeAdapter(Fraction)
NO_KNOWN_WORDS = "no word of this review is in the model's vocabulary: the label is a guess"
# Occluded variants scored per turn of the lock: ~10 ms of the kernel at 600 tokens, the most
# an API request waits behind a UI click
OCCLUSION_TURN_ROWS = 16


class ModelError(RuntimeError):
    """The model file is missing, unreadable, or not an end-to-end sentiment model."""


@dataclass(frozen=True)
class Prediction:
    text: str
    label: str
    probability_positive: float
    confidence: float
    known_words: int  # tokens in the vocabulary; 0 means the label is a guess

    def as_dict(self) -> dict:
        return asdict(self)


class Predictor:
    """A loaded end-to-end model with batched, thread-safe prediction."""

    def __init__(
        self, end_to_end: keras.Model, batch_size: int = 256, architecture: dict | None = None
    ) -> None:
        """``architecture``: the classifier's description saved in the model file, which the
        LSTM kernel runs from (None: described from the loaded model)."""
        _check_batch_size(batch_size)
        encoders = [layer for layer in end_to_end.layers if isinstance(layer, text.TextEncoder)]
        classifiers = [layer for layer in end_to_end.layers if isinstance(layer, keras.Model)]
        if len(encoders) != 1 or len(classifiers) != 1:
            raise ModelError(
                "not an end-to-end sentiment model: expected a TextEncoder + classifier"
            )
        self.end_to_end = end_to_end  # raw strings -> P(positive), run by Keras
        self.encoder, self.classifier = encoders[0], classifiers[0]
        self.kernel, self._score = select_scorer(
            self.classifier, self.encoder.max_length, self.encoder.vocab_size, architecture
        )
        self.batch_size = batch_size
        self._lock = FairLock()
        self.source: ModelFile | None = None  # set by load(): the bytes this model came from

    @classmethod
    def load(
        cls, path: Path = DEFAULT_MODEL, batch_size: int = 256, expected_sha256: str | None = None
    ) -> Predictor:
        """Read the file once; check it (and, if given, its sha256); load those very bytes in
        Keras safe mode. ``predictor.source`` describes the bytes that serve."""
        _check_batch_size(batch_size)  # before the slow load, and outside its error wrapping
        path = Path(path)
        content = read_artifact(path)
        source = ModelFile.of(path, content)
        if expected_sha256 and source.sha256 != expected_sha256.strip().lower():
            raise ModelError(
                f"{path}: sha256 is {source.sha256}, not the expected {expected_sha256}"
            )
        try:
            # Keras loads from a path: a private copy of the checked bytes, so a file swapped
            # in place meanwhile (a `dvc checkout`) cannot be what gets loaded.
            with tempfile.TemporaryDirectory() as folder:
                copy = Path(folder) / path.name
                copy.write_bytes(content)
                with zipfile.ZipFile(io.BytesIO(content)) as archive:
                    architecture = saved_architecture(archive)
                predictor = cls(load_model(copy), batch_size, architecture)
        except (ValueError, TypeError, OSError) as error:
            raise ModelError(f"{path}: cannot load model: {error}") from error
        predictor.source = source
        return predictor

    @property
    def score_ids(self) -> Scorer:
        """The compiled ids -> P(positive) function this predictor scores with, for callers
        that hold encoded arrays (evaluate): no second kernel for the same network. Unlocked:
        one thread at a time, as :meth:`probabilities` takes care of for its callers."""
        return self._score

    def warm_up(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run the whole path (text encoder, then every length bucket for these batch sizes)
        now: the first calls trace and compile, which would otherwise stall first requests."""
        for rows in batch_sizes:
            for length in length_buckets(self.encoder.max_length):
                self.probabilities([" ".join(["warm"] * length)] * rows)

    def probabilities(self, reviews: Sequence[str]) -> np.ndarray:
        """P(positive) per review."""
        return self._scored(reviews)[0]

    def predict(self, reviews: Sequence[str], threshold: float = 0.5) -> list[Prediction]:
        """Label, P(positive), confidence (probability of the chosen label) and the count of
        known words per review."""
        check_threshold(threshold)
        probabilities, known = self._scored(reviews)
        return [
            _prediction(review, float(p), threshold, int(k))
            for review, p, k in zip(reviews, probabilities, known, strict=True)
        ]

    def _scored(self, reviews: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """P(positive) and the number of in-vocabulary tokens, per review."""
        if not reviews:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        with self._lock:
            ids = self.encoder.encode(list(reviews))
            probabilities = predict_probabilities(self._score, ids, self.batch_size)
        return probabilities, (ids > text.OOV_ID).sum(axis=1)

    def word_influence(self, review: str) -> list[tuple[str, float]]:
        """Each kept word with how much it moved P(positive): occlusion, one word at a time.

        Masking a word's id removes its step from the LSTM, so the difference between the
        full review and the review without that word is the word's push (+ toward positive).
        Words cut by truncation are reported with influence 0.
        """
        words = [w.decode() for w in text.tokenize([review], **self.encoder.cleaning)[0].numpy()]
        ids = self.encoder.encode([review])[0]
        positions = np.flatnonzero(ids != text.PAD_ID)
        kept = len(positions)
        first_kept = len(words) - kept if self.encoder.truncating == "pre" else 0
        variants = np.repeat(ids[np.newaxis, :], kept + 1, axis=0)
        variants[np.arange(1, kept + 1), positions] = text.PAD_ID
        scores = np.empty(len(variants), np.float32)
        for start in range(0, len(variants), OCCLUSION_TURN_ROWS):
            turn = slice(start, start + OCCLUSION_TURN_ROWS)
            with self._lock:
                scores[turn] = predict_probabilities(self._score, variants[turn], self.batch_size)
        influence = [0.0] * len(words)
        for offset in range(kept):
            influence[first_kept + offset] = float(scores[0] - scores[offset + 1])
        return list(zip(words, influence, strict=True))


class FairLock:
    """A lock granted in the order it was asked for.

    threading.Lock lets the releasing thread take it straight back, so a loop of short turns
    would starve the other threads; here each release hands it to the longest waiter.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder's release(): the lock is ours from then on

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def check_threshold(threshold: float) -> None:
    """The cut-off must leave both labels possible: strictly between 0 and 1, the bounds of
    ``evaluate.threshold`` in the params schema."""
    try:
        THRESHOLD.validate_python(threshold, strict=True)
    except ValidationError:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}") from None


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _prediction(review: str, probability: float, threshold: float, known: int) -> Prediction:
    positive = probability >= threshold
    return Prediction(
        text=review,
        label=text.LABEL_NAMES[int(positive)],
        probability_positive=round(probability, 6),
        confidence=round(probability if positive else 1.0 - probability, 6),
        known_words=known,
    )


MAX_MODEL_MEMBER_BYTES = 2**30  # the default model's largest member is ~60 MB


@dataclass(frozen=True)
class ModelFile:
    """Identity of the model bytes that were loaded."""

    path: Path
    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path, content: bytes) -> ModelFile:
        return cls(Path(path), hashlib.sha256(content).hexdigest(), len(content))


def read_artifact(path: Path) -> bytes:
    """The file's bytes, checked to be a Keras archive with a config and members of sane size,
    before anything is handed to Keras."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model not found: {path}; run `dvc repro` first")
    content = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise ModelError(f"{path}: not a .keras model archive")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = archive.infolist()
        if "config.json" not in {member.filename for member in members}:
            raise ModelError(f"{path}: .keras archive has no config.json")
        for member in members:
            if member.file_size > MAX_MODEL_MEMBER_BYTES:
                raise ModelError(
                    f"{path}: archive member {member.filename} unpacks to {member.file_size:,} "
                    f"bytes, over the {MAX_MODEL_MEMBER_BYTES:,}-byte limit"
                )
    return content
