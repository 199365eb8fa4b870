"""``python -m benchmarks``: run every workload on every system and backend, print the table.

For each backend the floor is measured first; then, workload by workload, each system runs
in its own subprocess (:mod:`benchmarks.worker`) on a freshly created database. Running the
systems back to back per workload, rather than all of one system then all of the other,
keeps slow drifts of a noisy machine from favouring one side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import databases, report
from benchmarks.config import BACKENDS, PG_DATABASES, SYSTEMS, WORKLOADS, sizes_for

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument(
        "--workload",
        action="append",
        choices=[*WORKLOADS, "all"],
        help="workload to run (repeatable; default all)",
    )
    parser.add_argument(
        "--system",
        action="append",
        choices=list(SYSTEMS),
        help="system to run (repeatable; default both)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per measurement (default 900, quick 300)",
    )
    parser.add_argument(
        "--dbos-poll",
        type=float,
        default=None,
        metavar="SECONDS",
        help="lower DBOS's queue and SQLite-notification polling intervals (default: DBOS's 1 s)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    return parser.parse_args(argv)


def _selected(values: list[str] | None, universe: tuple[str, ...]) -> list[str]:
    if not values or "all" in values:
        return list(universe)
    return [v for v in universe if v in values]


def _run_worker(
    *,
    system: str,
    backend: str,
    workload: str,
    url: str,
    quick: bool,
    timeout: float,
    log_dir: Path,
) -> dict[str, Any]:
    """Run one measurement subprocess; its output goes to a log file, its record comes back."""
    log_path = log_dir / f"{backend}-{workload}-{system}.log"
    fd, out_path = tempfile.mkstemp(prefix="bench-", suffix=".json")
    os.close(fd)
    command = [
        sys.executable, "-m", "benchmarks.worker",
        "--system", system, "--backend", backend, "--workload", workload,
        "--database-url", url, "--out", out_path,
    ]  # fmt: skip
    if quick:
        command.append("--quick")
    started = time.perf_counter()
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)  # our own child's session only
                proc.wait()
                return _failure(
                    system, backend, workload, f"timed out after {timeout:.0f}s", log_path
                )
        try:
            with open(out_path, encoding="utf-8") as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            return _failure(system, backend, workload, f"exit code {proc.returncode}", log_path)
    finally:
        os.unlink(out_path)
    record["log"] = str(log_path.relative_to(REPO_ROOT))
    record["wall_seconds"] = round(time.perf_counter() - started, 2)
    if record.get("error"):
        _print_log_tail(log_path)
    return record


def _failure(
    system: str, backend: str, workload: str, error: str, log_path: Path
) -> dict[str, Any]:
    _print_log_tail(log_path)
    return {
        "system": system, "backend": backend, "workload": workload,
        "metrics": [], "error": error, "log": str(log_path.relative_to(REPO_ROOT)),
    }  # fmt: skip


def _print_log_tail(log_path: Path, lines: int = 15) -> None:
    try:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    for line in tail:
        print(f"    | {line}", file=sys.stderr)


def _database_for(backend: str, system: str, sqlite_dir: str) -> str:
    if backend == "postgres":
        return databases.recreate_postgres(PG_DATABASES[system])
    return databases.fresh_sqlite(sqlite_dir, f"bench_{system}")


def _progress(record: dict[str, Any]) -> None:
    status = "ERROR " + str(record["error"]).splitlines()[0] if record.get("error") else "ok"
    seconds = record.get("wall_seconds", "?")
    print(
        f"  {record['backend']:<8} {record['workload']:<10} {record['system']:<7} {seconds}s  {status}",
        file=sys.stderr,
        flush=True,
    )


def _source_digest(package: Path) -> str | None:
    """Digest of a package's Python sources: which engine build produced these numbers,
    even when it was measured from uncommitted work."""
    files = sorted(package.rglob("*.py"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _environment(backends: list[str], quick: bool) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    env: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": commit or None,
        "durable_core_digest": _source_digest(REPO_ROOT / "durable_core"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        # A busy machine (tests running beside the benchmark) shows here first.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "sizes": sizes_for(quick).as_dict(),
        "quick": quick,
        "dbos_poll_override": os.environ.get("BENCH_DBOS_POLL"),
    }
    if "postgres" in backends:
        env["postgres"] = databases.describe_postgres()
    if "sqlite" in backends:
        env["sqlite"] = databases.describe_sqlite()
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dbos_poll is not None:
        os.environ["BENCH_DBOS_POLL"] = str(args.dbos_poll)  # read by the DBOS adapter
    backends = _selected(None if args.backend == "all" else [args.backend], BACKENDS)
    workloads = _selected(args.workload, WORKLOADS)
    systems = _selected(args.system, SYSTEMS)
    timeout = args.timeout or (300.0 if args.quick else 900.0)
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    sqlite_dir = tempfile.mkdtemp(prefix="durable-bench-")

    environment = _environment(backends, args.quick)
    records: list[dict[str, Any]] = []
    common = {"quick": args.quick, "timeout": timeout, "log_dir": log_dir}
    try:
        for backend in backends:
            floor_url = _database_for(backend, "floor", sqlite_dir)
            record = _run_worker(
                system="floor", backend=backend, workload="floor", url=floor_url, **common
            )
            records.append(record)
            _progress(record)
            for workload in workloads:
                for system in systems:
                    url = _database_for(backend, system, sqlite_dir)
                    record = _run_worker(
                        system=system, backend=backend, workload=workload, url=url, **common
                    )
                    records.append(record)
                    _progress(record)
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)
        if "postgres" in backends:
            for name in PG_DATABASES.values():
                databases.drop_postgres(name)

    environment["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    rows = report.build_rows(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment, "records": records}
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(report.render_markdown(rows), encoding="utf-8")
    notes = [note for note, on in (("quick sizes", args.quick),) if on]
    if environment["dbos_poll_override"]:
        notes.append(f"DBOS polling {environment['dbos_poll_override']} s")
    title = "durable-workflows vs DBOS" + (f" ({', '.join(notes)})" if notes else "")
    report.print_table(rows, title)
    print(f"results: {args.out} (table: {args.out.with_suffix('.md')})")
    return 1 if any(r.get("error") for r in records) else 0
