"""The public API's types, as a user's type checker sees them: mypy checks
public_api_types.py (its ``assert_type`` calls) and must report no error."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")


def test_public_api_types_check() -> None:
    target = Path(__file__).with_name("public_api_types.py")
    stdout, stderr, status = api.run([str(target), "--no-incremental", "--follow-imports=silent"])
    assert status == 0, stdout + stderr
