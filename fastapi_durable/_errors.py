"""Durable errors as HTTP answers: unknown IDs 404, conflicts 409, unencodable inputs 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from durable_core.errors import (
    DeduplicationConflict,
    SerializationError,
    WorkflowConflict,
    WorkflowNotFound,
)

STATUS_CODES: dict[type[Exception], int] = {
    WorkflowNotFound: 404,
    WorkflowConflict: 409,
    DeduplicationConflict: 409,
    SerializationError: 422,
}


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    for cls, code in STATUS_CODES.items():
        if isinstance(exc, cls):
            return JSONResponse({"detail": str(exc)}, status_code=code)
    raise exc


def exception_handlers() -> dict[Any, Callable[..., Any]]:
    return dict.fromkeys(STATUS_CODES, _handle)
