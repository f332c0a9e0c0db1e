import asyncio
import hashlib
import json
import os
import re
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imdb_sentiment.serving import serve
from imdb_sentiment.serving.predict import Predictor
from tests.conftest import serving
from tests.serving_stubs import BlockingPredictor

LIMITS = {"max_text_chars": 200, "max_batch": 4, "max_body_bytes": 2_000}


def wait_ready(client: TestClient, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(pipeline_run):
    settings = serve.ServerSettings(
        model_path=pipeline_run / "models/end_to_end.keras", ui=False, **LIMITS
    )
    with TestClient(serve.create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture(scope="module")
def predictor(pipeline_run):
    return Predictor.load(pipeline_run / "models/end_to_end.keras")


def assert_still_serving(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"text": "fine"}).status_code == 200


def test_predict_one(client, predictor):
    response = client.post("/predict", json={"text": "A wonderful film."})
    assert response.status_code == 200
    body = response.json()
    expected = predictor.predict(["A wonderful film."])[0]
    assert body["label"] == expected.label
    assert body["probability_positive"] == pytest.approx(expected.probability_positive, abs=1e-5)


def test_predict_batch_keeps_order(client, predictor):
    texts = ["great", "awful boring", "the plot"]
    response = client.post("/predict/batch", json={"texts": texts})
    assert response.status_code == 200
    got = [p["probability_positive"] for p in response.json()["predictions"]]
    expected = [p.probability_positive for p in predictor.predict(texts)]
    assert got == pytest.approx(expected, abs=1e-5)


def test_health_names_the_model(client):
    model = client.get("/health").json()["model"]
    assert len(model["sha256"]) == 64 and "lstm_units" in model["params"]["train"]
    assert model["matches_card"] is True and "test_accuracy" in model


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    assert {"/predict", "/predict/batch", "/health", "/ready"} <= set(
        client.get("/openapi.json").json()["paths"]
    )


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/predict", {"text": ""}, "text", "at least 1 character"),
        ("/predict", {"text": "   \n\t"}, "text", "non-whitespace"),
        ("/predict", {"text": "x" * 201}, "text", "at most 200 characters"),
        ("/predict", {"text": 5}, "text", "valid string"),
        ("/predict", {}, "text", "Field required"),
        ("/predict/batch", {"texts": []}, "texts", "at least 1 item"),
        ("/predict/batch", {"texts": ["a"] * 5}, "texts", "at most 4 items"),
        ("/predict/batch", {"texts": ["ok", " "]}, "texts.1", "non-whitespace"),
        ("/predict/batch", {"texts": "not a list"}, "texts", "valid list"),
    ],
)
def test_invalid_requests_name_the_field(client, path, body, field, message):
    response = client.post(path, json=body)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["field"] == field and message in p["message"] for p in problems), problems
    assert_still_serving(client)


def test_invalid_utf8_is_a_client_error(client):
    response = client.post(
        "/predict", content=b'{"text": "caf\xe9"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == [
        {"field": "body", "message": "the request body is not valid UTF-8 (bad byte at offset 13)"}
    ]
    assert_still_serving(client)


def test_malformed_json_is_a_client_error(client):
    response = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert_still_serving(client)


def test_oversized_body_with_content_length_gets_413(client):
    response = client.post("/predict", json={"text": "x" * 5_000})
    assert response.status_code == 413 and "over 2000 bytes" in response.json()["detail"]
    assert_still_serving(client)


def test_invalid_content_length_is_a_client_error(client):
    response = client.post(
        "/predict",
        content=b'{"text": "x"}',
        headers={"content-length": "abc", "content-type": "application/json"},
    )
    assert response.status_code == 400 and "Content-Length" in response.json()["detail"]
    assert_still_serving(client)


def test_concurrent_requests_all_succeed_and_agree(client, predictor):
    texts = [f"review number {i} was great" if i % 2 else f"dull film {i}" for i in range(32)]
    expected = [p.probability_positive for p in predictor.predict(texts)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda t: client.post("/predict", json={"text": t}), texts))
    assert all(r.status_code == 200 for r in responses)
    got = [r.json()["probability_positive"] for r in responses]
    assert got == pytest.approx(expected, abs=1e-5)


