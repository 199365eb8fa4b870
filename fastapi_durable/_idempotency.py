"""The ``Idempotency-Key`` request header as a workflow ID: a retried request finds the
workflow its first attempt started instead of starting a second one."""

from __future__ import annotations

import hashlib

from fastapi import Header, HTTPException

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def validate_idempotency_key(key: str) -> str:
    """Return ``key`` or raise a 422 that says what is wrong with it."""
    if not key:
        raise HTTPException(422, detail=f"The {HEADER} header is empty.")
    if len(key) > MAX_LENGTH:
        raise HTTPException(
            422,
            detail=f"The {HEADER} header is {len(key)} characters long; the limit is {MAX_LENGTH}.",
        )
    # The IETF Idempotency-Key draft defines the key as printable ASCII; anything else
    # (a non-ASCII key arrives as latin-1 decoded UTF-8: "café" as "cafÃ©") is refused
    # rather than stored garbled.
    for index, char in enumerate(key):
        if not " " <= char <= "~":
            raise HTTPException(
                422,
                detail=f"The {HEADER} header must be printable ASCII; it has "
                f"U+{ord(char):04X} at position {index}.",
            )
    return key


async def idempotency_key(
    idempotency_key: str | None = Header(
        default=None,
        alias=HEADER,
        description="Reuse the same key to retry a request without starting a second workflow.",
    ),
) -> str | None:
    """FastAPI dependency: the validated header, or None when the client sent none."""
    if idempotency_key is None:
        return None
    return validate_idempotency_key(idempotency_key)


class IdempotencyKey(str):
    """The request's validated ``Idempotency-Key`` (use it as the workflow ID).

    ``replayed`` is True when this exact request (same method, path, query and body) already
    succeeded under this key: ``start_workflow(..., workflow_id=key)`` then returns the first
    request's workflow, and an endpoint with writes of its own should skip them.
    """

    replayed: bool
    fingerprint: str

    def __new__(cls, key: str, *, fingerprint: str, replayed: bool) -> IdempotencyKey:
        self = super().__new__(cls, key)
        self.fingerprint = fingerprint
        self.replayed = replayed
        return self


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What identifies "the same request" under one key: the draft compares the payload;
    the method, path and query are part of it (a key reused on another endpoint is a reuse)."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(body)
    return digest.hexdigest()


def reused_with_another_request(key: str) -> HTTPException:
    return HTTPException(
        422,
        detail=f"The {HEADER} {key!r} was already used for a different request (another "
        "method, path, query or body); use a new key for a new request.",
    )


def still_in_flight(key: str) -> HTTPException:
    return HTTPException(
        409,
        detail=f"A request with {HEADER} {key!r} is still being processed; retry it later.",
        headers={"Retry-After": "1"},
    )
