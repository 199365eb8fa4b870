"""fastapi_durable: durable workflows in a FastAPI app.

A lifespan that runs the engine, dependencies for the engine, a request-scoped SQLAlchemy
session and the ``Idempotency-Key`` header, and a router factory for managing workflows.
"""

from ._durable import Durable
from ._idempotency import IdempotencyKey, idempotency_key, validate_idempotency_key
from ._sse import sse_events, stream_response
from ._transactions import RequestTransactions

__all__ = [
    "Durable",
    "IdempotencyKey",
    "RequestTransactions",
    "idempotency_key",
    "validate_idempotency_key",
    "sse_events",
    "stream_response",
]
