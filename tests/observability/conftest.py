"""An in-memory OpenTelemetry exporter handed to durable_core for one test at a time."""

from __future__ import annotations

import pytest

from durable_core import observability


@pytest.fixture
def spans():
    """The exporter that receives every durable span finished during the test."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability.set_tracer_provider(provider)
    exporter.provider = provider  # so tests can open their own spans in the same provider
    yield exporter
    observability.set_tracer_provider(None)
    provider.shutdown()
