"""Prometheus metrics of the API (prometheus-client), right under ``--workers N`` as well.

One process: the metrics live in prometheus-client's default registry. Several workers:
``sentiment serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an emptied folder before the workers
start, each worker writes its values there, ``/metrics`` on any worker merges them all
(prometheus-client's multiprocess mode), and a worker that stops is marked dead, so its live
gauges leave the sums. The variable is read when prometheus-client is first imported, which is
why it is set before any worker imports this module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client picks its storage once, at its import: decided the same way, once, here,
# so that a variable set later in this process (by `sentiment serve` for its workers) cannot
# make /metrics read a folder this process never wrote to.
MULTIPROCESS = bool(os.environ.get(MULTIPROCESS_DIR))
CONTENT_TYPE = CONTENT_TYPE_LATEST
REJECTED_STATUSES = {413: "body too large", 503: "busy or not ready", 504: "past its deadline"}

REQUESTS = Counter(
    "sentiment_requests", "HTTP requests answered, by route and status", ["route", "status"]
)
LATENCY = Histogram(
    "sentiment_request_seconds",
    "time from a request's arrival to its answer, by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REJECTED = Counter(
    "sentiment_rejected_requests",
    "requests refused: 413 body too large, 503 busy or not ready, 504 past the deadline",
    ["status"],
)
BATCH_SIZE = Histogram(
    "sentiment_batch_reviews",
    "reviews per micro-batch scored by the model",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
QUEUED = Gauge(
    "sentiment_queued_reviews", "reviews waiting to be scored", multiprocess_mode="livesum"
)
MODEL = Gauge(
    "sentiment_model_info",
    "1 for the served model, labelled by its file's sha256 and the scoring kernel",
    ["sha256", "kernel"],
    multiprocess_mode="liveall",
)


def prepare_multiprocess_dir(folder: Path) -> Path:
    """Empty ``folder`` (left by an earlier server, it would add old counts) and name it in
    the environment the workers inherit; call before any worker starts."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(folder)
    return folder


def exposition() -> bytes:
    """The metrics in Prometheus' text format: this process's, or every worker's merged."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def observe_request(route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, str(status)).inc()
    LATENCY.labels(route).observe(seconds)
    if status in REJECTED_STATUSES:
        REJECTED.labels(str(status)).inc()


def model_loaded(sha256: str, kernel: str) -> None:
    MODEL.labels(sha256, kernel).set(1)


def process_ended(pid: int) -> None:
    """A worker's last call: its live gauges (queue, model) leave the merged figures."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)
