"""Prometheus metrics: counters kept in this process, backlog read from the database on scrape.

Optional. With ``prometheus-client`` installed (extra ``metrics``) the engine counts, in memory
and without a database statement of its own, what this process does: workflow executions
started and outcomes recorded (by name and status), step durations and retries, workflows
claimed from queues, recoveries and adoptions, dead-letters, and the round-trip time of each
heartbeat. What lives in the database is read when Prometheus scrapes, through the store's own
queries (the ones the dashboard and the alerts use): the depth of every queue and how long its
oldest claimable ENQUEUED workflow has waited (``queue_backlog``, over the in-flight rows
only), which queues are paused (``queue_settings``), each executor's heartbeat age
(``executors``), and the round trip of that scrape's own ``SELECT 1`` (``ping``). Without
the package every hook is a constant no-op.

Serve it with ``durable worker --metrics-port N``, the FastAPI router's ``GET /metrics``, or
``django_durable.metrics.metrics_view``; or call ``exposition(store)`` yourself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import SQLStore as Store

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # the ``metrics`` extra is not installed: every hook below is a no-op
    prometheus_client = None  # type: ignore[assignment]

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "exposition",
    "metrics_available",
    "serve",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

REGISTRY: Any = None
if prometheus_client is not None:
    # A registry of our own: the application's default registry stays the application's.
    REGISTRY = CollectorRegistry(auto_describe=True)
    _started = Counter(
        "durable_workflows_started",
        "Workflow executions begun in this process for the first time (not a recovery or a "
        "resumption after a wait).",
        ["name"],
        registry=REGISTRY,
    )
    _finished = Counter(
        "durable_workflows_finished",
        "Workflow outcomes recorded by this process, by status (SUCCESS, ERROR).",
        ["name", "status"],
        registry=REGISTRY,
    )
    _steps = Histogram(
        "durable_step_duration_seconds",
        "Duration of steps run in this process (retries included), by outcome.",
        ["name", "status"],
        buckets=_STEP_BUCKETS,
        registry=REGISTRY,
    )
    _retries = Counter(
        "durable_step_retries",
        "Step attempts that failed and were retried.",
        ["name"],
        registry=REGISTRY,
    )
    _claims = Counter(
        "durable_queue_claimed",
        "Workflows this process claimed from a queue.",
        ["queue"],
        registry=REGISTRY,
    )
    _recoveries = Counter(
        "durable_recoveries",
        "Workflows this process took over: kind=recovery (its own executor ID, at launch), "
        "adoption (another executor's expired lease), sweep (its own stranded PENDING rows).",
        ["kind"],
        registry=REGISTRY,
    )
    _dead = Counter(
        "durable_dead_letters",
        "Workflows dead-lettered (MAX_RECOVERY_ATTEMPTS_EXCEEDED) by this process.",
        ["name"],
        registry=REGISTRY,
    )
    _heartbeat = Histogram(
        "durable_heartbeat_roundtrip_seconds",
        "Round trip of each heartbeat this process wrote to the database.",
        buckets=_DB_BUCKETS,
        registry=REGISTRY,
    )


def metrics_available() -> bool:
    """True when ``prometheus-client`` is importable, so metrics are kept and served."""
    return prometheus_client is not None


# -- hooks (called by the engine; in memory only) ------------------------------------------------


def workflow_started(name: str) -> None:
    if prometheus_client is not None:
        _started.labels(name).inc()


def workflow_finished(name: str, status: str) -> None:
    if prometheus_client is not None:
        _finished.labels(name, status).inc()


#: The step histogram's children by (name, status): ``labels()`` takes a lock and builds a
#: key at every call, a measurable part of a step's own cost.
_step_series: dict[tuple[str, bool], Any] = {}


def step_finished(name: str, seconds: float, failed: bool) -> None:
    if prometheus_client is not None:
        series = _step_series.get((name, failed))
        if series is None:
            series = _steps.labels(name, "ERROR" if failed else "SUCCESS")
            _step_series[(name, failed)] = series
        series.observe(max(seconds, 0.0))


def step_retried(name: str) -> None:
    if prometheus_client is not None:
        _retries.labels(name).inc()


def claimed(queue: str, count: int) -> None:
    if prometheus_client is not None and count:
        _claims.labels(queue).inc(count)


def recovered(kind: str) -> None:
    if prometheus_client is not None:
        _recoveries.labels(kind).inc()


def dead_lettered(name: str) -> None:
    if prometheus_client is not None:
        _dead.labels(name).inc()


def heartbeat_roundtrip(seconds: float) -> None:
    if prometheus_client is not None:
        _heartbeat.observe(max(seconds, 0.0))


# -- scrape ------------------------------------------------------------------------------------


class StoreCollector:
    """Reads the backlog and the executors from ``store`` when collected (on each scrape)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> list[Any]:
        # A scrape fails at once in an outage (Prometheus retries), not after the store's
        # retries through it.
        with self.store.single_attempt():
            return list(self._collect())

    def _collect(self) -> Iterator[Any]:
        store = self.store
        began = time.perf_counter()
        store.ping()
        roundtrip = time.perf_counter() - began
        rtt = GaugeMetricFamily(
            "durable_database_roundtrip_seconds", "Round trip of a SELECT 1 during this scrape."
        )
        rtt.add_metric([], roundtrip)
        now_ms = store.now_ms()
        depth = GaugeMetricFamily(
            "durable_queue_depth",
            "Workflows ENQUEUED (waiting to be claimed), by queue.",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "durable_queue_oldest_age_seconds",
            "Seconds the oldest claimable ENQUEUED workflow of each queue has waited (a delayed "
            "one from its not_before; 0 while every enqueued one is still delayed).",
            labels=["queue"],
        )
        for queue, enqueued, _running, since in store.queue_backlog(now_ms):
            if enqueued:
                depth.add_metric([queue], enqueued)
                age.add_metric([queue], max(now_ms - since, 0) / 1000 if since else 0.0)
        paused = GaugeMetricFamily(
            "durable_queue_paused",
            "1 for a queue paused fleet-wide (no worker claims from it), 0 for one that is not "
            "(every queue a worker declared, or an operator changed).",
            labels=["queue"],
        )
        for settings in store.queue_settings():
            paused.add_metric([settings.name], 1.0 if settings.paused else 0.0)
        yield from _partition_gauges(store, now_ms)
        beat = GaugeMetricFamily(
            "durable_executor_heartbeat_age_seconds",
            "Seconds since each registered executor last renewed its lease.",
            labels=["executor_id"],
        )
        for executor_id, *_, heartbeat_at in store.executors():
            beat.add_metric([executor_id], max(now_ms - int(heartbeat_at), 0) / 1000)
        yield from (rtt, depth, age, paused, beat)


