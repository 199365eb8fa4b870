"""The worker-process fixtures of tests/crash, shared here."""

from tests.crash.conftest import client, fleet  # noqa: F401
