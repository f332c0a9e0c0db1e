"""Request ids and one JSON access-log line per request (ASGI middleware).

Every response carries ``X-Request-ID``: the client's own, when it is safe to echo (up to 128
letters, digits and ``._:-``), else a new one. When the request ends, one JSON line goes to the
``imdb_sentiment.access`` logger: the id, method, route, status, latency and, for the
prediction routes, how many reviews the request held. Review texts are never logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable

HEADER = b"x-request-id"
SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
LOGGER = "imdb_sentiment.access"
REVIEWS_KEY = "reviews"  # request.state.reviews: set by the prediction routes


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID if it is safe to echo in a header and a log, else a new one."""
    given = dict(headers).get(HEADER)
    if given is not None and SAFE_ID.fullmatch(given):
        return given.decode("ascii")
    return uuid.uuid4().hex


def access_logger(enabled: bool) -> logging.Logger:
    """The access logger, on or silent. Where its lines go is the process's choice: the
    ``sentiment serve`` command sends them to stderr (:func:`log_to_stderr`)."""
    logger = logging.getLogger(LOGGER)
    logger.propagate = False  # the JSON lines only, not again through the root logger
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
    return logger


def log_to_stderr() -> None:
    """Write the access log's lines, bare, to stderr (once per process)."""
    logger = logging.getLogger(LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


class RequestLog:
    """Adds X-Request-ID to every HTTP response, logs the request as one JSON line, and hands
    its route, status and seconds to ``observe`` (the metrics)."""

    def __init__(
        self,
        app: Callable,
        logger: logging.Logger,
        observe: Callable[[str, int, float], None] | None = None,
        known_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app, self.logger, self.observe = app, logger, observe
        self.known_paths = known_paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope["headers"])
        scope.setdefault("state", {})["request_id"] = rid
        status = 500  # if the app fails before it answers

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self._log(scope, rid, status, seconds)
            if self.observe is not None:
                self.observe(self.route(scope), status, seconds)

    def route(self, scope: dict) -> str:
        """The route's template, as a label with few values: a request refused before routing
        (413) keeps its path if the app has that route; anything else is "other"."""
        matched = getattr(scope.get("route"), "path", None)
        if matched is not None:
            return matched
        return scope["path"] if scope["path"] in self.known_paths else "other"

    def _log(self, scope: dict, rid: str, status: int, seconds: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        line = {
            "request_id": rid,
            "method": scope["method"],
            "route": scope["path"],
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "reviews": scope["state"].get(REVIEWS_KEY),
        }
        self.logger.info(json.dumps(line))