#: Partition series per scrape at most: the deepest partitions over every partitioned queue
#: (a queue may have millions of keys; Prometheus labels must stay bounded).
PARTITION_SERIES = 20


def _partition_gauges(store: Store, now_ms: int) -> Iterator[Any]:
    """Depth and oldest age of the ``PARTITION_SERIES`` deepest partitions (keys of
    partitioned queues): which tenant's backlog a queue's depth is made of."""
    depth = GaugeMetricFamily(
        "durable_queue_partition_depth",
        f"Workflows ENQUEUED per partition key, the {PARTITION_SERIES} deepest partitions.",
        labels=["queue", "partition"],
    )
    age = GaugeMetricFamily(
        "durable_queue_partition_oldest_age_seconds",
        "Age of the oldest claimable ENQUEUED workflow of each of those partitions.",
        labels=["queue", "partition"],
    )
    for queue, key, waiting, _, since in store.partition_backlog(
        None, now_ms, limit=PARTITION_SERIES
    ):
        if not waiting:
            continue
        depth.add_metric([queue, key], waiting)
        age.add_metric([queue, key], 0.0 if since is None else max(now_ms - since, 0) / 1000)
    yield from (depth, age)


class _Scrape:
    def __init__(self, store: Store | None) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()
        if self.store is not None:
            yield from StoreCollector(self.store).collect()


def exposition(store: Store | None = None) -> bytes:
    """The Prometheus text exposition of this process's counters and, with ``store``, of the
    backlog and executors read from it now. Raises ``ConfigurationError`` without the
    ``prometheus-client`` package."""
    if prometheus_client is None:
        from .errors import ConfigurationError

        raise ConfigurationError(
            "metrics need the prometheus-client package: pip install 'durable-workflows[metrics]'"
        )
    return bytes(prometheus_client.generate_latest(_Scrape(store)))


def serve(store: Store, port: int, addr: str = "0.0.0.0") -> Any:  # noqa: S104 - a scrape port
    """Serve ``GET /metrics`` (any path) on ``port`` from a daemon thread; returns the server
    (``server.shutdown()`` stops it)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            try:
                body, status = exposition(store), 200
            except Exception as exc:  # the database is down: say so, keep serving
                body, status = f"# scrape failed: {type(exc).__name__}: {exc}\n".encode(), 503
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((addr, port), Handler)
    threading.Thread(target=server.serve_forever, name="durable-metrics", daemon=True).start()
    return server
