"""Measure serving speed: in-process latency and throughput, and the API under load.

    python bench/serving.py --model models/end_to_end.keras --reviews data/raw/test.csv

1. one review in-process (Predictor.predict), median and p99 over --single-runs calls;
2. batch prediction throughput over --batch-reviews reviews;
3. the REST API (uvicorn on 127.0.0.1, UI and access log off) under --clients concurrent
   clients, each posting single reviews to /predict, one after another; reports errors and latency
   percentiles. The load comes from wrk (Debian package `wrk`) when it is on PATH: a C client
   takes little of the two cores from the server; for --seconds. Without wrk (or with
   --load-generator httpx) an asyncio httpx client sends --requests requests (at most
   --seconds), at a cost of about as much CPU per request as the server's.
4. with --ui-clicks, the same load test again while a script clicks the UI's Analyse button
   (through Gradio's client, as the page does) on a --ui-review-words long review, over and
   over: the API's latency under UI load.
5. with --workers 1,2, the API load test again against `sentiment serve --workers N` for
   each N, one server after another, in the same run.
6. with --overhead, the API load test against a server with its JSON access log and
   Prometheus metrics on, beside the plain one of 3 (both off), alternating plain and
   instrumented --overhead-rounds times: what the observability costs (p99, requests/s).
Writes bench/serving.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def in_process(model: Path, reviews: list[str], single_runs: int, batch_reviews: int) -> dict:
    from imdb_sentiment.serving.predict import Predictor
    from imdb_sentiment.serving.serve import ServerSettings

    predictor = Predictor.load(model)
    started = time.perf_counter()
    predictor.warm_up(ServerSettings.warm_up_batch_sizes)  # as `sentiment serve` before /ready
    predictor.predict(reviews[:64])  # traces the plain graph used for larger batches
    warm_up_seconds = time.perf_counter() - started
    latencies = []
    for review in reviews[:single_runs]:
        started = time.perf_counter()
        predictor.predict([review])
        latencies.append((time.perf_counter() - started) * 1000)
    batch = reviews[:batch_reviews]
    started = time.perf_counter()
    predictor.predict(batch)
    seconds = time.perf_counter() - started
    return {
        "warm_up_seconds": round(warm_up_seconds, 1),
        "single_median_ms": round(statistics.median(latencies), 2),
        "single_p99_ms": round(percentile(latencies, 99), 2),
        "batch_reviews": len(batch),
        "batch_reviews_per_second": round(len(batch) / seconds, 1),
    }


def wrk_load_test(base: str, reviews: list[str], clients: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as bodies:
        bodies.writelines(json.dumps({"text": review}) + "\n" for review in reviews)
        bodies.flush()
        command = ["wrk", "--threads", "1", "--connections", str(clients)]
        command += ["--duration", f"{int(seconds)}s", "--timeout", "10s"]
        command += ["--script", str(REPO_ROOT / "bench/wrk_predict.lua"), base]
        environment = {**os.environ, "WRK_BODIES": bodies.name}
        output = subprocess.run(
            command, env=environment, capture_output=True, text=True, check=True
        ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return {
        "load_generator": "wrk",
        "clients": clients,
        "requests": result["requests"],
        "errors": result["errors"],
        "requests_per_second": round(result["requests"] / result["seconds"], 1),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result["max_ms"],
    }


async def httpx_load_test(
    base: str, reviews: list[str], clients: int, requests: int, limit: float
) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + limit

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < requests and time.monotonic() < deadline:
            review = reviews[sent % len(reviews)]
            sent += 1
            started = time.perf_counter()
            try:
                response = await client.post(f"{base}/predict", json={"text": review})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok

    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_connections=clients)
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return {
        "load_generator": "httpx",
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }


@contextmanager
def ui_clicker(base: str, review: str) -> Iterator[dict]:
    """Click Analyse on ``review`` again and again until the block ends; yields the counts."""
    from gradio_client import Client

    client = Client(f"{base}/ui/", verbose=False)
    counts, stop = {"clicks": 0, "errors": 0, "seconds": []}, threading.Event()

    def click() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.predict(review, api_name="/analyse")
                counts["clicks"] += 1
                counts["seconds"].append(time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - counted, the soak goes on
                counts["errors"] += 1

    thread = threading.Thread(target=click, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(60)


def start_server(
    model: Path, ui: bool = False, workers: int = 1, instrumented: bool = False
) -> tuple[subprocess.Popen, str]:
    """``sentiment serve`` on a free port of 127.0.0.1; the access log (to nowhere) and
    /metrics only if ``instrumented``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "imdb_sentiment.serving.cli", "serve"]
    command += [] if instrumented else ["--no-access-log", "--no-metrics"]
    command += ["--model", str(model), "--port", str(port), "--workers", str(workers)]
    command += [] if ui else ["--no-ui"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not become ready in 120 s")


def observability_overhead(model: Path, load_test, rounds: int) -> dict:
    """The API load test with the access log and metrics off, then on, ``rounds`` times in
    turn (so that drift of the machine falls on both); the ratios of their medians."""
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(rounds):
        for name in runs:
            server, base = start_server(model, instrumented=name == "on")
            try:
                runs[name].append(load_test(base))
            finally:
                server.terminate()
                server.wait(30)
    median = {
        name: {
            k: statistics.median(r[k] for r in results) for k in ("p99_ms", "requests_per_second")
        }
        for name, results in runs.items()
    }
    return {
        "runs": runs,
        "p99_ratio": round(median["on"]["p99_ms"] / median["off"]["p99_ms"], 3),
        "throughput_ratio": round(
            median["on"]["requests_per_second"] / median["off"]["requests_per_second"], 3
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models/end_to_end.keras")
    parser.add_argument("--reviews", type=Path, default=REPO_ROOT / "data/raw/test.csv")
    parser.add_argument("--single-runs", type=int, default=300)
    parser.add_argument("--batch-reviews", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30, help="load test length")
    parser.add_argument(
        "--load-generator",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
    )
    parser.add_argument("--ui-clicks", action="store_true", help="repeat under UI clicks")
    parser.add_argument("--ui-review-words", type=int, default=600)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        help="also repeat the API load test with these worker counts, for example 1,2",
    )
    parser.add_argument("--overhead", action="store_true", help="access log + metrics vs off")
    parser.add_argument("--overhead-rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/serving.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    table = pd.read_csv(args.reviews, usecols=["text"], keep_default_na=False)
    reviews = table["text"].sample(frac=1.0, random_state=0).tolist()
    report = {"model": str(args.model), "cores": os.cpu_count()}
    report["in_process"] = in_process(args.model, reviews, args.single_runs, args.batch_reviews)

    def load_test(base: str) -> dict:
        if args.load_generator == "wrk":
            return wrk_load_test(base, reviews, args.clients, args.seconds)
        return asyncio.run(
            httpx_load_test(base, reviews, args.clients, args.requests, args.seconds)
        )

    server, base = start_server(args.model, ui=args.ui_clicks)
    try:
        report["api"] = load_test(base)
        if args.ui_clicks:
            long_review = " ".join(" ".join(reviews[:50]).split()[: args.ui_review_words])
            with ui_clicker(base, long_review) as clicks:
                report["api_with_ui_clicks"] = load_test(base)
            seconds = clicks.pop("seconds")
            clicks["median_click_seconds"] = (
                round(statistics.median(seconds), 2) if seconds else None
            )
            report["api_with_ui_clicks"]["ui"] = {**clicks, "review_words": args.ui_review_words}
    finally:
        server.terminate()
        server.wait(30)
    for workers in args.workers or []:
        server, base = start_server(args.model, workers=workers)
        try:
            report[f"api_{workers}_workers"] = load_test(base)
        finally:
            server.terminate()
            server.wait(60)
    if args.overhead:
        report["overhead"] = observability_overhead(args.model, load_test, args.overhead_rounds)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    ip = report["in_process"]
    rows = [
        ("model load and warm-up", f"{ip['warm_up_seconds']} s"),
        (
            "one review in-process, median / p99",
            f"{ip['single_median_ms']} / {ip['single_p99_ms']} ms",
        ),
        (
            f"batch prediction, {ip['batch_reviews']} reviews",
            f"{ip['batch_reviews_per_second']} reviews/s",
        ),
    ]
    titles = [("api", "API"), ("api_with_ui_clicks", "API under UI clicks")]
    titles += [(f"api_{n}_workers", f"API, {n} workers") for n in args.workers or []]
    for name, title in titles:
        if name in report:
            api = report[name]
            rows.append(
                (
                    f"{title}, {api['clients']} clients ({api['load_generator']}), "
                    f"{api['requests']} requests",
                    f"p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms, {api['errors']} errors, "
                    f"{api['requests_per_second']} req/s",
                )
            )
    if "api_with_ui_clicks" in report:
        ui = report["api_with_ui_clicks"]["ui"]
        rows.append(
            (
                f"UI clicks meanwhile ({ui['review_words']}-word review)",
                f"{ui['clicks']} clicks, {ui['errors']} errors, "
                f"median {ui['median_click_seconds']} s",
            )
        )
    if "overhead" in report:
        cost = report["overhead"]
        rows.append(
            (
                "access log + metrics on / off (medians of the rounds)",
                f"p99 x{cost['p99_ratio']}, requests/s x{cost['throughput_ratio']}",
            )
        )
    print("| measure | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
