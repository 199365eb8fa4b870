"""No test may stop, start or reconfigure a server it did not create: faults go to the
throwaway cluster of tests.faultlab, never to the machine's PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# Tools that act on the machine's clusters, and statements that change a server for everyone.
# Spelled in pieces so that this file, which only looks for them, holds none of them itself
# (a plain text search for them then finds real uses only).
_WORDS = ("pg_ctl" + "cluster", "system" + r"ctl\s+\S*\s*postgres", "ALTER" + r"\s+SYSTEM")
FORBIDDEN = re.compile("|".join(_WORDS), re.IGNORECASE)


def test_no_test_touches_the_machines_server():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(TESTS.parent)}:{number}: {line.strip()}")
    assert offenders == [], "use tests.faultlab's throwaway cluster instead:\n" + "\n".join(
        offenders
    )
