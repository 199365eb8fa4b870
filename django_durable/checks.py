"""System checks for the ``DURABLE`` setting: misconfiguration surfaces at ``manage.py check``,
``runserver``, ``migrate`` and ``durable_worker`` (they run every check not tagged
``database``, so these are not) instead of at the first workflow."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS

EXAMPLE = 'DURABLE = {"DATABASE": "default", "QUEUES": ["emails"]}'


def _error(msg: str, hint: str, id_: int) -> Error:
    return Error(msg, hint=hint, obj="settings.DURABLE", id=f"django_durable.E{id_:03d}")


def _is_str_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value))


@register(Tags.compatibility)
def check_durable_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    configured = getattr(settings, "DURABLE", None)
    if configured is None:
        configured = {}
    if not isinstance(configured, dict):
        return [
            _error(
                f"DURABLE must be a dict, not {type(configured).__name__}.",
                f"For example: {EXAMPLE}",
                1,
            )
        ]
    errors: list[Error] = []
    unknown = sorted(set(configured) - set(DEFAULTS))
    if unknown:
        errors.append(
            _error(
                f"DURABLE has unknown key(s): {', '.join(map(repr, unknown))}.",
                f"Valid keys are {', '.join(DEFAULTS)}.",
                2,
            )
        )
    alias = configured.get("DATABASE", DEFAULTS["DATABASE"])
    if not isinstance(alias, str):
        errors.append(
            _error(
                f"DURABLE['DATABASE'] must be a database alias (str), not {alias!r}.",
                f"Use one of the keys of DATABASES: {', '.join(settings.DATABASES)}.",
                3,
            )
        )
    elif alias not in settings.DATABASES:
        errors.append(
            _error(
                f"DURABLE['DATABASE'] names the unknown database alias {alias!r}.",
                f"Use one of the keys of DATABASES: {', '.join(settings.DATABASES) or '(none)'}.",
                4,
            )
        )
    else:
        errors.extend(_check_database(alias, settings.DATABASES[alias]))
    for key in ("EXECUTOR_ID", "APPLICATION_VERSION"):
        if not _is_str_or_none(configured.get(key)):
            errors.append(
                _error(
                    f"DURABLE[{key!r}] must be a non-empty string or None, not "
                    f"{configured.get(key)!r}.",
                    "Leave it out to use the default.",
                    5,
                )
            )
    queues = configured.get("QUEUES")
    if queues is not None and (
        isinstance(queues, str)
        or not isinstance(queues, list | tuple)
        or not all(isinstance(q, str) and q for q in queues)
    ):
        errors.append(
            _error(
                f"DURABLE['QUEUES'] must be a list of queue names or None, not {queues!r}.",
                'For example "QUEUES": ["emails"]; None (the default) serves no queue in web '
                "processes: durable_worker serves them.",
                6,
            )
        )
    return errors


def _check_database(alias: str, db: dict[str, Any]) -> list[Error]:
    engine = db.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        name = str(db.get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            return [
                _error(
                    f"DATABASES[{alias!r}] is an in-memory SQLite database; durable workflows "
                    "need a file that survives a crash and that workers can open.",
                    'Set "NAME" to a file path (and "TEST": {"NAME": a file path} for tests).',
                    7,
                )
            ]
        return _check_sqlite_options(alias, db.get("OPTIONS") or {})
    return _check_vendor(alias, engine)


def _check_sqlite_options(alias: str, options: dict[str, Any]) -> list[Error]:
    """django_durable fills in transaction_mode and timeout when they are missing
    (database.SQLITE_DEFAULTS); values set by hand that make a web process and a worker
    fail with "database is locked" get a warning that says what to set."""
    found: list[Error] = []
    hint = (
        f'Set DATABASES[{alias!r}]["OPTIONS"] = {{"transaction_mode": "IMMEDIATE", '
        '"timeout": 20}, or leave both out and django_durable sets them.'
    )
    mode = str(options.get("transaction_mode") or "DEFERRED").upper()
    if mode not in ("IMMEDIATE", "EXCLUSIVE"):
        found.append(
            Warning(
                f"DATABASES[{alias!r}] uses SQLite transaction_mode {mode}: a transaction "
                'that reads and then writes fails at once with "database is locked" when '
                "a worker wrote in between.",
                hint=hint,
                obj="settings.DATABASES",
                id="django_durable.W001",
            )
        )
    timeout = options.get("timeout", 20)
    if not isinstance(timeout, int | float) or timeout < 5:
        found.append(
            Warning(
                f"DATABASES[{alias!r}] sets the SQLite timeout to {timeout!r}: with a web "
                "process and a worker writing to one file, short waits for the write lock "
                'fail with "database is locked".',
                hint=hint,
                obj="settings.DATABASES",
                id="django_durable.W002",
            )
        )
    return found


def _check_vendor(alias: str, engine: str) -> list[Error]:
    if "postgresql" in engine or "postgis" in engine:
        return []
    return [
        _error(
            f"DATABASES[{alias!r}] uses {engine!r}; durable workflows support SQLite and "
            "PostgreSQL.",
            "Point DURABLE['DATABASE'] at a SQLite or PostgreSQL alias.",
            8,
        )
    ]
