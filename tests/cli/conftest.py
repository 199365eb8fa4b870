"""Helpers for the command-line tests: run ``durable`` in-process with click's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from durable_core.cli import cli


def run_cli(database_url: str | None, *args: str, env: dict | None = None) -> Result:
    argv = (["--database-url", database_url] if database_url else []) + list(args)
    return CliRunner().invoke(cli, argv, env=env, catch_exceptions=True)


def assert_clean_failure(result: Result, *fragments: str) -> None:
    """Exit 1 with a message on stderr, not an uncaught exception."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def durable(database_url) -> Callable[..., Result]:
    """``durable("workflows", "list")`` against the test's system database."""

    def invoke(*args: str) -> Result:
        return run_cli(database_url, *args)

    return invoke


@pytest.fixture
def durable_json(durable) -> Callable[..., Any]:
    """Runs a command with ``--json`` and returns the parsed output (asserting exit 0)."""

    def invoke(*args: str) -> Any:
        result = durable(*args, "--json")
        assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.stdout)

    return invoke
