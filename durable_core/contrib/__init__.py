"""Integrations with other libraries, each behind its own extra; built on durable_core's public
API only."""
