"""REST API (FastAPI) with the Gradio UI mounted at /ui, around one loaded Predictor.

The model loads once per process, in a background thread started at startup: /health
answers at once, /ready says 503 until the model is in. Prediction runs in a worker thread
(never on the event loop) through a micro-batcher that merges concurrent requests into one
Keras call, which is both faster and the only caller of the model.
"""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from imdb_sentiment.predict import (
    DEFAULT_MODEL,
    Prediction,
    Predictor,
    check_threshold,
    model_card,
)


@dataclass(frozen=True)
class ServerSettings:
    model_path: Path = DEFAULT_MODEL
    threshold: float = 0.5
    max_text_chars: int = 20_000
    max_batch: int = 256
    max_body_bytes: int = 2_000_000
    ui: bool = True
    batch_wait_ms: float = 2.0  # how long a micro-batch waits for concurrent requests
    # Micro-batch sizes to run once before /ready (models the LSTM kernel does not cover run
    # through XLA, which compiles a program per padded size: every one up to XLA_SPLIT_ROWS)
    warm_up_batch_sizes: tuple[int, ...] = (1, 2, 4, 8)

    def __post_init__(self) -> None:
        # Checked here, not only in the CLI: a bad limit would otherwise fail every request later
        check_threshold(self.threshold)
        for name in ("max_text_chars", "max_batch", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be at least 0, got {self.batch_wait_ms}")
        if any(size < 1 for size in self.warm_up_batch_sizes):
            raise ValueError(
                f"warm_up_batch_sizes must all be at least 1, got {self.warm_up_batch_sizes}"
            )


class PredictionOut(BaseModel):
    label: str
    probability_positive: float
    confidence: float


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


Job = tuple[list[str], asyncio.Future]


class MicroBatcher:
    """Queue predictions; one worker thread scores whatever has queued up, together.

    After the first request of a batch, it waits up to ``max_wait_s`` for more: concurrent
    clients' requests arrive over a few milliseconds, and one call for all of them costs
    little more than a call for one, while batches of one or two would queue the rest behind.
    """

    def __init__(
        self, predictor: Predictor, threshold: float, max_batch: int, max_wait_s: float = 0.002
    ) -> None:
        self.predictor, self.threshold, self.max_batch = predictor, threshold, max_batch
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def predict(self, reviews: list[str]) -> list[Prediction]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((reviews, future))
        return await future

    async def next_batch(self) -> list[Job]:
        """The next request, and those that arrive within max_wait_s, up to max_batch reviews."""
        jobs = [await self.queue.get()]
        size = len(jobs[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch:
            remaining = deadline - loop.time()
            try:
                if self.queue.empty():
                    jobs.append(await asyncio.wait_for(self.queue.get(), max(remaining, 0)))
                else:
                    jobs.append(self.queue.get_nowait())
            except TimeoutError:
                break
            size += len(jobs[-1][0])
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = await self.next_batch()
            reviews = [review for job, _ in jobs for review in job]
            try:
                results = await asyncio.to_thread(self.predictor.predict, reviews, self.threshold)
            except Exception as error:  # noqa: BLE001 - handed to every waiting request
                for _, future in jobs:
                    future.set_exception(error)
                continue
            for job, future in jobs:
                future.set_result(results[: len(job)])
                results = results[len(job) :]

    async def close(self) -> None:
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over the limit, without reading them whole."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/predict"):
            await self.app(scope, receive, send)
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
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def create_app(settings: ServerSettings = ServerSettings()) -> FastAPI:  # noqa: B008
    """The API; with settings.ui, the Gradio UI is mounted at /ui."""
    Review = Annotated[
        str,
        StringConstraints(min_length=1, max_length=settings.max_text_chars),
        AfterValidator(_not_blank),
    ]

    class ReviewIn(BaseModel):
        text: Review = Field(description="one movie review")

    class BatchIn(BaseModel):
        texts: list[Review] = Field(min_length=1, max_length=settings.max_batch)

    state: dict[str, Any] = {"predictor": None, "card": None, "error": None}

    def load() -> None:
        try:
            predictor = Predictor.load(settings.model_path)
            predictor.warm_up(settings.warm_up_batch_sizes)  # compile now, not on first requests
            state["predictor"] = predictor
            state["card"] = model_card(settings.model_path)
            # The loaded TensorFlow/Keras objects never die; without this every full garbage
            # collection walks them all (tens of ms), and request traffic triggers many.
            gc.collect()
            gc.freeze()
        except Exception as error:  # noqa: BLE001 - reported by /health and /ready
            state["error"] = str(error)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(asyncio.to_thread(load))

        async def start_batcher() -> None:
            await loading
            if state["predictor"] is not None:
                state["batcher"] = MicroBatcher(
                    state["predictor"],
                    settings.threshold,
                    settings.max_batch,
                    settings.batch_wait_ms / 1000,
                )

        starter = asyncio.create_task(start_batcher())
        yield
        await starter
        if "batcher" in state:
            await state["batcher"].close()

    app = FastAPI(
        title="IMDB sentiment",
        description="Positive/negative sentiment of movie reviews, from the DVC-trained LSTM.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in item["loc"][1:]) or "body", "message": item["msg"]}
            for item in error.errors()
        ]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.get("/health")
    async def health() -> dict:
        status = "ok" if "batcher" in state else "error" if state["error"] else "loading"
        return {"status": status, "model": state["card"], "error": state["error"]}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if "batcher" in state:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "error": state["error"]}, status_code=503)

    async def predict_reviews(reviews: list[str]) -> list[Prediction] | JSONResponse:
        if "batcher" not in state:
            detail = state["error"] or "model is loading; retry when /ready says 200"
            return JSONResponse({"detail": detail}, status_code=503)
        return await state["batcher"].predict(reviews)

    @app.post("/predict", response_model=PredictionOut)
    async def predict(review: ReviewIn) -> Any:
        result = await predict_reviews([review.text])
        return result if isinstance(result, JSONResponse) else _out(result[0])

    @app.post("/predict/batch", response_model=BatchOut)
    async def predict_batch(batch: BatchIn) -> Any:
        result = await predict_reviews(batch.texts)
        if isinstance(result, JSONResponse):
            return result
        return {"predictions": [_out(p) for p in result]}

    if settings.ui:
        from imdb_sentiment.ui import mount_ui

        app = mount_ui(app, state, settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def _out(prediction: Prediction) -> dict:
    return {
        "label": prediction.label,
        "probability_positive": prediction.probability_positive,
        "confidence": prediction.confidence,
    }
