"""``python -m benchmarks.replay_loop``: the cost of a wake-up in a (step, recv) loop.

A parked sync workflow resumes by replaying its body from the start: recorded steps return
their stored outcomes without running, so the n-th wake-up replays 2n recorded calls; a
workflow with a long history is instead held warm through its waits (``ParkingLot.hold``),
and wakes without a replay. This
runs one workflow of ``--rounds`` rounds of ``step(); recv()`` where every ``recv`` parks
(``suspend_threshold=0``), sends each message once the workflow is parked, and prints the
median time per round (send → parked again) over the first and the last 10 % of the rounds.

    python -m benchmarks.replay_loop --rounds 1000 [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from durable_core import Engine, recv, send, step, workflow


@step
def tick(i: int) -> int:
    return i


#: Rounds received so far by the running execution (code outside steps: a replay counts up
#: again from the start, so it equals i + 1 only once round i's recv has returned for real).
progress = [0]


@workflow
def looper(rounds: int) -> int:
    total = 0
    progress[0] = 0
    for i in range(rounds):
        total += tick(i)
        recv("next", timeout=600)
        progress[0] = i + 1
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_loop", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/replay.sqlite3"
    with Engine(url, executor_id="replay-bench", suspend_threshold=0.0) as engine:
        handle = engine.start_workflow(looper, args.rounds)
        wid = handle.workflow_id
        times = []
        while wid not in engine.parking.parked:
            time.sleep(0.0005)
        for i in range(args.rounds):
            t0 = time.perf_counter()
            send(wid, "go", topic="next")
            if i == args.rounds - 1:
                assert handle.result(timeout=60) == sum(range(args.rounds))
            else:
                # Woken, past this round's recv (replaying first, if it was parked), then
                # waiting (parked or held) in the next round's recv.
                while progress[0] != i + 1 or wid not in engine.parking.parked:
                    time.sleep(0.0002)
            times.append(time.perf_counter() - t0)
    tenth = max(1, args.rounds // 10)
    first, last = statistics.median(times[:tenth]), statistics.median(times[-tenth:])
    print(f"database  {engine.url.redacted}")
    print(f"rounds    {args.rounds}; total {sum(times):.1f}s")
    print(f"per round first 10%: {first * 1000:.2f} ms, last 10%: {last * 1000:.2f} ms "
          f"(x{last / first:.1f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
