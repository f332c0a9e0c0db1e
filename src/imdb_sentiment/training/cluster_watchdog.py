"""Ends a worker whose cluster does not come up in time (run by :mod:`distribute`).

MultiWorkerMirroredStrategy's constructor waits for every worker with no deadline, and holds
Python's GIL while it waits, so no thread of the waiting process can stop it. This separate
process (standard library only, so it starts in milliseconds) waits ``timeout`` seconds for
its stdin to close, which the worker does once the cluster is up. If it is still open, it
names the workers that do not listen, and kills the worker, which has written nothing yet.

Usage: python -m imdb_sentiment.training.cluster_watchdog PID TIMEOUT STAGE ADDRESS...
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys


def listens(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    pid, timeout, stage, addresses = int(argv[0]), float(argv[1]), argv[2], argv[3:]
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready:  # the worker closed our stdin (cluster up) or died: nothing to do
        return 0
    missing = [address for address in addresses if not listens(address)] or addresses
    print(
        f"{stage}: error: cannot reach the worker at {', '.join(missing)} (named in TF_CONFIG)"
        f" within {timeout:g} s (IMDB_CLUSTER_TIMEOUT_S); nothing was written",
        file=sys.stderr,
        flush=True,
    )
    os.kill(pid, signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
