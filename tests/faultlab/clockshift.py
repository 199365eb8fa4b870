"""Shift one process's wall clock: ``python -m tests.faultlab.clockshift MODULE ARGS...`` runs
``python -m MODULE ARGS...`` (or ``-c CODE``) with ``time.time`` (and ``time.time_ns``) moved by the number of
seconds in ``FAULTLAB_CLOCK_SHIFT`` (positive: ahead), installed before anything else is
imported, as a host whose clock is off would be. Monotonic clocks are left alone: a skewed
host still measures intervals correctly.
"""

from __future__ import annotations

import os
import runpy
import sys
import time

ENV = "FAULTLAB_CLOCK_SHIFT"


def install(shift: float) -> None:
    """Move this process's ``time.time``/``time.time_ns`` by ``shift`` seconds."""
    if not shift:
        return
    real_time, real_time_ns = time.time, time.time_ns
    shift_ns = int(shift * 1e9)
    time.time = lambda: real_time() + shift  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() + shift_ns  # type: ignore[assignment]


def main() -> None:
    install(float(os.environ.get(ENV, "0") or 0))
    if sys.argv[1] == "-c":  # python -m tests.faultlab.clockshift -c CODE
        exec(compile(sys.argv[2], "<clockshift -c>", "exec"), {"__name__": "__main__"})
        return
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
