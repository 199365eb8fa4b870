"""A disposable PostgreSQL cluster for fault tests: ``initdb`` into a temporary folder, a free
port on 127.0.0.1, its Unix socket in that folder, stopped and removed afterwards.

Fault tests stop, kill, freeze and exhaust this cluster, never the machine's server: the
suite must not touch a server it did not start. A cluster whose owning test process died
without cleaning up (SIGKILL of pytest) is stopped and removed by the next one
(:func:`reap_orphans`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.processes import free_port

PREFIX = "faultlab-pg-"
OWNER_FILE = "owner.pid"


def pg_bindir() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` live (newest installed version)."""
    env = os.environ.get("FAULTLAB_PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")


def _run_as() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Cluster:
    """One throwaway PostgreSQL server. ``start``/``stop``/``restart`` are the faults;
    :meth:`destroy` removes it for good."""

    def __init__(self, max_connections: int = 100, settings: dict[str, str] | None = None):
        self.bindir = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.datadir = self.root / "data"
        self.socket_dir = self.root
        self.logfile = self.root / "server.log"
        self.port = free_port()
        self.max_connections = max_connections
        self.settings = {
            # A test server: durability against an OS crash is not under test (the processes
            # die, the machine does not), so fsync is off; commits stay synchronous.
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": str(max_connections),
            "listen_addresses": "'127.0.0.1'",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)
        self._initdb()

    # -- lifecycle --------------------------------------------------------------------------

    def _initdb(self) -> None:
        subprocess.run(
            [
                *_run_as(),
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],  # fmt: skip
            check=True,
            capture_output=True,
            timeout=120,
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# faultlab\n")
            for key, value in self.settings.items():
                conf.write(f"{key} = {value}\n")
            conf.write(f"port = {self.port}\n")
            conf.write(f"unix_socket_directories = '{self.socket_dir}'\n")

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*_run_as(), str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl {' '.join(args)} failed ({result.returncode}): {result.stderr}\n"
                + self.log_tail()
            )

    def start(self) -> float:
        """Start the server and wait until it accepts connections; returns seconds taken."""
        started = time.monotonic()
        if not self.is_up():
            self._pg_ctl("-l", str(self.logfile), "-w", "-t", "60", "start")
            self.wait_up()
        return time.monotonic() - started

    def stop(self, mode: str = "fast") -> float:
        """Stop the server: ``fast`` rolls back open transactions and closes connections,
        ``immediate`` kills every server process at once (crash recovery at the next start).
        Returns seconds taken."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode must be smart, fast or immediate, not {mode!r}")
        started = time.monotonic()
        if self.server_pid() is not None:
            self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")
        return time.monotonic() - started

    def restart(self, mode: str = "fast") -> float:
        """Stop and start again; returns how long the server was unreachable, at most."""
        started = time.monotonic()
        try:
            self.stop(mode)
        finally:
            self.start()
        return time.monotonic() - started

    @contextlib.contextmanager
    def down(self, mode: str = "fast") -> Iterator[None]:
        """The server is stopped inside the block and running again after it, whatever
        happens inside."""
        self.stop(mode)
        try:
            yield
        finally:
            self.start()

    def destroy(self) -> None:
        """Stop the server (immediate: nothing here is worth a clean shutdown) and delete its
        folder."""
        with contextlib.suppress(Exception):
            if self.server_pid() is not None:
                self._pg_ctl("-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- state ------------------------------------------------------------------------------

    def server_pid(self) -> int | None:
        """The postmaster's pid, when it runs."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"faultlab PostgreSQL not up after {timeout}s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    # -- databases --------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", port: int | None = None) -> str:
        """A URL for a database of this cluster (``port``: e.g. a proxy's, in front of it)."""
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{dbname}"

    def admin(self) -> psycopg.Connection:
        """An autocommit superuser connection, straight to the server (never through a proxy)."""
        return psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reap_orphans() -> list[str]:
    """Stop and remove clusters left behind by test processes that died (their owner pid is
    gone). Clusters of live test processes (other engineers' runs) are left alone."""
    reaped = []
    for root in glob.glob(os.path.join(tempfile.gettempdir(), PREFIX + "*")):
        try:
            owner = int(Path(root, OWNER_FILE).read_text())
        except (FileNotFoundError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        datadir = Path(root, "data")
        if (datadir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                subprocess.run(
                    [
                        *_run_as(),
                        str(pg_bindir() / "pg_ctl"),
                        "-D",
                        str(datadir),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],  # fmt: skip
                    capture_output=True,
                    timeout=40,
                )
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(root)
    return reaped
