"""A bounded soak of the served API and UI, on 127.0.0.1 only.

    python bench/soak.py --model models/end_to_end.keras --reviews data/raw/test.csv --minutes 10

`sentiment serve` (API and UI) in a subprocess; --clients asyncio clients for --minutes (and at
most --max-requests requests), each sending one review to /predict or, one time in five, eight
to /predict/batch; every 25th request of a client gives up after 2 ms (a cancelled or timed-out
client). Meanwhile a script clicks the UI's Analyse on a long review, over and over. Per minute
it records requests, errors (a non-200 answer or a failed connection, given-up requests apart),
p50/p99 latency and the server's resident memory. Writes bench/soak.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.serving import start_server, ui_clicker  # noqa: E402

GIVE_UP_EVERY = 25
GIVE_UP_AFTER_S = 0.002
RSS_GROWTH_BOUND_MB = 100  # first minute to last: more would be a leak, not warm-up


def server_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


class Minutes:
    """Latencies, requests, errors and given-up requests, one bucket per minute."""

    def __init__(self, minutes: float) -> None:
        self.started = time.monotonic()
        self.last = max(math.ceil(minutes) - 1, 0)  # requests still in flight at the end count here
        self.buckets: list[dict] = []

    def bucket(self) -> dict:
        minute = min(int((time.monotonic() - self.started) // 60), self.last)
        while len(self.buckets) <= minute:
            self.buckets.append({"latencies_ms": [], "errors": 0, "given_up": 0})
        return self.buckets[minute]


async def client_loop(
    client: httpx.AsyncClient, base: str, reviews: list[str], minutes: Minutes, budget: dict
) -> None:
    rng = random.Random(len(budget["clients"]))
    budget["clients"].append(1)
    sent = 0
    while budget["left"] > 0 and time.monotonic() < budget["deadline"]:
        budget["left"] -= 1
        sent += 1
        batch = rng.random() < 0.2
        chosen = rng.choices(reviews, k=8 if batch else 1)
        path, body = (
            ("/predict/batch", {"texts": chosen}) if batch else ("/predict", {"text": chosen[0]})
        )
        gives_up = sent % GIVE_UP_EVERY == 0
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{base}{path}", json=body, timeout=GIVE_UP_AFTER_S if gives_up else 30
            )
            ok = response.status_code == 200
        except httpx.TimeoutException:
            if gives_up:
                minutes.bucket()["given_up"] += 1
                continue
            ok = False
        except httpx.HTTPError:
            ok = False
        bucket = minutes.bucket()
        bucket["latencies_ms"].append((time.perf_counter() - started) * 1000)
        bucket["errors"] += not ok


async def sample_memory(pid: int, minutes: Minutes, deadline: float) -> None:
    while time.monotonic() < deadline:
        minutes.bucket()["rss_mb"] = server_rss_mb(pid)
        await asyncio.sleep(5)


async def soak(base: str, pid: int, reviews: list[str], args: argparse.Namespace) -> Minutes:
    minutes = Minutes(args.minutes)
    deadline = time.monotonic() + args.minutes * 60
    budget = {"left": args.max_requests, "deadline": deadline, "clients": []}
    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(limits=limits) as client:
        memory = asyncio.create_task(sample_memory(pid, minutes, deadline))
        await asyncio.gather(
            *(client_loop(client, base, reviews, minutes, budget) for _ in range(args.clients))
        )
        memory.cancel()
    return minutes


def summarise(minutes: Minutes) -> list[dict]:
    rows = []
    for number, bucket in enumerate(minutes.buckets, start=1):
        latencies = np.asarray(bucket["latencies_ms"] or [np.nan])
        rows.append(
            {
                "minute": number,
                "requests": len(bucket["latencies_ms"]),
                "errors": bucket["errors"],
                "given_up": bucket["given_up"],
                "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                "p99_ms": round(float(np.percentile(latencies, 99)), 1),
                "rss_mb": bucket.get("rss_mb"),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models/end_to_end.keras")
    parser.add_argument("--reviews", type=Path, default=REPO_ROOT / "data/raw/test.csv")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--ui-review-words", type=int, default=600)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/soak.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    table = pd.read_csv(args.reviews, usecols=["text"], keep_default_na=False)
    reviews = table["text"].sample(n=min(len(table), 5000), random_state=0).tolist()
    long_review = " ".join(" ".join(reviews[:50]).split()[: args.ui_review_words])
    server, base = start_server(args.model, ui=True)
    try:
        with ui_clicker(base, long_review) as clicks:
            minutes = asyncio.run(soak(base, server.pid, reviews, args))
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(30)
    rows = summarise(minutes)
    memory = [row["rss_mb"] for row in rows if row["rss_mb"] is not None]
    report = {
        "command": " ".join(sys.argv),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "clients": args.clients,
        "minutes": rows,
        "errors": sum(row["errors"] for row in rows),
        "given_up": sum(row["given_up"] for row in rows),
        "ui_clicks": clicks["clicks"],
        "ui_errors": clicks["errors"],
        "server_alive_at_end": alive,
        "rss_growth_mb": round(memory[-1] - memory[0], 1) if memory else None,
        "rss_growth_bound_mb": RSS_GROWTH_BOUND_MB,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| minute | requests | errors | given up | p50 ms | p99 ms | server RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['minute']} | {row['requests']} | {row['errors']} | {row['given_up']} "
            f"| {row['p50_ms']} | {row['p99_ms']} | {row['rss_mb']} |"
        )
    print(
        f"\nerrors {report['errors']}, UI clicks {report['ui_clicks']} "
        f"({report['ui_errors']} errors), RSS growth {report['rss_growth_mb']} MB "
        f"(bound {RSS_GROWTH_BOUND_MB})"
    )
    healthy = report["errors"] == 0 and report["ui_errors"] == 0 and alive
    return 0 if healthy and (report["rss_growth_mb"] or 0) <= RSS_GROWTH_BOUND_MB else 1


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
