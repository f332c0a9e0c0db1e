"""REST API (FastAPI) with the Gradio UI mounted at /ui, around one loaded Predictor.

The model loads once per process, in a background thread started at startup: /health
answers at once, /ready says 503 until the model is in (with several workers, a worker takes
no connections until its model is in). Prediction runs in a worker thread
(never on the event loop) through a micro-batcher that merges concurrent requests into one
Keras call, which is both faster and the only caller of the model.

Every request is bounded: its body (413), the reviews waiting in the queue (503 with
Retry-After), the time it waits for an answer (504), and the connections uvicorn takes.
"""

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from imdb_sentiment.network.model_card import read_card
from imdb_sentiment.serving import open_inference, telemetry
from imdb_sentiment.serving.predict import (
    DEFAULT_MODEL,
    NO_KNOWN_WORDS,
    ModelError,
    Prediction,
    Predictor,
    check_threshold,
)
from imdb_sentiment.serving.request_log import REVIEWS_KEY, RequestLog, access_logger, log_to_stderr
from imdb_sentiment.serving.state import WORKER_STOPPED, ServingState

logger = logging.getLogger(__name__)
UI_PATH = "/ui"
UI_UPLOAD_PATH = f"{UI_PATH}/gradio_api/upload"


@dataclass(frozen=True)
class ServerSettings:
    model_path: Path = DEFAULT_MODEL
    model_sha256: str | None = None  # if set, a model file with another hash is refused
    threshold: float = 0.5
    max_text_chars: int = 20_000
    max_batch: int = 256
    max_body_bytes: int = 2_000_000
    ui: bool = True
    batch_wait_ms: float = 2.0  # how long a micro-batch waits for concurrent requests
    # Backpressure: reviews waiting to be scored (~1 s of work on 2 cores; 503 beyond), the
    # wait for an answer (504 beyond), open connections (uvicorn's 503 beyond), UI clicks queued
    max_queued_reviews: int = 4096
    request_timeout_s: float = 10.0
    max_connections: int = 512
    ui_queue_size: int = 16
    # Micro-batch sizes to run once before /ready (models the LSTM kernel does not cover run
    # through XLA, which compiles a program per padded size: every one up to XLA_SPLIT_ROWS)
    warm_up_batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    # With several workers uvicorn kills one that does not answer its ping in this time. Its
    # default of 5 s kills every worker while it loads the model (TensorFlow and numba hold the
    # GIL that the ping thread needs), and restarts it, for ever.
    worker_healthcheck_s: int = 120
    # One process takes connections at once: /health answers and requests get 503 while it
    # loads. With several workers a loading worker must take none, or it 503s requests that a
    # ready worker beside it would answer; uvicorn opens a worker's socket after its startup.
    serve_while_loading: bool = True
    access_log: bool = True  # one JSON line per request (request_log.py); never review texts
    metrics: bool = True  # Prometheus metrics at /metrics (telemetry.py)

    def __post_init__(self) -> None:
        # Checked here, not only in the CLI: a bad limit would otherwise fail every request later
        check_threshold(self.threshold)
        for name in (
            "max_text_chars",
            "max_batch",
            "max_body_bytes",
            "max_queued_reviews",
            "max_connections",
            "ui_queue_size",
            "worker_healthcheck_s",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be at least 0, got {self.batch_wait_ms}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be over 0, got {self.request_timeout_s}")
        if self.max_queued_reviews < self.max_batch:
            raise ValueError(
                f"max_queued_reviews must be at least max_batch ({self.max_batch}), "
                f"got {self.max_queued_reviews}"
            )
        if any(size < 1 for size in self.warm_up_batch_sizes):
            raise ValueError(
                f"warm_up_batch_sizes must all be at least 1, got {self.warm_up_batch_sizes}"
            )


class PredictionOut(BaseModel):
    label: str
    probability_positive: float
    confidence: float
    known_words: int = Field(description="tokens of the review in the model's vocabulary")
    warning: str | None = Field(None, description="set when the label is a guess")


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


Job = tuple[list[str], asyncio.Future]


class Unavailable(Exception):
    """The service cannot take this request now: answered 503, with Retry-After if it may pass."""

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.detail, self.retry_after_s = detail, retry_after_s


class MicroBatcher:
    """Queue predictions; one worker thread scores whatever has queued up, together.

    After the first request of a batch, it waits up to ``max_wait_s`` for more: concurrent
    clients' requests arrive over a few milliseconds, and one call for all of them costs
    little more than a call for one, while batches of one or two would queue the rest behind.

    At most ``max_queued_reviews`` reviews wait at once; past that :meth:`predict` refuses at
    once. A request whose caller gave up (cancelled, timed out) is dropped unscored.
    """

    def __init__(
        self,
        predictor: Predictor,
        threshold: float,
        max_batch: int,
        max_wait_s: float = 0.002,
        max_queued_reviews: int = 4096,
        metrics: bool = True,
    ) -> None:
        self.predictor, self.threshold, self.max_batch = predictor, threshold, max_batch
        self.metrics = metrics
        self.max_wait_s, self.max_queued_reviews = max_wait_s, max_queued_reviews
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.queued_reviews = 0
        self._held_over: Job | None = None  # a job that would have overfilled the last batch
        self.worker = asyncio.create_task(self._run())
        self.worker.add_done_callback(self._fail_waiting)

    @property
    def alive(self) -> bool:
        return not self.worker.done()

    async def predict(self, reviews: list[str], timeout_s: float | None = None) -> list[Prediction]:
        """Predictions for ``reviews``; TimeoutError after ``timeout_s``, Unavailable at once
        when the queue is full or the worker has stopped."""
        if not self.alive:
            raise Unavailable(WORKER_STOPPED)
        if self.queued_reviews + len(reviews) > self.max_queued_reviews:
            raise Unavailable(
                f"server busy: {self.queued_reviews} reviews queued "
                f"(max_queued_reviews {self.max_queued_reviews}); retry shortly",
                retry_after_s=1,
            )
        future = asyncio.get_running_loop().create_future()
        self.queued_reviews += len(reviews)
        self._count_queued()
        self.queue.put_nowait((reviews, future))
        # wait_for cancels the future on time-out, which marks the job for the worker to drop
        return await asyncio.wait_for(future, timeout_s)

    async def next_batch(self) -> list[Job]:
        """The next request, and those that arrive within max_wait_s, up to max_batch reviews
        (a job that would overfill the batch starts the next one)."""
        jobs = [self._held_over or await self._take()]
        self._held_over = None
        size = len(jobs[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch:
            remaining = deadline - loop.time()
            try:
                if self.queue.empty():
                    if remaining <= 0:
                        break
                    job = await asyncio.wait_for(self._take(), remaining)
                else:
                    job = self._take_nowait()
            except TimeoutError:  # asyncio has its own before 3.11, which pyproject excludes
                break
            if size + len(job[0]) > self.max_batch:
                self._held_over = job
                break
            jobs.append(job)
            size += len(job[0])
        return jobs

    async def _take(self) -> Job:
        return self._count_out(await self.queue.get())

    def _take_nowait(self) -> Job:
        return self._count_out(self.queue.get_nowait())

    def _count_out(self, job: Job) -> Job:
        self.queued_reviews -= len(job[0])
        self._count_queued()
        return job

    def _count_queued(self) -> None:
        if self.metrics:
            telemetry.QUEUED.set(self.queued_reviews)

    async def _run(self) -> None:
        while True:
            jobs = await self.next_batch()
            try:
                await self._score([job for job in jobs if not job[1].done()])
            except Exception:  # the worker outlives any batch; its requests get the error
                logger.exception("prediction batch failed")

    async def _score(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        reviews = [review for job, _ in jobs for review in job]
        if self.metrics:
            telemetry.BATCH_SIZE.observe(len(reviews))
        try:
            results = await asyncio.to_thread(self.predictor.predict, reviews, self.threshold)
        except Exception as error:  # noqa: BLE001 - handed to every waiting request
            _settle(jobs, error=error)
            raise
        except BaseException:  # the worker itself is ending (cancelled)
            _settle(jobs, error=Unavailable(WORKER_STOPPED))
            raise
        _settle(jobs, results=results)

    def _fail_waiting(self, worker: asyncio.Task) -> None:
        """Once the worker has ended, for whatever reason, nobody waits for it in vain."""
        if not worker.cancelled() and worker.exception() is not None:
            logger.error("prediction worker ended", exc_info=worker.exception())
        waiting = [self._held_over] if self._held_over else []
        self._held_over = None
        while not self.queue.empty():
            waiting.append(self._take_nowait())
        _settle(waiting, error=Unavailable(WORKER_STOPPED))

    async def close(self) -> None:
        """Stop the worker; requests still waiting fail with Unavailable."""
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker
        self._fail_waiting(self.worker)


def _settle(
    jobs: list[Job], results: list | None = None, error: BaseException | None = None
) -> None:
    """Hand each job its slice of ``results`` (or ``error``), skipping callers that left."""
    offset = 0
    for reviews, future in jobs:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(results[offset : offset + len(reviews)])
        offset += len(reviews)


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over the limit on every route, without reading them
    whole; uploads to the mounted UI are refused (it has no file input)."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if route_path(scope).startswith(UI_UPLOAD_PATH):
            detail = "file uploads are not accepted: the UI has no file input"
            await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            response = JSONResponse({"detail": "invalid Content-Length header"}, status_code=400)
            await response(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        received, rejected = 0, False

        async def counting_receive() -> dict:
            nonlocal received, rejected
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes and not rejected:
                # Answer 413 now and tell the app the client left, so it stops reading.
                rejected = True
                await self._reject(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, scope: dict, receive: Callable, send: Callable) -> None:
        detail = f"request body over {self.max_bytes} bytes"
        # The Open Inference Protocol's clients read errors from an "error" key
        key = "error" if route_path(scope).startswith(open_inference.PREFIX) else "detail"
        await JSONResponse({key: detail}, status_code=413)(scope, receive, send)


def route_path(scope: dict) -> str:
    """The path the app routes on: behind --root-path (a proxy prefix) ASGI servers put the
    prefix in front of scope["path"] too."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def public_error(error: Exception) -> str:
    """What users are told of a load failure; the detail (paths included) goes to the log."""
    if isinstance(error, ModelError) and "not found" in str(error):
        return "model file not found; run `dvc repro` (or `dvc pull`) first"
    if isinstance(error, ModelError) and "not the expected" in str(error):
        return "the model file's sha256 is not the one given by --model-sha256"
    return "the model could not be loaded; the server log has the details"


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """uvicorn.run keywords that follow the settings: the connection limit, the workers' ping."""
    return {
        "limit_concurrency": settings.max_connections,
        "timeout_worker_healthcheck": settings.worker_healthcheck_s,
    }


SETTINGS_VARIABLE = "IMDB_SERVE_SETTINGS"


def settings_to_environment(settings: ServerSettings) -> dict[str, str]:
    """The settings as an environment variable, for worker processes (app_from_environment)."""
    fields = dataclasses.asdict(settings)
    fields["model_path"] = str(settings.model_path)
    return {SETTINGS_VARIABLE: json.dumps(fields)}


def app_from_environment() -> FastAPI:
    """uvicorn's app factory for ``sentiment serve --workers N``: one app per worker."""
    fields = json.loads(os.environ[SETTINGS_VARIABLE])
    fields["model_path"] = Path(fields["model_path"])
    fields["warm_up_batch_sizes"] = tuple(fields["warm_up_batch_sizes"])
    log_to_stderr()
    return create_app(ServerSettings(**fields))


def load_model(state: ServingState, settings: ServerSettings) -> None:
    """Load and warm up the model into ``state``, or record why it could not be loaded."""
    try:
        predictor = Predictor.load(settings.model_path, expected_sha256=settings.model_sha256)
        predictor.warm_up(settings.warm_up_batch_sizes)  # compile now, not on first requests
        state.predictor = predictor
        source = predictor.source
        card = read_card(settings.model_path, source.sha256, source.size)
        state.card = {**card, "kernel": predictor.kernel}
        if settings.metrics:
            telemetry.model_loaded(card.get("sha256", "unknown"), predictor.kernel)
        # The loaded TensorFlow/Keras objects never die; without this every full garbage
        # collection walks them all (tens of ms), and request traffic triggers many.
        gc.collect()
        gc.freeze()
    except Exception as error:  # noqa: BLE001 - reported by /health and /ready
        logger.exception("cannot load the model %s", settings.model_path)
        state.error = public_error(error)


def create_app(settings: ServerSettings = ServerSettings()) -> FastAPI:  # noqa: B008
    """The API; with settings.ui, the Gradio UI is mounted at /ui."""
    state = ServingState()
    app = FastAPI(
        title="IMDB sentiment",
        description="Positive/negative sentiment of movie reviews, from the DVC-trained LSTM.",
        lifespan=_lifespan(state, settings),
    )
    app.state.serving = state  # for tests and operators: the predictor, card and batcher
    _add_error_handlers(app)

    @app.get("/health")
    async def health() -> dict:
        if state.serving:
            status, error = "ok", None
        elif state.batcher is not None or state.error:
            status, error = "error", state.unavailable_reason()
        else:
            status, error = "loading", None
        return {"status": status, "model": state.card, "error": error, "pid": os.getpid()}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if state.serving:
            return JSONResponse({"ready": True})
        reason = state.unavailable_reason()
        return JSONResponse({"ready": False, "error": reason}, status_code=503)

    if settings.metrics:

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            """Prometheus' text format: requests, latency, batch sizes, queue, refusals, model."""
            return Response(telemetry.exposition(), media_type=telemetry.CONTENT_TYPE)

    _add_prediction_routes(app, state, settings)
    if settings.ui:
        from imdb_sentiment.serving.ui import mount_ui

        app = mount_ui(app, state, settings, UI_PATH)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: the 413s and 403s of BodySizeLimit get ids, log lines, metrics.
    paths = frozenset(getattr(route, "path", "") for route in app.routes)
    app.add_middleware(
        RequestLog,
        logger=access_logger(settings.access_log),
        observe=telemetry.observe_request if settings.metrics else None,
        known_paths=paths,
    )
    return app


def _lifespan(state: ServingState, settings: ServerSettings) -> Callable:
    """Load the model in a thread (``/health`` answers meanwhile), then start the batcher;
    on shutdown drain it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(asyncio.to_thread(load_model, state, settings))

        async def start_batcher() -> None:
            await loading
            if state.predictor is not None:
                state.batcher = MicroBatcher(
                    state.predictor,
                    settings.threshold,
                    settings.max_batch,
                    settings.batch_wait_ms / 1000,
                    settings.max_queued_reviews,
                    settings.metrics,
                )

        starter = asyncio.create_task(start_batcher())
        if not settings.serve_while_loading:
            await starter
        yield
        await starter
        if state.batcher is not None:
            await state.batcher.close()
        telemetry.process_ended(os.getpid())

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """422 naming each bad field; 400 for a body that is not UTF-8."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in item["loc"][1:]) or "body", "message": item["msg"]}
            for item in error.errors()
        ]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if isinstance(error.__cause__, UnicodeDecodeError):  # FastAPI's "error parsing the body"
            position = error.__cause__.start
            message = f"the request body is not valid UTF-8 (bad byte at offset {position})"
            return JSONResponse({"detail": [{"field": "body", "message": message}]}, 400)
        return await http_exception_handler(request, error)


def _add_prediction_routes(app: FastAPI, state: ServingState, settings: ServerSettings) -> None:
    """/predict, /predict/batch and the Open Inference Protocol's routes, all through the
    one micro-batcher."""
    Review = Annotated[
        str,
        StringConstraints(min_length=1, max_length=settings.max_text_chars),
        AfterValidator(_not_blank),
    ]

    class ReviewIn(BaseModel):
        text: Review = Field(description="one movie review")

    class BatchIn(BaseModel):
        texts: list[Review] = Field(min_length=1, max_length=settings.max_batch)

    async def predict_reviews(reviews: list[str]) -> list[Prediction] | JSONResponse:
        if not state.serving:
            return JSONResponse({"detail": state.unavailable_reason()}, status_code=503)
        try:
            return await state.batcher.predict(reviews, settings.request_timeout_s)
        except Unavailable as refusal:
            headers = {"Retry-After": str(refusal.retry_after_s)} if refusal.retry_after_s else {}
            return JSONResponse({"detail": refusal.detail}, status_code=503, headers=headers)
        except TimeoutError:
            detail = f"no answer within {settings.request_timeout_s:g} s (request_timeout_s)"
            return JSONResponse({"detail": detail}, status_code=504)
        except Exception:  # noqa: BLE001 - logged by the batcher; users get no internals
            return JSONResponse(
                {"detail": "prediction failed; see the server log"}, status_code=500
            )

    @app.post("/predict", response_model=PredictionOut)
    async def predict(review: ReviewIn, request: Request) -> Any:
        setattr(request.state, REVIEWS_KEY, 1)
        result = await predict_reviews([review.text])
        return result if isinstance(result, JSONResponse) else _out(result[0])

    @app.post("/predict/batch", response_model=BatchOut)
    async def predict_batch(batch: BatchIn, request: Request) -> Any:
        setattr(request.state, REVIEWS_KEY, len(batch.texts))
        result = await predict_reviews(batch.texts)
        if isinstance(result, JSONResponse):
            return result
        return {"predictions": [_out(p) for p in result]}

    open_inference.add_routes(
        app,
        predict_reviews,
        lambda: state.serving,
        lambda: (state.card or {}).get("sha256"),
        settings.max_batch,
        settings.max_text_chars,
    )


def _out(prediction: Prediction) -> dict:
    return {
        "label": prediction.label,
        "probability_positive": prediction.probability_positive,
        "confidence": prediction.confidence,
        "known_words": prediction.known_words,
        "warning": NO_KNOWN_WORDS if prediction.known_words == 0 else None,
    }
