"""The workflow statuses: one ``Status`` enum and one ``TERMINAL`` set for the whole package."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    PENDING = "PENDING"
    ENQUEUED = "ENQUEUED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"


# A tuple (ordered) so that the store can bind it as SQL parameters.
TERMINAL: tuple[str, ...] = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
