"""The one definition of the system database schema, as versioned migrations.

Each migration is a list of statements per dialect. ``CURRENT_VERSION`` is the newest version
this code knows; a database at a higher version is refused rather than misread.
Timestamps are integer milliseconds since the epoch on both backends.
"""

from __future__ import annotations

import re

# The PostgreSQL advisory lock (any constant works) that serializes every migration of one
# database: `durable migrate`, a launching engine, Django's `migrate`, the application table.
MIGRATION_LOCK_KEY = 0x6475726162

_COMMON_V1 = [
    """CREATE TABLE durable_workflows (
        workflow_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        queue_name TEXT,
        inputs TEXT,
        output TEXT,
        error TEXT,
        executor_id TEXT,
        run_token TEXT,
        application_version TEXT,
        recovery_attempts INTEGER NOT NULL DEFAULT 0,
        max_recovery_attempts INTEGER,
        parent_workflow_id TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        deduplication_id TEXT,
        not_before BIGINT,
        timeout_ms BIGINT,
        deadline BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT
    )""",
    "CREATE INDEX durable_workflows_status_idx ON durable_workflows (status, executor_id)",
    "CREATE INDEX durable_workflows_created_idx ON durable_workflows (created_at)",
    """CREATE INDEX durable_workflows_queue_idx ON durable_workflows
        (queue_name, status, priority, created_at) WHERE queue_name IS NOT NULL""",
    """CREATE INDEX durable_workflows_queue_started_idx ON durable_workflows
        (queue_name, started_at) WHERE queue_name IS NOT NULL""",
    """CREATE INDEX durable_workflows_parent_idx ON durable_workflows (parent_workflow_id)
        WHERE parent_workflow_id IS NOT NULL""",
    """CREATE UNIQUE INDEX durable_workflows_dedup_idx ON durable_workflows
        (queue_name, deduplication_id)
        WHERE deduplication_id IS NOT NULL AND status IN ('ENQUEUED', 'PENDING')""",
    """CREATE TABLE durable_steps (
        workflow_id TEXT NOT NULL,
        step_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        output TEXT,
        error TEXT,
        child_workflow_id TEXT,
        started_at BIGINT,
        finished_at BIGINT,
        PRIMARY KEY (workflow_id, step_id)
    )""",
    """CREATE TABLE durable_events (
        workflow_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        step_id INTEGER,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (workflow_id, key)
    )""",
    """CREATE TABLE durable_event_history (
        workflow_id TEXT NOT NULL,
        step_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        PRIMARY KEY (workflow_id, step_id)
    )""",
    """CREATE TABLE durable_streams (
        workflow_id TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        value TEXT,
        is_close INTEGER NOT NULL DEFAULT 0,
        step_id INTEGER,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (workflow_id, key, seq)
    )""",
    """CREATE TABLE durable_executors (
        executor_id TEXT PRIMARY KEY,
        application_version TEXT,
        hostname TEXT,
        pid INTEGER,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
    )""",
]

_SQLITE_V1 = [
    *_COMMON_V1,
    """CREATE TABLE durable_notifications (
        message_id INTEGER PRIMARY KEY AUTOINCREMENT,
        destination_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        message TEXT,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL
    )""",
    "CREATE INDEX durable_notifications_dest_idx ON durable_notifications (destination_id, topic, message_id)",
    """CREATE UNIQUE INDEX durable_notifications_key_idx ON durable_notifications
        (destination_id, idempotency_key) WHERE idempotency_key IS NOT NULL""",
]

