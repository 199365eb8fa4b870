"""The surface that integrations (``django_durable``, ``fastapi_durable``) build on.

Integrations import only ``durable_core``, ``durable_core.errors`` and this module (an
import-linter contract checks it), so the core's modules can change behind it. Hooks an
integration may use on an engine are declared in ``durable_core.runtime.Runtime``
(``require_launched`` for lazy launch, ``launched``) and on its ``@transaction`` adapter.
"""

from __future__ import annotations

from .context import WorkflowContext, mark_in_step, unmark_in_step
from .cron import check_cron, next_tick
from .cron import zone as time_zone
from .health import check as health_check
from .messaging import WAIT_MARKS, WaitMark, read_wait_mark
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import exposition as metrics_exposition
from .registry import REGISTRY, Registry, StepDef, WorkflowDef
from .runtime import Runtime, SystemDatabase
from .schedules import CATCHUP_POLICIES, OVERLAP_POLICIES
from .serialization import Serializer, decode_error, make_serializer
from .status import TERMINAL, Status
from .store import (
    DatabaseURL,
    SQLStore,
    database_time_sql,
    now_ms,
    parse_database_url,
    resolve_database_url,
)
from .store.schema import (
    MIGRATION_LOCK_KEY,
    TRANSACTION_OUTPUTS_DDL,
    system_functions,
    system_tables,
)
from .transactions import (
    CONFLICT,
    INSERT_OUTPUT,
    OUTAGE,
    SELECT_OUTPUT,
    SELECT_OUTPUT_WITH_TIMEOUTS,
    CallersTransaction,
    SQLAlchemyTransactions,
    TransactionAdapter,
    TransactionDriver,
    TransactionTimeouts,
    retryable_sqlstate,
    run_transaction,
)

__all__ = [
    "database_time_sql",
    "WAIT_MARKS",
    "WaitMark",
    "read_wait_mark",
    "CATCHUP_POLICIES",
    "OVERLAP_POLICIES",
    "check_cron",
    "next_tick",
    "time_zone",
    "CONFLICT",
    "INSERT_OUTPUT",
    "OUTAGE",
    "SELECT_OUTPUT",
    "SELECT_OUTPUT_WITH_TIMEOUTS",
    "CallersTransaction",
    "TransactionAdapter",
    "TransactionDriver",
    "TransactionTimeouts",
    "retryable_sqlstate",
    "run_transaction",
    "METRICS_CONTENT_TYPE",
    "MIGRATION_LOCK_KEY",
    "REGISTRY",
    "TERMINAL",
    "TRANSACTION_OUTPUTS_DDL",
    "DatabaseURL",
    "Registry",
    "Runtime",
    "SQLAlchemyTransactions",
    "SQLStore",
    "Serializer",
    "Status",
    "StepDef",
    "SystemDatabase",
    "WorkflowContext",
    "WorkflowDef",
    "decode_error",
    "make_serializer",
    "health_check",
    "mark_in_step",
    "metrics_exposition",
    "now_ms",
    "parse_database_url",
    "resolve_database_url",
    "system_functions",
    "system_tables",
    "unmark_in_step",
]
