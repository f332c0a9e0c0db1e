"""Prometheus metrics (imdb_sentiment.serving.telemetry): the app's /metrics, and a real Prometheus
server scraping it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from imdb_sentiment.serving import telemetry
from tests.conftest import free_port, serving
from tests.serving.test_serve import stub_app, wait_ready  # noqa: F401 (stub_app is a fixture)
from tests.serving_stubs import BlockingPredictor, sample

# CI installs Debian's prometheus and sets REQUIRE_PROMETHEUS=1: missing, it fails, not skips.
PROMETHEUS = shutil.which("prometheus")
PROMETHEUS_MISSING = PROMETHEUS is None and not os.environ.get("REQUIRE_PROMETHEUS")


def test_metrics_count_requests_refusals_batches_and_name_the_model(stub_app):  # noqa: F811
    app = stub_app(BlockingPredictor(hold=False), max_body_bytes=5000, max_batch=4)
    with TestClient(app) as client:
        wait_ready(client)
        before = client.get("/metrics").text
        for _ in range(3):
            assert client.post("/predict", json={"text": "fine"}).status_code == 200
        assert client.post("/predict/batch", json={"texts": ["a", "b"]}).status_code == 200
        assert client.post("/predict", content=b"x" * 6000).status_code == 413
        assert client.get("/no-such-route").status_code == 404
        after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")

    def delta(name: str, **labels: str) -> float:
        return sample(after.text, name, **labels) - sample(before, name, **labels)

    requests = "sentiment_requests_total"
    assert delta(requests, route="/predict", status="200") == 3
    assert delta(requests, route="/predict/batch", status="200") == 1
    assert delta(requests, route="/predict", status="413") == 1  # refused before routing
    assert delta(requests, route="other", status="404") == 1
    assert delta("sentiment_rejected_requests_total", status="413") == 1
    assert delta("sentiment_request_seconds_count", route="/predict") == 4
    assert delta("sentiment_batch_reviews_count") == 4  # one micro-batch per request here
    assert delta("sentiment_batch_reviews_sum") == 5
    assert sample(after.text, "sentiment_queued_reviews") == 0
    assert sample(after.text, "sentiment_model_info", sha256="unknown", kernel="stub") == 1


def test_a_full_queue_is_counted_as_a_503_refusal(stub_app):  # noqa: F811
    predictor = BlockingPredictor()
    with TestClient(stub_app(predictor, max_batch=1, max_queued_reviews=1)) as client:
        wait_ready(client)
        before = client.get("/metrics").text
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(client.post, "/predict", json={"text": "held"})
            assert predictor.started.wait(5)
            queued = pool.submit(client.post, "/predict", json={"text": "queued"})
            deadline = time.monotonic() + 5
            while sample(client.get("/metrics").text, "sentiment_queued_reviews") != 1:
                assert time.monotonic() < deadline, "the queue gauge never showed the review"
                time.sleep(0.01)
            assert client.post("/predict", json={"text": "refused"}).status_code == 503
            predictor.release.set()
            assert held.result().status_code == queued.result().status_code == 200
        after = client.get("/metrics").text
    rejected = "sentiment_rejected_requests_total"
    assert sample(after, rejected, status="503") - sample(before, rejected, status="503") == 1


def test_a_multiprocess_folder_is_emptied_and_named_for_the_workers(tmp_path, monkeypatch):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"an earlier server's counts")
    monkeypatch.setenv(telemetry.MULTIPROCESS_DIR, "restored after the test")
    assert telemetry.prepare_multiprocess_dir(folder) == folder
    assert list(folder.iterdir()) == [] and os.environ[telemetry.MULTIPROCESS_DIR] == str(folder)
    assert not telemetry.MULTIPROCESS  # this process keeps its own registry: it was set too late


@pytest.mark.integration
@pytest.mark.skipif(PROMETHEUS_MISSING, reason="Debian's prometheus is not installed")
def test_a_real_prometheus_server_scrapes_the_request_count(stub_app, tmp_path):  # noqa: F811
    app = stub_app(BlockingPredictor(hold=False))
    with serving(app) as base:
        target = base.removeprefix("http://")
        port = free_port()
        config = tmp_path / "prometheus.yml"
        # The timeout must not exceed the interval (its default is 10 s), or the job is dropped.
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            f"scrape_configs: [{{job_name: api, static_configs: [{{targets: ['{target}']}}]}}]\n"
        )
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
        )  # fmt: skip
        try:
            scraped(port, 'up{job="api"}', lambda value: value == 1)  # scraped once
            query = 'sum(sentiment_requests_total{route="/predict",status="200"}) or vector(0)'
            start = scraped(port, query, lambda value: value is not None)
            for _ in range(7):
                assert httpx.post(f"{base}/predict", json={"text": "fine"}).status_code == 200
            assert scraped(port, query, lambda value: value == start + 7) == start + 7
        finally:
            server.terminate()
            server.wait(30)


def scraped(port: int, query: str, done, seconds: float = 60) -> float | None:
    """Ask Prometheus' HTTP API for ``query`` until ``done(value)``; the last value."""
    deadline, value = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        # Refused or "Service Unavailable" (not JSON) until Prometheus has started
        with contextlib.suppress(httpx.TransportError, ValueError, KeyError):
            answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query})
            result = answer.json()["data"]["result"]
            value = float(result[0]["value"][1]) if result else None
            if done(value):
                return value
        time.sleep(0.5)
    targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets").text[-1500:]
    raise AssertionError(f"Prometheus never answered {query} as expected (last {value}): {targets}")
