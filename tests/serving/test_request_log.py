"""Request ids and the JSON access log (imdb_sentiment.serving.request_log) on the real app."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from imdb_sentiment.serving import request_log
from tests.serving.test_serve import stub_app, wait_ready  # noqa: F401 (stub_app is a fixture)
from tests.serving_stubs import BlockingPredictor


@pytest.fixture
def access_lines(caplog):
    """A function that returns the access log's lines so far, parsed from their JSON."""
    logger = logging.getLogger(request_log.LOGGER)
    logger.addHandler(caplog.handler)  # the logger does not propagate to caplog's root handler

    def lines() -> list[dict]:
        records = [r for r in caplog.records if r.name == request_log.LOGGER]
        return [json.loads(record.getMessage()) for record in records]

    yield lines
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("abc-123.X:y_z", True), ("has space", False), ("x" * 129, False), ("", False), (None, False)],
)
def test_a_safe_client_id_is_echoed_and_any_other_replaced(stub_app, sent, echoed):  # noqa: F811
    with TestClient(stub_app(BlockingPredictor(hold=False))) as client:
        wait_ready(client)
        headers = {} if sent is None else {"X-Request-ID": sent}
        response = client.post("/predict", json={"text": "fine"}, headers=headers)
    returned = response.headers["x-request-id"]
    assert (returned == sent) is echoed
    if not echoed:
        assert len(returned) == 32 and int(returned, 16) >= 0  # a fresh uuid4, in hex
    assert response.headers.get_list("x-request-id") == [returned]


def test_each_request_logs_one_json_line_without_its_text(stub_app, access_lines):  # noqa: F811
    secret = "a review nobody should read in a log"
    with TestClient(stub_app(BlockingPredictor(hold=False), max_body_bytes=5000)) as client:
        wait_ready(client)
        one = client.post("/predict", json={"text": secret}, headers={"X-Request-ID": "r-1"})
        batch = client.post("/predict/batch", json={"texts": [secret] * 3})
        too_big = client.post("/predict", content=b"x" * 6000)
    lines = [line for line in access_lines() if line["route"].startswith("/predict")]
    assert [line["status"] for line in lines] == [200, 200, 413]
    assert lines[0] == {**lines[0], "request_id": "r-1", "method": "POST", "reviews": 1}
    assert lines[1]["request_id"] == batch.headers["x-request-id"] and lines[1]["reviews"] == 3
    assert lines[2]["request_id"] == too_big.headers["x-request-id"]  # the 413 has an id too
    assert lines[2]["reviews"] is None and all(line["latency_ms"] >= 0 for line in lines)
    assert one.status_code == 200
    assert all(secret not in json.dumps(line) for line in access_lines())


def test_the_access_log_can_be_turned_off(stub_app, access_lines):  # noqa: F811
    with TestClient(stub_app(BlockingPredictor(hold=False), access_log=False)) as client:
        wait_ready(client)
        response = client.post("/predict", json={"text": "fine"})
    assert response.headers["x-request-id"]  # ids stay: they cost nothing
    assert access_lines() == []
