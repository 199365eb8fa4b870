"""The fair claim of a partitioned queue: round-robin over the keys that have waiting work.

A plain queue is one FIFO: a tenant with a backlog of 100,000 holds up everyone behind it. A
partitioned queue claims by key instead. Each claim

1. lists the keys with ENQUEUED rows, starting after the key this store's last claim of the
   queue stopped at and wrapping around: a recursive skip scan of
   ``durable_workflows_partition_idx``, one index probe per key however many rows a key holds;
2. gives each key its room: the claim's room shared evenly, less what the per-key
   ``concurrency`` (PENDING rows of the key, fleet-wide), ``rate_limit`` (starts of the key in
   the window) and ``worker_concurrency`` (this process's running ones) leave;
3. takes each key's oldest claimable rows in one statement (a LATERAL probe per key on
   PostgreSQL, a UNION ALL of probes on SQLite) and orders them in rounds: the first of every
   key, then the second of every key, and so on, cut at the room.

So a key's first item waits at most one round of the keys before it, not behind another key's
backlog. It runs inside the claim's transaction, after the queue-wide limits and under the same
locking (the queue's advisory lock on PostgreSQL when any fleet-wide limit applies, SQLite's
write lock), so per-key limits are exact across workers as the queue-wide ones are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import QueueClaim, SQLStore

#: Keys examined by one claim at most (the claim's room is at most 200, see queues.py).
MAX_KEYS = 400


def _scan(store: SQLStore, conn: Any, queue: str, after: str | None, limit: int) -> list[str]:
    """Up to ``limit`` distinct keys with ENQUEUED rows, in key order, after ``after`` (from
    the first when None): each step of the recursion is one probe of the partition index."""
    table = store.workflows_by("durable_workflows_partition_idx")

    def probe(bound: str) -> str:
        return (
            f"SELECT partition_key FROM {table} WHERE queue_name = %s AND status = 'ENQUEUED' "
            f"AND partition_key IS NOT NULL AND partition_key {bound} "
            "ORDER BY partition_key LIMIT 1"
        )

    first = probe("> %s" if after is not None else ">= ''")
    params: tuple[Any, ...] = (queue, after) if after is not None else (queue,)
    rows = store.execute(
        conn,
        "WITH RECURSIVE pkeys(k, n) AS ("
        f"SELECT ({first}), 1 "
        f"UNION ALL SELECT ({probe('> pkeys.k')}), pkeys.n + 1 "
        "FROM pkeys WHERE pkeys.k IS NOT NULL AND pkeys.n < %s) "
        "SELECT k FROM pkeys WHERE k IS NOT NULL",
        (*params, queue, limit),
    ).fetchall()
    return [r[0] for r in rows]


def waiting_keys(
    store: SQLStore, conn: Any, queue: str, after: str | None, limit: int
) -> list[str]:
    """Keys with waiting work, round-robin: those after ``after``, then from the first."""
    keys = _scan(store, conn, queue, after, limit)
    if after is not None and len(keys) < limit:
        seen = set(keys)
        keys.extend(k for k in _scan(store, conn, queue, None, limit - len(keys)) if k not in seen)
    return keys


def _counts(store: SQLStore, conn: Any, sql: str, params: tuple[Any, ...]) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in store.execute(conn, sql, params).fetchall()}


def key_rooms(
    store: SQLStore, conn: Any, claim: QueueClaim, keys: list[str], room: int, t: int
) -> dict[str, int]:
    """How many more of each key this claim may start under the per-key limits."""
    rooms = dict.fromkeys(keys, room)
    marks = ", ".join(["%s"] * len(keys))
    if claim.partition_concurrency is not None:
        running = _counts(
            store,
            conn,
            "SELECT partition_key, COUNT(*) FROM "
            f"{store.workflows_by('durable_workflows_partition_running_idx')} "
            "WHERE queue_name = %s AND status = 'PENDING' AND partition_key IS NOT NULL "
            f"AND partition_key IN ({marks}) GROUP BY partition_key",
            (claim.name, *keys),
        )
        for k in keys:
            rooms[k] = min(rooms[k], claim.partition_concurrency - running.get(k, 0))
    if claim.partition_rate_limit is not None:
        n, period = claim.partition_rate_limit
        started = _counts(
            store,
            conn,
            "SELECT partition_key, COUNT(*) FROM "
            f"{store.workflows_by('durable_workflows_partition_started_idx')} "
            "WHERE queue_name = %s AND partition_key IS NOT NULL AND started_at IS NOT NULL "
            f"AND partition_key IN ({marks}) AND started_at > %s GROUP BY partition_key",
            (claim.name, *keys, t - int(period * 1000)),
        )
        for k in keys:
            rooms[k] = min(rooms[k], n - started.get(k, 0))
    if claim.partition_worker_concurrency is not None:
        here = dict(claim.running_here_by_key)
        for k in keys:
            rooms[k] = min(rooms[k], claim.partition_worker_concurrency - here.get(k, 0))
    return rooms


def _heads(
    store: SQLStore, conn: Any, claim: QueueClaim, wants: dict[str, int], t: int
) -> dict[str, list[str]]:
    """The oldest claimable rows of each key, up to ``wants[key]`` of them, in one statement.
    Delayed rows count once due; PostgreSQL skips rows another claim holds."""
    filters, filter_params = claim.filters()
    found: dict[str, list[str]] = {k: [] for k in wants}
    if not wants:
        return found
    eligible = (
        "queue_name = %s AND status = 'ENQUEUED' AND (not_before IS NULL OR not_before <= %s) "
        f"{filters}"
    )
    if store.dialect == "postgresql":
        rows = store.execute(
            conn,
            "SELECT c.partition_key, c.workflow_id FROM unnest(%s::text[], %s::int[]) "
            "WITH ORDINALITY AS k(key, n, ord) CROSS JOIN LATERAL ("
            "SELECT workflow_id, partition_key, created_at FROM durable_workflows "
            f"WHERE partition_key = k.key AND {eligible}"
            f"ORDER BY created_at LIMIT k.n{store.skip_locked_suffix}) c "
            "ORDER BY k.ord, c.created_at",
            (list(wants), list(wants.values()), claim.name, t, *filter_params),
        ).fetchall()
    else:
        table = store.workflows_by("durable_workflows_partition_idx")
        arm = (
            f"SELECT * FROM (SELECT partition_key, workflow_id FROM {table} "
            f"WHERE partition_key = %s AND {eligible}ORDER BY created_at LIMIT %s)"
        )
        params: list[Any] = []
        for k, n in wants.items():
            params.extend((k, claim.name, t, *filter_params, n))
        rows = store.execute(conn, " UNION ALL ".join([arm] * len(wants)), params).fetchall()
    for k, wid in rows:
        found[k].append(wid)
    return found


def candidates(
    store: SQLStore, conn: Any, claim: QueueClaim, room: int, t: int, after: str | None
) -> tuple[list[str], str | None]:
    """The IDs this claim should take, in round-robin order, and the key to start after next
    time (the last key this claim served or examined)."""
    keys = waiting_keys(store, conn, claim.name, after, min(max(room, 1), MAX_KEYS))
    if not keys:
        return [], None
    rooms = key_rooms(store, conn, claim, keys, room, t)
    open_keys = [k for k in keys if rooms[k] > 0]
    if not open_keys:
        return [], keys[-1]
    share = max(1, math.ceil(room / len(open_keys)))
    wants = {k: min(rooms[k], share) for k in open_keys}
    heads = _heads(store, conn, claim, wants, t)
    total = sum(len(v) for v in heads.values())
    # Keys that had more than their share fill the room the small ones left: one more probe.
    fuller = [k for k in open_keys if len(heads[k]) == wants[k] < rooms[k]]
    if total < room and fuller:
        extra = math.ceil((room - total) / len(fuller))
        more = _heads(store, conn, claim, {k: min(rooms[k], wants[k] + extra) for k in fuller}, t)
        for k, ids in more.items():
            had = set(heads[k])
            heads[k].extend(wid for wid in ids if wid not in had)
    ordered: list[str] = []
    last = keys[-1]
    depth = max((len(v) for v in heads.values()), default=0)
    for r in range(depth):
        for k in open_keys:
            if len(ordered) == room:
                return ordered, last
            if r < len(heads[k]):
                ordered.append(heads[k][r])
                last = k
    return ordered, keys[-1]
