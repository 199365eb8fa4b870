"""Database passwords never appear in logs, errors or the CLI's output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from durable_core import Engine
from durable_core.wakeups import Notifier, PostgresListener

SECRET = "s3cr3t-Hunter2"
# Nothing listens on port 1: every connection attempt fails.
DEAD_URL = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"


def full_text(exc: BaseException) -> str:
    """The exception, its repr and every exception chained to it."""
    parts = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [str(exc), repr(exc), repr(exc.args)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_engine_that_cannot_connect_hides_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    engine = Engine(DEAD_URL, pool_size=1)
    assert SECRET not in repr(engine)
    with pytest.raises(Exception) as info:
        engine.launch()
    assert SECRET not in full_text(info.value)
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


def test_engine_with_password_logs_only_the_redacted_url(caplog):
    """PostgreSQL here trusts local connections, so the password is ignored but present."""
    from tests.conftest import drop_postgres_schema, make_postgres_url

    url, schema = make_postgres_url()
    url = url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
    caplog.set_level(logging.DEBUG)
    try:
        with Engine(url, run_scheduler=False) as engine:
            assert SECRET not in repr(engine)
            assert engine.list_workflows() == []
    finally:
        drop_postgres_schema(schema)
    assert "launched" in caplog.text
    assert SECRET not in caplog.text


def test_listener_reconnect_warnings_hide_the_password(caplog):
    caplog.set_level(logging.DEBUG, logger="durable_core")
    listener = PostgresListener(f"{DEAD_URL}?connect_timeout=1", Notifier(), "test")
    listener._thread.start()  # start() would wait for the first connection
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum("reconnecting" in r.getMessage() for r in caplog.records) >= 2:
                break
            time.sleep(0.05)
    finally:
        listener.stop()
    assert sum("reconnecting" in r.getMessage() for r in caplog.records) >= 2
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "args",
    [["workflows", "list"], ["migrate"], ["queues"]],
    ids=["list", "migrate", "queues"],
)
def test_cli_hides_the_password(args):
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "durable_core", "--database-url", DEAD_URL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0
    assert done.stderr.strip(), "the failure is reported"
    assert SECRET not in done.stdout + done.stderr
    env["DURABLE_DATABASE_URL"] = DEAD_URL
    done = subprocess.run(
        [sys.executable, "-m", "durable_core", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0 and SECRET not in done.stdout + done.stderr


# Passwords that broke the old pattern-based redaction: '/' (printed whole), '@' (leaked the
# part after it), '?', a quote, and passwords given as parameters.
HARD_PASSWORDS = [
    ("postgresql://postgres:Hunter2/s3cr3t@127.0.0.1:1/test", "Hunter2/s3cr3t"),
    ("postgresql://postgres:p@ssHunter2@127.0.0.1:1/test", "ssHunter2"),
    ("postgresql://postgres:Hunter2?x=s3cr3t@127.0.0.1:1/test", "Hunter2?x=s3cr3t"),
    ("postgresql://postgres:Hunter2'q@127.0.0.1:1/test", "Hunter2'q"),
    ("postgresql://postgres@127.0.0.1:1/test?password=Hunter2secret", "Hunter2secret"),
    (
        "postgresql://postgres@127.0.0.1:1/test?sslmode=disable&password=Hunter2secret",
        "Hunter2secret",
    ),
]


@pytest.mark.parametrize(("url", "secret"), HARD_PASSWORDS, ids=lambda v: v[-16:])
def test_redaction_parses_then_hides_the_whole_password(url, secret):
    from durable_core.store import parse_database_url, redact

    assert secret not in redact(url)
    assert secret not in redact(f"could not connect to {url!r}: refused")
    assert "127.0.0.1" in redact(url)  # the rest stays readable
    try:
        parsed = parse_database_url(url)
    except Exception as exc:  # a '/' in a password is not a valid URL: a clean error
        assert secret not in full_text(exc) and "percent-encode" in str(exc)
        return
    assert secret not in parsed.redacted and secret not in repr(parsed.redacted)


@pytest.mark.parametrize(("url", "secret"), HARD_PASSWORDS, ids=lambda v: v[-16:])
def test_engine_and_cli_hide_hard_passwords(url, secret, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as info:
        engine = Engine(url, pool_size=1)
        assert secret not in repr(engine)
        engine.launch()
    assert secret not in full_text(info.value)
    assert secret not in caplog.text
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "durable_core", "--database-url", url, "workflows", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0 and secret not in done.stdout + done.stderr


def test_the_libpq_unix_socket_form_works():
    """``postgresql:///db?host=/path`` lost its '//' (became postgresql:/db) and failed."""
    from urllib.parse import quote

    from tests.conftest import drop_postgres_schema, make_postgres_url

    socket_dir = "/var/run/postgresql"
    assert os.path.exists(f"{socket_dir}/.s.PGSQL.5432"), "the local server's socket"
    _, schema = make_postgres_url()
    url = (
        f"postgresql:///test?host={quote(socket_dir, safe='')}&user=postgres"
        f"&options={quote(f'-csearch_path={schema}')}"
    )
    try:
        with Engine(url, run_scheduler=False) as engine:
            assert engine.list_workflows() == []
            with engine.store.connection() as conn:
                assert conn.execute("SELECT inet_server_addr()").fetchone()[0] is None  # a socket
        from durable_core import Client

        with Client(url) as client:
            assert client.list_workflows() == []
    finally:
        drop_postgres_schema(schema)
