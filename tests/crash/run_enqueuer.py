"""A process that races other processes to enqueue under one deduplication ID.

``python -m tests.crash.run_enqueuer URL QUEUE WORKFLOW DEDUP_ID THREADS GO_FILE`` prints
``ready``, waits for GO_FILE to exist, enqueues from THREADS threads at once, and prints a JSON
line ``{"ok": [workflow IDs], "conflicts": n, "errors": [...]}``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from durable_core import Client
from durable_core.errors import DeduplicationConflict


def main() -> None:
    url, queue, workflow, dedup_id, threads, go_file = sys.argv[1:7]
    client = Client(url)
    ok: list[str] = []
    conflicts: list[str] = []
    errors: list[str] = []
    barrier = threading.Barrier(int(threads))

    def enqueue() -> None:
        barrier.wait()
        try:
            handle = client.enqueue(queue, workflow, 0.0, deduplication_id=dedup_id)
            ok.append(handle.workflow_id)
        except DeduplicationConflict as exc:
            conflicts.append(str(exc))
        except Exception as exc:  # reported, and the test fails on it
            errors.append(f"{type(exc).__name__}: {exc}")

    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    workers = [threading.Thread(target=enqueue) for _ in range(int(threads))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    client.close()
    print(json.dumps({"ok": ok, "conflicts": len(conflicts), "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
