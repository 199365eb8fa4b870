"""Tenants in separate PostgreSQL schemas of one database never receive each other's
notifications: each schema's triggers notify a channel of their own."""

from __future__ import annotations

import threading

import psycopg

from durable_core.store import open_store, parse_database_url
from durable_core.wakeups import Notifier, PostgresListener
from tests.conftest import drop_postgres_schema, make_postgres_url

SET_EVENT = (
    "INSERT INTO durable_events (workflow_id, key, value, step_id, updated_at) "
    "VALUES (%s, 'k', NULL, NULL, 0)"
)


class Heard:
    def __init__(self, notifier: Notifier) -> None:
        self.ids: list[str] = []
        self.cond = threading.Condition()
        notifier.listeners.append(self.on)

    def on(self, kind: str, ident: str) -> None:
        with self.cond:
            self.ids.append(ident)
            self.cond.notify_all()

    def wait_for(self, ident: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: ident in self.ids, timeout=20), self.ids


def test_two_schemas_on_one_database_do_not_hear_each_other():
    tenants = [make_postgres_url() for _ in range(2)]
    listeners: list[PostgresListener] = []
    try:
        for url, _ in tenants:
            open_store(url, pool_size=1).migrate()
        heard = []
        for url, _ in tenants:
            notifier = Notifier()
            heard.append(Heard(notifier))
            listener = PostgresListener(parse_database_url(url).libpq, notifier, "tenant")
            listener.start()
            assert listener.ready.is_set()
            listeners.append(listener)
        (url_a, _), (url_b, _) = tenants
        with psycopg.connect(parse_database_url(url_b).libpq, autocommit=True) as conn:
            conn.execute(SET_EVENT, ("secret-of-b",))
        with psycopg.connect(parse_database_url(url_a).libpq, autocommit=True) as conn:
            conn.execute(SET_EVENT, ("sentinel-of-a",))
        heard[1].wait_for("secret-of-b")
        # Notifications reach a listener in commit order: once A heard its own later
        # sentinel, it would have heard B's earlier event had it been on its channel.
        heard[0].wait_for("sentinel-of-a")
        assert "secret-of-b" not in heard[0].ids
        assert "sentinel-of-a" not in heard[1].ids
    finally:
        for listener in listeners:
            listener.stop()
        for _, schema in tenants:
            drop_postgres_schema(schema)


def test_channel_names_match_the_trigger():
    """The Python and SQL spellings of the per-schema channel agree (and fit in 63 bytes)."""
    from durable_core.store.schema import notify_channel

    url, schema = make_postgres_url()
    try:
        with psycopg.connect(parse_database_url(url).libpq, autocommit=True) as conn:
            sql = "SELECT 'durable_' || left(md5(%s), 16)"
            for name in (schema, "public", "ünïcødé-tenant", "x" * 63):
                assert conn.execute(sql, (name,)).fetchone()[0] == notify_channel(name)
                assert len(notify_channel(name)) < 64
    finally:
        drop_postgres_schema(schema)


def test_queue_wake_ups_reach_only_listeners_that_want_them():
    """Before: every listener heard a 'q' wake-up per enqueued row (and per claim and finish
    of a queued workflow): a web process that only enqueues spent as much CPU on them as on
    its INSERTs. Now they come on the schema's queue channel, heard once ``listen_queues``."""
    url, schema = make_postgres_url()
    store = open_store(url, pool_size=1)
    listeners: list[PostgresListener] = []
    try:
        store.migrate()
        heard: list[Heard] = []
        for wants in (False, True):
            notifier = Notifier()
            notifier.listen_queues = wants
            heard.append(Heard(notifier))
            listener = PostgresListener(parse_database_url(url).libpq, notifier, "queues")
            listener.start()
            listeners.append(listener)
        starts_only, worker = heard
        t = store.now_ms()
        insert = (
            "INSERT INTO durable_workflows (workflow_id, name, status, queue_name, created_at, "
            "updated_at) VALUES (%s, 'n', 'ENQUEUED', %s, %s, %s)"
        )
        # The worker's listener may take up to one poll (0.2 s) to join the queue channel.
        for attempt in range(100):
            store.run(insert, (f"w{attempt}", f"probe-q{attempt}", t, t))
            with worker.cond:
                if worker.cond.wait_for(lambda a=attempt: f"probe-q{a}" in worker.ids, 0.5):
                    break
        store.run(insert, ("queued", "the-queue", t, t))
        worker.wait_for("the-queue")
        # Then a status change (the main channel): in commit order, once the starts-only
        # listener heard it, it would have heard the enqueue before it.
        store.run("UPDATE durable_workflows SET status = 'CANCELLED' WHERE workflow_id = 'queued'")
        starts_only.wait_for("queued")
        worker.wait_for("queued")
        assert not [i for i in starts_only.ids if "q" in i and i != "queued"], starts_only.ids
        assert "the-queue" not in starts_only.ids
    finally:
        for listener in listeners:
            listener.stop()
        store.close()
        drop_postgres_schema(schema)
