"""The Open Inference Protocol routes (imdb_sentiment.serving.open_inference), with a hand-written
request for each rule and Triton's stock client, tritonclient, against the live server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imdb_sentiment.serving.predict import Predictor
from tests.conftest import REPO_ROOT
from tests.serving.test_serve import stub_app, wait_ready  # noqa: F401 (stub_app is a fixture)
from tests.serving_stubs import BlockingPredictor

# CI installs tritonclient[http] into a virtual environment of its own (.ci/run) and sets
# REQUIRE_TRITONCLIENT=1: missing, the client test fails instead of skipping.
CLIENT_PYTHON = Path(
    os.environ.get("TRITON_CLIENT_PYTHON", REPO_ROOT / ".ci/client-venv/bin/python")
)
CLIENT_MISSING = not CLIENT_PYTHON.exists() and not os.environ.get("REQUIRE_TRITONCLIENT")
INFER = "/v2/models/sentiment-model/infer"


def infer_body(data: list, **changes) -> dict:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(data)], "data": data}
    return {"id": "abc", "inputs": [{**tensor, **changes}]}


# Different for each review, so an answer in the wrong order or from the wrong field shows.
PROBABILITIES = {"good": 0.875, "fine": 0.25, "meh": 0.5}


@pytest.fixture
def client(stub_app):  # noqa: F811
    predictor = BlockingPredictor(hold=False, probabilities=PROBABILITIES)
    with TestClient(stub_app(predictor, max_batch=3, max_body_bytes=4000)) as c:
        wait_ready(c)
        yield c


def test_health_metadata_and_an_answer_in_the_protocols_shape(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/sentiment-model/ready").status_code == 200
    metadata = client.get("/v2/models/sentiment-model").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [
        {"name": "probability_positive", "datatype": "FP32", "shape": [-1]}
    ]
    answer = client.post(INFER, json=infer_body(["fine", "meh", "good"]))
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == "abc" and body["model_name"] == "sentiment-model"
    assert body["outputs"] == [  # P(positive) of each review in its order, not the confidence
        {"name": "probability_positive", "datatype": "FP32", "shape": [3],
         "data": [0.25, 0.5, 0.875]}
    ]  # fmt: skip
    assert client.get("/v2/models/other").json() == {"error": "unknown model 'other'"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (infer_body(["  "]), 422, "inputs[0].data[0]: must be a string with non-whitespace"),
        (infer_body(["a", "b", "c", "d"]), 422, "inputs[0].data: must hold 1 to 3 reviews"),
        (infer_body(["a"], shape=[2]), 422, "inputs[0].shape: must be [1]"),
        (infer_body(["a"], datatype="FP32"), 422, "inputs[0].datatype: must be 'BYTES'"),
        (infer_body(["a"], name="review"), 422, "inputs[0].name: must be 'text'"),
        ({"inputs": []}, 422, "inputs: exactly one input tensor"),
        (
            {**infer_body(["a"]), "outputs": [{"name": "probability_positive",
                                               "parameters": {"binary_data": True}}]},
            422, "outputs[0].parameters.binary_data: binary output is not supported",
        ),
    ],
)  # fmt: skip
def test_each_bad_request_gets_the_protocols_error_naming_the_field(client, body, status, message):
    answer = client.post(INFER, json=body)
    assert answer.status_code == status
    assert answer.json()["error"].startswith(message)


def test_bodies_over_the_limit_and_bad_json_get_protocol_errors(client):
    too_big = client.post(INFER, content=b"x" * 5000)
    assert too_big.status_code == 413 and "over 4000 bytes" in too_big.json()["error"]
    broken = client.post(INFER, content=b"{oops")
    assert broken.status_code == 400 and broken.json()["error"].startswith("body: not valid")


def test_a_full_queue_is_a_503_with_retry_after_in_the_protocols_body(stub_app):  # noqa: F811
    predictor = BlockingPredictor()
    with TestClient(stub_app(predictor, max_batch=1, max_queued_reviews=1)) as c:
        wait_ready(c)
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(c.post, INFER, json=infer_body(["held"]))
            assert predictor.started.wait(5)
            queued = pool.submit(c.post, INFER, json=infer_body(["queued"]))
            deadline = time.monotonic() + 5
            while c.app.state.serving.batcher.queued_reviews != 1:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.01)
            refused = c.post(INFER, json=infer_body(["refused"]))
            predictor.release.set()
            assert held.result().status_code == queued.result().status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "server busy" in refused.json()["error"]


@pytest.mark.integration
@pytest.mark.skipif(CLIENT_MISSING, reason="no tritonclient virtual environment")
def test_tritons_stock_client_gets_the_predictors_probabilities(live_server, pipeline_run):
    reviews = ["A wonderful, moving film.", "Two hours I will never get back."]
    host = live_server.removeprefix("http://")
    result = subprocess.run(
        [str(CLIENT_PYTHON), str(REPO_ROOT / "tests/oip_client.py"), host, *reviews],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["live"] and report["ready"] and report["model_ready"]
    assert report["metadata"]["name"] == "sentiment-model"
    expected = Predictor.load(pipeline_run / "models/end_to_end.keras").predict(reviews)
    for got, want in zip(report["probabilities"], expected, strict=True):
        assert got == pytest.approx(want.probability_positive, abs=1e-5)
    assert report["id"] == "req-7"
    assert report["blank_error"]["status"] == "422"
    assert (
        "inputs[0].data[0]: must be a string with non-whitespace text"
        in (report["blank_error"]["message"])
    )
