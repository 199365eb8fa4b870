"""Print the fault table of docs/guarantees.md from the counts the last fault runs left in
test-artifacts/faults.json: ``python -m tests.chaos.report``."""

from __future__ import annotations

import json
import sys

from tests.chaos.scenario import ARTIFACT


def main() -> None:
    runs = json.loads(ARTIFACT.read_text())
    print(
        "| fault | workflows not SUCCESS | duplicate `@transaction` effects "
        "| plain-step re-runs (explained by a kill/freeze) | unexplained re-runs "
        "| workflows run by several processes | run (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in sorted(runs):
        c = runs[name]
        explained = c["plain_reruns"] - c["unexplained_plain_reruns"]
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(c["statuses"].items()) if s != "SUCCESS")
        print(
            f"| {name} | {c['not_success']}{f' ({statuses})' if statuses else ''} "
            f"| {c['duplicate_effects']} | {c['plain_reruns']} ({explained}) "
            f"| {c['unexplained_plain_reruns']} "
            f"| {c['detail'].get('workflows_run_by_several_processes', '')} | {c['seconds']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
