"""The Open Inference Protocol (KServe v2, REST) beside the API's own routes.

Model servers and their clients (KServe, Triton, MLServer, Seldon; Triton's ``tritonclient``)
speak it. The model is ``sentiment-model``, its version the model file's sha256; its input is
``text`` (BYTES, shape [-1]: one review per element) and its output ``probability_positive``
(FP32, shape [-1]). Tensors are JSON (binary tensor data is refused with a message that says
so). The limits are those of ``/predict/batch``; errors use the protocol's ``{"error": ...}``
body, with the API's status codes (413, 422 naming the field, 503 with Retry-After, 504).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imdb_sentiment.serving.request_log import REVIEWS_KEY

MODEL_NAME = "sentiment-model"
INPUT, OUTPUT = "text", "probability_positive"
PREFIX = "/v2"


class ProtocolError(ValueError):
    """A request the protocol or the limits refuse; ``field`` names where the problem is."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status


def error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def metadata(version: str | None) -> dict:
    return {
        "name": MODEL_NAME,
        "versions": [version] if version else [],
        "platform": "keras",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1]}],
    }


def reviews_of(body: Any, max_batch: int, max_chars: int) -> list[str]:
    """The reviews of an infer request, checked against the protocol and the API's limits."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise ProtocolError("inputs", "a list of input tensors is required")
    if len(body["inputs"]) != 1 or not isinstance(body["inputs"][0], dict):
        raise ProtocolError("inputs", f"exactly one input tensor, {INPUT!r}, is required")
    tensor = body["inputs"][0]
    if tensor.get("name") != INPUT:
        raise ProtocolError("inputs[0].name", f"must be {INPUT!r}, got {tensor.get('name')!r}")
    if tensor.get("datatype") != "BYTES":
        raise ProtocolError("inputs[0].datatype", "must be 'BYTES' (one review per element)")
    if (tensor.get("parameters") or {}).get("binary_data_size") is not None:
        raise ProtocolError("inputs[0]", "binary tensor data is not supported: send JSON data")
    data = tensor.get("data")
    if not isinstance(data, list) or not 1 <= len(data) <= max_batch:
        raise ProtocolError("inputs[0].data", f"must hold 1 to {max_batch} reviews")
    if tensor.get("shape") != [len(data)]:
        raise ProtocolError("inputs[0].shape", f"must be [{len(data)}], the length of data")
    for index, review in enumerate(data):
        field = f"inputs[0].data[{index}]"
        if not isinstance(review, str) or not review.strip():
            raise ProtocolError(field, "must be a string with non-whitespace text")
        if len(review) > max_chars:
            raise ProtocolError(field, f"longer than {max_chars} characters")
    check_outputs(body.get("outputs"), body.get("parameters") or {})
    return data


def check_outputs(outputs: Any, parameters: dict) -> None:
    if parameters.get("binary_data_output"):
        raise ProtocolError("parameters.binary_data_output", "binary output is not supported")
    for index, output in enumerate(outputs or []):
        if not isinstance(output, dict) or output.get("name") != OUTPUT:
            raise ProtocolError(f"outputs[{index}].name", f"the only output is {OUTPUT!r}")
        if (output.get("parameters") or {}).get("binary_data"):
            raise ProtocolError(
                f"outputs[{index}].parameters.binary_data",
                "binary output is not supported: request JSON (binary_data=False)",
            )


Predict = Callable[[list[str]], Awaitable[list | Response]]


def add_routes(
    app: FastAPI,
    predict: Predict,
    ready: Callable[[], bool],
    version: Callable[[], str | None],
    max_batch: int,
    max_chars: int,
) -> None:
    """The protocol's health, metadata and infer routes, over ``predict`` (the API's own)."""

    def known(name: str) -> JSONResponse | None:
        return None if name == MODEL_NAME else error(f"unknown model {name!r}", 404)

    @app.get(f"{PREFIX}/health/live", include_in_schema=False)
    async def live() -> dict:
        return {"live": True}

    @app.get(f"{PREFIX}/health/ready", include_in_schema=False)
    async def server_ready() -> JSONResponse:
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    @app.get(f"{PREFIX}/models/{{name}}", include_in_schema=False)
    async def model_metadata(name: str) -> Any:
        return known(name) or metadata(version())

    @app.get(f"{PREFIX}/models/{{name}}/ready", include_in_schema=False)
    async def model_ready(name: str) -> Any:
        return known(name) or JSONResponse(
            {"name": name, "ready": ready()}, status_code=200 if ready() else 503
        )

    @app.post(f"{PREFIX}/models/{{name}}/infer", include_in_schema=False)
    async def infer(name: str, request: Request) -> Any:
        if refusal := known(name):
            return refusal
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, ValueError) as problem:
            return error(f"body: not valid JSON ({problem})", 400)
        try:
            reviews = reviews_of(body, max_batch, max_chars)
        except ProtocolError as problem:
            return error(str(problem), problem.status)
        setattr(request.state, REVIEWS_KEY, len(reviews))
        result = await predict(reviews)
        if isinstance(result, Response):  # 503, 504, 500 from the API: the protocol's body
            detail = json.loads(result.body).get("detail")
            retry = {k: v for k, v in result.headers.items() if k.lower() == "retry-after"}
            return error(str(detail), result.status_code, retry or None)
        answer = {
            "model_name": MODEL_NAME,
            "model_version": version() or "",
            "outputs": [
                {
                    "name": OUTPUT,
                    "datatype": "FP32",
                    "shape": [len(result)],
                    "data": [p.probability_positive for p in result],
                }
            ],
        }
        if isinstance(body.get("id"), str):
            answer["id"] = body["id"]
        return answer
