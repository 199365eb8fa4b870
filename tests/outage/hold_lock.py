"""Hold SQLite's write lock: ``python -m tests.outage.hold_lock PATH SECONDS``. Prints
``locked`` once ``BEGIN IMMEDIATE`` succeeded, then commits after SECONDS."""

from __future__ import annotations

import sqlite3
import sys
import time


def main() -> None:
    path, seconds = sys.argv[1], float(sys.argv[2])
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(seconds)  # holding the lock is the point
    conn.execute("COMMIT")
    print("released", flush=True)


if __name__ == "__main__":
    main()