def test_not_ready_until_the_model_is_loaded(pipeline_run, monkeypatch):
    release = threading.Event()
    real_load = Predictor.load

    def slow_load(*args, **kwargs):
        release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(serve.Predictor, "load", slow_load)
    settings = serve.ServerSettings(model_path=pipeline_run / "models/end_to_end.keras", ui=False)
    with TestClient(serve.create_app(settings)) as client:
        assert client.get("/health").json()["status"] == "loading"
        assert client.get("/ready").status_code == 503
        assert client.post("/predict", json={"text": "hi"}).status_code == 503
        release.set()
        wait_ready(client)
        assert client.post("/predict", json={"text": "hi"}).status_code == 200


def test_a_worker_of_several_takes_no_requests_until_the_model_is_loaded(pipeline_run, monkeypatch):
    loads = []
    real_load = Predictor.load

    def slow_load(*args, **kwargs):
        time.sleep(1)
        loads.append(time.monotonic())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(serve.Predictor, "load", slow_load)
    settings = serve.ServerSettings(
        model_path=pipeline_run / "models/end_to_end.keras", ui=False, serve_while_loading=False
    )
    with TestClient(serve.create_app(settings)) as client:  # returns once startup is over
        assert loads and client.get("/ready").status_code == 200
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["pid"] == os.getpid()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", 1.0),
        ("threshold", 0.0),
        ("max_text_chars", 0),
        ("max_batch", 0),
        ("max_body_bytes", -1),
        ("batch_wait_ms", -1.0),
        ("warm_up_batch_sizes", (1, 0)),
    ],
)
def test_settings_reject_out_of_range_values_by_name(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must .*got {re.escape(str(value))}$"):
        serve.ServerSettings(**{field: value})


def test_settings_accept_the_edges():
    settings = serve.ServerSettings(threshold=0.001, max_batch=1, batch_wait_ms=0.0)
    assert (settings.threshold, settings.max_batch, settings.batch_wait_ms) == (0.001, 1, 0.0)


def test_missing_model_is_reported_not_crashed(tmp_path):
    settings = serve.ServerSettings(model_path=tmp_path / "none.keras", ui=False)
    with TestClient(serve.create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/health").json()
        assert health["status"] == "error" and "run `dvc repro`" in health["error"]
        assert client.get("/ready").status_code == 503
        assert "run `dvc repro`" in client.post("/predict", json={"text": "x"}).json()["detail"]


@pytest.fixture
def stub_app(monkeypatch):
    """create_app around a BlockingPredictor: no model file, no TensorFlow."""

    def make(predictor: BlockingPredictor, **settings) -> FastAPI:
        monkeypatch.setattr(serve.Predictor, "load", lambda *args, **kwargs: predictor)
        monkeypatch.setattr(serve, "read_card", lambda path, *hashes: {"path": str(path)})
        return serve.create_app(serve.ServerSettings(ui=False, **settings))

    return make


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_full_queue_answers_503_with_retry_after(stub_app):
    predictor = BlockingPredictor()
    app = stub_app(predictor, max_batch=1, max_queued_reviews=1)
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        wait_ready(client)
        scored = pool.submit(client.post, "/predict", json={"text": "being scored"})
        assert predictor.started.wait(5)
        queued = pool.submit(client.post, "/predict", json={"text": "queued"})
        wait_for(lambda: app.state.serving.batcher.queued_reviews == 1)
        refused = client.post("/predict", json={"text": "one too many"})
        predictor.release.set()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "max_queued_reviews 1" in refused.json()["detail"]
        assert scored.result().status_code == queued.result().status_code == 200


def test_a_request_past_its_deadline_gets_504(stub_app):
    predictor = BlockingPredictor()
    with TestClient(stub_app(predictor, request_timeout_s=0.2)) as client:
        wait_ready(client)
        response = client.post("/predict", json={"text": "slow"})
        predictor.release.set()
        assert response.status_code == 504
        assert response.json()["detail"] == "no answer within 0.2 s (request_timeout_s)"
        assert client.post("/predict", json={"text": "fast"}).status_code == 200


def test_a_stopped_worker_makes_ready_and_predict_answer_503(stub_app):
    predictor = BlockingPredictor(fail=asyncio.CancelledError(), hold=False)
    with TestClient(stub_app(predictor)) as client:
        wait_ready(client)
        assert client.post("/predict", json={"text": "kills the worker"}).status_code == 503
        assert client.get("/ready").status_code == 503
        response = client.post("/predict", json={"text": "next"})
        assert response.status_code == 503 and "worker has stopped" in response.json()["detail"]
        assert len(predictor.batches) == 1  # the second request never reached the model
        assert client.get("/health").json()["status"] == "error"


def test_a_failing_batch_is_a_500_without_internals_and_serving_goes_on(stub_app):
    predictor = BlockingPredictor(fail=RuntimeError("/secret/path/kernel.so exploded"), hold=False)
    with TestClient(stub_app(predictor)) as client:
        wait_ready(client)
        response = client.post("/predict", json={"text": "x"})
        assert response.status_code == 500 and "/secret" not in response.text
        predictor.fail = None
        assert client.post("/predict", json={"text": "y"}).status_code == 200


def test_load_errors_are_logged_in_full_and_shown_short(tmp_path, caplog):
    hidden = tmp_path / "private-folder" / "none.keras"
    settings = serve.ServerSettings(model_path=hidden, ui=False)
    with TestClient(serve.create_app(settings)) as client:
        wait_for(lambda: client.get("/health").json()["status"] != "loading")
        bodies = [client.get(path).text for path in ("/health", "/ready")]
        bodies.append(client.post("/predict", json={"text": "x"}).text)
    assert all("private-folder" not in body for body in bodies), bodies
    assert all("run `dvc repro`" in body for body in bodies), bodies
    assert "private-folder" in caplog.text


def test_uvicorn_takes_its_connection_limit_and_worker_ping_from_the_settings():
    settings = serve.ServerSettings(max_connections=7, worker_healthcheck_s=90)
    assert serve.uvicorn_options(settings) == {
        "limit_concurrency": 7,
        "timeout_worker_healthcheck": 90,
    }
    with pytest.raises(ValueError, match="worker_healthcheck_s must be at least 1, got 0"):
        serve.ServerSettings(worker_healthcheck_s=0)


def test_the_body_limit_holds_behind_a_root_path(stub_app):
    app = stub_app(BlockingPredictor(hold=False), max_body_bytes=2_000)
    with serving(app, root_path="/proxy") as base:
        small = httpx.post(f"{base}/predict", json={"text": "fine"}, timeout=10)
        large = httpx.post(f"{base}/predict", json={"text": "x" * 5_000}, timeout=10)
    assert small.status_code == 200
    assert large.status_code == 413 and "over 2000 bytes" in large.json()["detail"]


def test_route_path_strips_the_root_path():
    assert serve.route_path({"path": "/proxy/predict", "root_path": "/proxy"}) == "/predict"
    assert serve.route_path({"path": "/predict", "root_path": ""}) == "/predict"
    assert serve.route_path({"path": "/predict", "root_path": "/proxy"}) == "/predict"


def test_ui_uploads_are_refused_and_other_routes_are_limited(live_server):
    upload = httpx.post(
        f"{live_server}/ui/gradio_api/upload", files={"files": ("a.txt", b"x")}, timeout=10
    )
    assert upload.status_code == 403 and "no file input" in upload.json()["detail"]
    huge = httpx.post(f"{live_server}/ui/gradio_api/queue/join", content=b"x" * 3_000_000)
    assert huge.status_code == 413


def test_an_oversized_chunked_upload_is_refused_before_it_is_all_sent(pipeline_run):
    settings = serve.ServerSettings(
        model_path=pipeline_run / "models/end_to_end.keras", ui=False, max_body_bytes=10_000
    )
    chunk, chunks = b"x" * 1_000, 200  # 200 kB offered, 10 kB allowed
    with serving(serve.create_app(settings)) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            sent = 0
            while sent < chunks and not select.select([connection], [], [], 0.02)[0]:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += 1
            answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent <= 20, f"the server answered only after {sent} of {chunks} chunks"


def test_health_reports_the_served_files_hash_accuracy_and_kernel(client, pipeline_run):
    model = client.get("/health").json()["model"]
    path = pipeline_run / "models/end_to_end.keras"
    assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    eval_metrics = json.loads((pipeline_run / "metrics/eval.json").read_text())
    assert model["test_accuracy"] == eval_metrics["accuracy"]
    assert model["kernel"] == "numba"  # the default architecture never falls back to Keras


def test_predictions_say_how_many_words_the_model_knew(client):
    known = client.post("/predict", json={"text": "great film"}).json()
    assert known["known_words"] == 2 and known["warning"] is None
    unknown = client.post("/predict", json={"text": "!!! ???"}).json()
    assert unknown["known_words"] == 0 and "guess" in unknown["warning"]
    assert unknown["label"] in ("positive", "negative")
