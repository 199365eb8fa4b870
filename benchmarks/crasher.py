"""The process that crashes, for the recovery workload: ``python -m benchmarks.crasher
--system S --database-url URL --count N``.

It launches the system, starts N workflows that block in their second step (``BENCH_BLOCK=1``),
and once every one of them is stored as pending, kills itself with SIGKILL: no shutdown, no
cleanup, exactly what a crash leaves behind for the next process to recover.
"""

from __future__ import annotations

import argparse
import os
import signal


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crasher")
    parser.add_argument("--system", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    os.environ["BENCH_BLOCK"] = "1"
    from benchmarks.systems import load

    system = load(args.system)
    system.launch(args.database_url)
    for key in range(args.count):
        system.start_blocking(key)  # returns once the workflow is stored as pending
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
