import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from imdb_sentiment import serve
from imdb_sentiment.predict import Predictor

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
    assert len(model["sha256"]) == 64 and "train.lstm_units" in model["params"]
    assert "test_accuracy" in model


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
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
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


def test_oversized_streamed_body_gets_413_without_reading_it_all(client):
    sent = []

    def chunks():
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1_000

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
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
        assert health["status"] == "error" and "run `dvc repro` first" in health["error"]
        assert client.get("/ready").status_code == 503
        assert (
            "run `dvc repro` first" in client.post("/predict", json={"text": "x"}).json()["detail"]
        )


class RecordingPredictor:
    """Stands in for Predictor: records the size of each batch it is asked to score."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict(self, reviews: list[str], threshold: float) -> list[str]:
        self.batches.append(len(reviews))
        return list(reviews)


@pytest.mark.parametrize(("max_wait_s", "expected"), [(0.05, [3]), (0.0, [1, 1, 1])])
def test_micro_batcher_gathers_requests_that_arrive_within_the_wait(max_wait_s, expected):
    async def three_staggered_requests() -> tuple[list, list[int]]:
        predictor = RecordingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=8, max_wait_s=max_wait_s)

        async def request(text: str, delay: float) -> list:
            await asyncio.sleep(delay)
            return await batcher.predict([text])

        results = await asyncio.gather(*(request(t, 0.01 * i) for i, t in enumerate("abc")))
        await batcher.close()
        return results, predictor.batches

    results, batches = asyncio.run(three_staggered_requests())
    assert results == [["a"], ["b"], ["c"]] and batches == expected


def test_micro_batcher_stops_gathering_at_max_batch():
    async def five_requests_at_once() -> list[int]:
        predictor = RecordingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=2, max_wait_s=0.05)
        await asyncio.gather(*(batcher.predict([t]) for t in "abcde"))
        await batcher.close()
        return predictor.batches

    assert asyncio.run(five_requests_at_once()) == [2, 2, 1]