_POSTGRES_NOTIFY = """
CREATE OR REPLACE FUNCTION durable_notify() RETURNS trigger AS $$
DECLARE
    payload TEXT;
BEGIN
    IF TG_TABLE_NAME = 'durable_notifications' THEN
        payload := 'm:' || NEW.destination_id;
    ELSIF TG_TABLE_NAME = 'durable_events' THEN
        payload := 'e:' || NEW.workflow_id;
    ELSIF TG_TABLE_NAME = 'durable_streams' THEN
        payload := 's:' || NEW.workflow_id;
    ELSIF TG_OP = 'INSERT' THEN
        payload := 'q:' || NEW.queue_name;
    ELSE
        IF NEW.status IN ('CANCELLED', 'PENDING') THEN
            PERFORM pg_notify('durable', 'c:' || NEW.workflow_id);
        END IF;
        IF OLD.queue_name IS NOT NULL AND (OLD.status = 'PENDING' OR NEW.status = 'ENQUEUED') THEN
            PERFORM pg_notify('durable', 'q:' || OLD.queue_name);
        END IF;
        payload := 'w:' || NEW.workflow_id;
    END IF;
    IF octet_length(payload) < 7900 THEN
        PERFORM pg_notify('durable', payload);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

_POSTGRES_V1 = [
    *_COMMON_V1,
    """CREATE TABLE durable_notifications (
        message_id BIGSERIAL PRIMARY KEY,
        destination_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        message TEXT,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL
    )""",
    "CREATE INDEX durable_notifications_dest_idx ON durable_notifications (destination_id, topic, message_id)",
    """CREATE UNIQUE INDEX durable_notifications_key_idx ON durable_notifications
        (destination_id, idempotency_key) WHERE idempotency_key IS NOT NULL""",
    _POSTGRES_NOTIFY,
    """CREATE TRIGGER durable_notifications_notify AFTER INSERT ON durable_notifications
        FOR EACH ROW EXECUTE FUNCTION durable_notify()""",
    """CREATE TRIGGER durable_events_notify AFTER INSERT OR UPDATE ON durable_events
        FOR EACH ROW EXECUTE FUNCTION durable_notify()""",
    """CREATE TRIGGER durable_streams_notify AFTER INSERT ON durable_streams
        FOR EACH ROW EXECUTE FUNCTION durable_notify()""",
    """CREATE TRIGGER durable_workflows_enqueue_notify AFTER INSERT ON durable_workflows
        FOR EACH ROW WHEN (NEW.status = 'ENQUEUED') EXECUTE FUNCTION durable_notify()""",
    """CREATE TRIGGER durable_workflows_status_notify AFTER UPDATE OF status ON durable_workflows
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION durable_notify()""",
]

# Version 2: the trace context (W3C headers as JSON) of the span that started or enqueued the
# workflow, so that its executions, on another worker or after recovery, join that trace.
_V2 = ["ALTER TABLE durable_workflows ADD COLUMN trace_context TEXT"]

# Consumed messages are marked, not deleted, so a send's idempotency key keeps protecting the
# receiver after the message was received (they go with their workflow at garbage collection).
_V3 = [
    "ALTER TABLE durable_notifications ADD COLUMN consumed_at BIGINT",
    "DROP INDEX durable_notifications_dest_idx",
    """CREATE INDEX durable_notifications_pending_idx ON durable_notifications
        (destination_id, topic, message_id) WHERE consumed_at IS NULL""",
]

# Version 4: no DDL at run time, one ID rule, one NOTIFY channel per schema.
# - durable_transaction_outputs is created by migration (it used to be created lazily by the
#   first @transaction, which raced between workers on a fresh PostgreSQL database), with TEXT
#   IDs like every other table (VARCHAR(255) refused the 256-1000 byte IDs that validation
#   accepts). In the system database it serves @transaction steps whose application database
#   is the system database; a separate application database gets it from
#   ``durable migrate --app-database URL`` (see ``app_schema.py``).
# - Notifications go to a channel named after the schema of the table that fired them, so
#   tenants in separate schemas of one database never wake each other (see ``notify_channel``).
TRANSACTION_OUTPUTS_DDL = """CREATE TABLE IF NOT EXISTS durable_transaction_outputs (
    workflow_id TEXT NOT NULL,
    step_id INTEGER NOT NULL,
    output TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, step_id)
)"""
# PostgreSQL only (SQLite never enforced the length): widen a table created by an older release.
TRANSACTION_OUTPUTS_TEXT_ID = (
    "ALTER TABLE durable_transaction_outputs ALTER COLUMN workflow_id TYPE TEXT"
)

# The channel is 'durable_' and the first 16 hex digits of md5(schema name): a schema name can
# be 63 bytes, too long for a channel name with a prefix. ``notify_channel`` computes the same.
_POSTGRES_NOTIFY_V4 = """
CREATE OR REPLACE FUNCTION durable_notify() RETURNS trigger AS $$
DECLARE
    payload TEXT;
    channel TEXT := 'durable_' || left(md5(TG_TABLE_SCHEMA), 16);
