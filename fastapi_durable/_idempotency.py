"""The ``Idempotency-Key`` request header as a workflow ID: a retried request finds the
workflow its first attempt started instead of starting a second one."""

from __future__ import annotations

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
