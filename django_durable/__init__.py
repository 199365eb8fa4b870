"""django_durable: durable workflows as a Django app.

``INSTALLED_APPS += ["django_durable"]``; see ``django_durable.engine`` for the lifecycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import DjangoEngine

__all__ = ["get_engine"]


def get_engine() -> DjangoEngine:
    """The engine of this process, launched at first use."""
    from .engine import get_engine as _get_engine

    return _get_engine()