BEGIN
    IF TG_TABLE_NAME = 'durable_notifications' THEN
        payload := 'm:' || NEW.destination_id;
    ELSIF TG_TABLE_NAME = 'durable_events' THEN
        payload := 'e:' || NEW.workflow_id;
    ELSIF TG_TABLE_NAME = 'durable_streams' THEN
        payload := 's:' || NEW.workflow_id;
    ELSIF TG_OP = 'INSERT' THEN
        payload := 'q:' || NEW.queue_name;
    ELSE
        IF NEW.status IN ('CANCELLED', 'PENDING') THEN
            PERFORM pg_notify(channel, 'c:' || NEW.workflow_id);
        END IF;
        IF OLD.queue_name IS NOT NULL AND (OLD.status = 'PENDING' OR NEW.status = 'ENQUEUED') THEN
            PERFORM pg_notify(channel, 'q:' || OLD.queue_name);
        END IF;
        payload := 'w:' || NEW.workflow_id;
    END IF;
    IF octet_length(payload) < 7900 THEN
        PERFORM pg_notify(channel, payload);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

_SQLITE_V4 = [TRANSACTION_OUTPUTS_DDL]
_POSTGRES_V4 = [TRANSACTION_OUTPUTS_DDL, TRANSACTION_OUTPUTS_TEXT_ID, _POSTGRES_NOTIFY_V4]

# Version 5: indexes that serve every hot statement at a million finished workflows. Partial indexes on
# a literal status hold only in-flight rows, so they stay small however long history grows, and
# they are chosen on SQLite without statistics (which guesses `status = ?` matches half the
# table). Statements name the status as a literal so the planner can match the predicate.
_V5 = [
    # The FIFO claim: the oldest ENQUEUED rows of one queue, in order, without a sort.
    """CREATE INDEX durable_workflows_claim_idx ON durable_workflows (queue_name, created_at)
        WHERE status = 'ENQUEUED'""",
    # The delayed-work poll of a queue: MIN(not_before) is the first entry.
    """CREATE INDEX durable_workflows_delayed_idx ON durable_workflows (queue_name, not_before)
        WHERE status = 'ENQUEUED' AND not_before IS NOT NULL""",
    # Deadline expiry visits only in-flight rows that have a deadline.
    """CREATE INDEX durable_workflows_deadline_idx ON durable_workflows (deadline)
        WHERE deadline IS NOT NULL AND status IN ('PENDING', 'ENQUEUED')""",
    # Recovery at launch (by executor) and adoption of orphans (by age).
    """CREATE INDEX durable_workflows_pending_idx ON durable_workflows (executor_id, created_at)
        WHERE status = 'PENDING'""",
    # Listings, newest first, by each filter, with the (created_at, workflow_id) keyset order.
    "DROP INDEX durable_workflows_status_idx",
    "DROP INDEX durable_workflows_created_idx",
    """CREATE INDEX durable_workflows_status_created_idx ON durable_workflows
        (status, created_at, workflow_id)""",
    """CREATE INDEX durable_workflows_created_idx ON durable_workflows
        (created_at, workflow_id)""",
    """CREATE INDEX durable_workflows_name_idx ON durable_workflows
        (name, created_at, workflow_id)""",
    """CREATE INDEX durable_workflows_queue_created_idx ON durable_workflows
        (queue_name, created_at, workflow_id) WHERE queue_name IS NOT NULL""",
    # Garbage collection takes the oldest finished workflows in batches. Every terminal row
    # carries finished_at; rows written before that rule get it from updated_at.
    f"""UPDATE durable_workflows SET finished_at = updated_at WHERE finished_at IS NULL
        AND status IN ({", ".join(f"'{s}'" for s in ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"))})""",
    """CREATE INDEX durable_workflows_finished_idx ON durable_workflows (finished_at)
        WHERE finished_at IS NOT NULL""",
]

# PostgreSQL plans from statistics; fresh ones after a big index change.
_POSTGRES_V5 = [*_V5, "ANALYZE durable_workflows"]

# Version 6: the requests behind HTTP Idempotency-Keys. A key is reserved with a fingerprint
# of its request (method, path, query, body) while that request runs and marked done when it
# succeeds, so a reuse with another body is refused and a retry during the first is told so.
_V6 = [
    """CREATE TABLE durable_request_keys (
        request_key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
    "CREATE INDEX durable_request_keys_updated_idx ON durable_request_keys (updated_at)",
]

# Version 7: garbage collection deletes a batch's messages (consumed ones included) through an
# index on the destination, not a scan of every stored message per batch.
_V7 = [
    "CREATE INDEX durable_notifications_destination_idx ON durable_notifications (destination_id)"
]

# Version 8: the FIFO claim index leaves out delayed rows, which are claimed once due through
# the delayed index: a backlog of not-yet-due workflows at the head of a queue is no longer
# walked by every claim.
_V8 = [
    "DROP INDEX durable_workflows_claim_idx",
    """CREATE INDEX durable_workflows_ready_idx ON durable_workflows (queue_name, created_at)
        WHERE status = 'ENQUEUED' AND not_before IS NULL""",
]

# Version 9: queues managed at run time. One row per queue: the operator's overrides (paused;
# concurrency, worker_concurrency, rate limit), which win over the code's ``Queue(...)``
# declaration until reset, and the declaration last published by a launching worker (so a
# process without the code can show the effective limits). An override column that is NULL
# inherits the declaration; 0 means "no limit". The claim reads the row in its transaction.
_V9_TABLE = """CREATE TABLE durable_queue_settings (
        queue_name TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0,
        concurrency INTEGER,
        worker_concurrency INTEGER,
        rate_limit_count INTEGER,
        rate_limit_period DOUBLE PRECISION,
        declared_concurrency INTEGER,
        declared_worker_concurrency INTEGER,
        declared_rate_limit_count INTEGER,
        declared_rate_limit_period DOUBLE PRECISION,
        declared_version TEXT,
        declared_at BIGINT,
        updated_at BIGINT NOT NULL
    )"""
_SQLITE_V9 = [_V9_TABLE]
# A change of the overrides wakes every worker's queue loop (kind 'Q': settings of a queue).
_POSTGRES_V9 = [
    _V9_TABLE,
    """CREATE OR REPLACE FUNCTION durable_notify_queue_settings() RETURNS trigger AS $$
BEGIN
    IF octet_length(NEW.queue_name) < 7900 THEN
        PERFORM pg_notify('durable_' || left(md5(TG_TABLE_SCHEMA), 16), 'Q:' || NEW.queue_name);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql""",
    """CREATE TRIGGER durable_queue_settings_notify AFTER INSERT OR UPDATE OF paused,
        concurrency, worker_concurrency, rate_limit_count, rate_limit_period
        ON durable_queue_settings FOR EACH ROW EXECUTE FUNCTION durable_notify_queue_settings()""",
]

# Version 10: the priority claim reads ready rows in (priority, created_at) order from an index
# without delayed rows (due delayed ones come from the delayed index, as for FIFO): 100k
# not-yet-due entries at the head of a queue are no longer walked by every claim.
_V10 = [
    """CREATE INDEX durable_workflows_priority_ready_idx ON durable_workflows
        (queue_name, priority, created_at) WHERE status = 'ENQUEUED' AND not_before IS NULL""",
]

# Version 11: schedules as data (created, paused, resumed, edited and deleted at run time, and
# the ``@scheduled`` ones, recorded as code-defined). ``last_tick`` is the newest tick consumed
# (fired or skipped), epoch ms: the compare-and-swap on it makes one engine fire each tick, and
# after downtime it is where the catch-up policy starts. A new table only: older engines of a
# rolling deploy ignore it.
_V11 = [
    """CREATE TABLE durable_schedules (
        schedule_id TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        inputs TEXT,
        queue_name TEXT,
        catchup TEXT NOT NULL DEFAULT 'latest',
        max_catchup INTEGER NOT NULL DEFAULT 100,
        overlap TEXT NOT NULL DEFAULT 'skip',
        paused INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT 'api',
        last_tick BIGINT,
        last_workflow_id TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )""",
]

# Version 12: partitioned queues and debounce. Two nullable columns; every new index holds only
# rows that have a key, so a queue without partitions or debounce pays nothing for them.
# - The fair claim walks the distinct keys with waiting work (a skip scan, one probe per key)
#   and takes each key's oldest rows: (queue_name, partition_key, created_at) over ENQUEUED rows.
# - Per-key concurrency counts a key's PENDING rows; the per-key rate limit its recent starts.
# - One ENQUEUED row per (queue, debounce key): the unique index is what makes concurrent
#   debounced enqueues coalesce into one run (an upsert on it), on both backends.
_V12 = [
    "ALTER TABLE durable_workflows ADD COLUMN partition_key TEXT",
    "ALTER TABLE durable_workflows ADD COLUMN debounce_key TEXT",
    """CREATE INDEX durable_workflows_partition_idx ON durable_workflows
        (queue_name, partition_key, created_at)
        WHERE status = 'ENQUEUED' AND partition_key IS NOT NULL""",
    """CREATE INDEX durable_workflows_partition_running_idx ON durable_workflows
        (queue_name, partition_key) WHERE status = 'PENDING' AND partition_key IS NOT NULL""",
    # Started rows only: a statement without a started_at bound (the skip scan) cannot
    # pick it and walk a key's finished history.
    """CREATE INDEX durable_workflows_partition_started_idx ON durable_workflows
        (queue_name, partition_key, started_at)
        WHERE partition_key IS NOT NULL AND started_at IS NOT NULL""",
    """CREATE UNIQUE INDEX durable_workflows_debounce_idx ON durable_workflows
        (queue_name, debounce_key) WHERE debounce_key IS NOT NULL AND status = 'ENQUEUED'""",
]
# Keys are many and mostly small: tell PostgreSQL so, so one key with a huge backlog does not
# make it estimate every key as huge. (The claim's statements plan on the partition index with
# or without it, measured beside a 50,000-item key; an earlier per-key query needed it.)
_POSTGRES_V12 = [
    *_V12,
    "ALTER TABLE durable_workflows ALTER COLUMN partition_key SET (n_distinct = -1)",
]

# Version 13: how many attempts a step took (1 unless it was retried), written by the step's
# checkpoint INSERT itself (no statement of its own). Rows written before it read 1. A column
# with a constant default: no table rewrite on PostgreSQL, and older engines of a rolling
# deploy, which do not name it, write 1.
_V13 = ["ALTER TABLE durable_steps ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1"]

# Version 14 (PostgreSQL only; SQLite has no triggers to change): no 'c:' notification when a
# workflow becomes PENDING. 'c:' makes an engine running the workflow re-read its status to
# stop a cancelled execution; a workflow that became PENDING (claimed from its queue, resumed)
# is not cancelled, so that read found nothing to do, and each claimed workflow cost its
# worker a thread and a status query.
_POSTGRES_V14 = [_POSTGRES_NOTIFY_V4.replace("IN ('CANCELLED', 'PENDING')", "= 'CANCELLED'")]
assert _POSTGRES_V14[0] != _POSTGRES_NOTIFY_V4

# Version 15: fewer index entries per queued workflow. A status change is not a HOT update,
# so every index whose predicate holds for the new row version gets an entry: a queued
# one-step workflow (INSERT ENQUEUED, claim to PENDING, finish) cost 9 + 8 + 8 entries.
# - The queue index (queue_name, status, priority, created_at) over every queued row of all
#   history served only counts of in-flight rows (the priority claim has had its own index
#   since version 10). The claim's concurrency count needs a queue's PENDING rows: an index of
#   those alone, which neither the enqueue nor the finish writes. The in-flight counts of the
#   dashboard read ENQUEUED rows through the status index, as they could before.
# - The rate limit's index (queue_name, started_at) holds only started rows: the statement
#   bounds started_at, so rows that never started (every ENQUEUED one) need no entry.
# Now 7 + 8 + 7.
_V15 = [
    "DROP INDEX durable_workflows_queue_idx",
    """CREATE INDEX durable_workflows_running_idx ON durable_workflows (queue_name)
        WHERE status = 'PENDING' AND queue_name IS NOT NULL""",
    "DROP INDEX durable_workflows_queue_started_idx",
    """CREATE INDEX durable_workflows_queue_started_idx ON durable_workflows
        (queue_name, started_at) WHERE queue_name IS NOT NULL AND started_at IS NOT NULL""",
]
_POSTGRES_V15 = [*_V15, "ANALYZE durable_workflows"]

# Version 16 (PostgreSQL only): queue wake-ups ('q:', one per enqueued row and per claimed or
# finished queued workflow) go to a channel of their own, the schema's channel + '_q', which
# only processes that serve queues (or show a live dashboard) LISTEN on. A web process that
# enqueues received a wake-up for each of its own enqueues and each claim and finish of the
# fleet: its LISTEN thread's work and the GIL it took cost that process as much CPU per
# enqueue as the INSERT itself (measured: 200-215 -> 110-130 us per Queue.enqueue).
_POSTGRES_V16 = [
    _POSTGRES_V14[0]
    .replace(
        "payload := 'q:' || NEW.queue_name;",
        "payload := 'q:' || NEW.queue_name;\n        channel := channel || '_q';",
    )
    .replace(
        "PERFORM pg_notify(channel, 'q:' || OLD.queue_name);",
        "PERFORM pg_notify(channel || '_q', 'q:' || OLD.queue_name);",
    )
]
assert _POSTGRES_V16[0].count("'_q'") == 2

MIGRATIONS: dict[str, list[list[str]]] = {
    "sqlite": [_SQLITE_V1, _V2, _V3, _SQLITE_V4, _V5, _V6, _V7, _V8, _SQLITE_V9, _V10, _V11]
    + [_V12, _V13, [], _V15, []],
    "postgresql": [_POSTGRES_V1, _V2, _V3, _POSTGRES_V4, _POSTGRES_V5, _V6, _V7, _V8]
    + [_POSTGRES_V9, _V10, _V11, _POSTGRES_V12, _V13, _POSTGRES_V14, _POSTGRES_V15]
    + [_POSTGRES_V16],
}

CURRENT_VERSION = 16


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of the system tables in ``schema`` (as the trigger names it);
    its queue wake-ups go to this name + ``QUEUE_CHANNEL_SUFFIX``."""
    import hashlib

    return "durable_" + hashlib.md5(schema.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


QUEUE_CHANNEL_SUFFIX = "_q"


_CREATE = re.compile(r"\s*CREATE (?:OR REPLACE )?(TABLE|FUNCTION) (?:IF NOT EXISTS )?(\w+)")
_DROP = re.compile(r"\s*DROP (TABLE|FUNCTION) (?:IF EXISTS )?(\w+)")


def _created(dialect: str, kind: str) -> tuple[str, ...]:
    names: list[str] = []
    for migration in MIGRATIONS[dialect]:
        for statement in migration:
            if (made := _CREATE.match(statement)) and made[1] == kind and made[2] not in names:
                names.append(made[2])
            elif (gone := _DROP.match(statement)) and gone[1] == kind and gone[2] in names:
                names.remove(gone[2])
    return tuple(reversed(names))


def system_tables(dialect: str) -> tuple[str, ...]:
    """Every table the migrations of ``dialect`` leave in a database, newest first (an order
    to drop them in), then ``durable_schema`` (the version table ``migrate()`` creates first).
    Read from ``MIGRATIONS``, so a table a new version adds needs no second list (Django's
    reverse migration drops these)."""
    return (*_created(dialect, "TABLE"), "durable_schema")


def system_functions(dialect: str) -> tuple[str, ...]:
    """The functions (PostgreSQL's NOTIFY triggers) the migrations of ``dialect`` create."""
    return _created(dialect, "FUNCTION")
