"""The public names of API.md are exported, and nothing else is required to use them."""

import importlib
import logging
import pkgutil
import re
from pathlib import Path

import durable_core
import durable_core.errors

API_MD = Path(__file__).resolve().parents[3] / "shared" / "API.md"

CORE_NAMES = [
    "workflow", "step", "transaction", "scheduled", "Queue",
    "Engine", "Client", "WorkflowHandle", "WorkflowStatus", "StepInfo",
    "start_workflow", "retrieve_workflow", "send", "get_event", "read_stream",
    "set_default_engine",
    "sleep", "recv", "set_event", "write_stream", "close_stream", "workflow_id", "sql_session",
    "sleep_async", "recv_async", "start_workflow_async",
    "patched", "deprecate_patch", "step_attempt", "cancelled",
]  # fmt: skip
ERROR_NAMES = [
    "DurableError", "WorkflowNotFound", "WorkflowCancelled", "WorkflowConflict",
    "NonDeterministicWorkflow", "StepRetriesExceeded", "SerializationError",
    "WorkflowFailed", "DeduplicationConflict", "NotInWorkflow",
]  # fmt: skip


def test_all_holds_every_api_name():
    assert set(CORE_NAMES) <= set(durable_core.__all__)
    for name in durable_core.__all__:
        assert hasattr(durable_core, name), name


def test_errors_module_holds_every_error():
    for name in ERROR_NAMES:
        cls = getattr(durable_core.errors, name)
        assert issubclass(cls, Exception)
        if name != "DurableError":
            assert issubclass(cls, durable_core.errors.DurableError)


def test_api_md_import_block_matches():
    """When shared/API.md is present, its import block is exactly what we check above."""
    if not API_MD.exists():
        return
    text = API_MD.read_text()
    block = re.search(r"from durable_core import \((.*?)\)\n", text, re.S).group(1)
    names = {
        n.strip() for n in re.sub(r"#.*", "", block).replace("\n", ",").split(",") if n.strip()
    }
    assert names <= set(durable_core.__all__)
    errors = re.search(r"from durable_core.errors import \((.*?)\)\n", text, re.S).group(1)
    enames = {n.strip() for n in errors.replace("\n", ",").split(",") if n.strip()}
    assert enames == set(ERROR_NAMES)


def test_public_objects_name_the_package_as_their_module():
    for name in durable_core.__all__:
        obj = getattr(durable_core, name)
        if hasattr(obj, "__module__"):
            assert obj.__module__ == "durable_core", name
    assert durable_core.errors.WorkflowNotFound.__module__ == "durable_core.errors"


def test_loggers_are_named_after_their_module():
    """A module's logger is named after the module, or after its package for the store's
    modules and private ones (``durable_core.store``, ``fastapi_durable``), so a filter set
    on a name catches what that module logs. (The heartbeat logged as ``durable_core.engine``.)"""
    import fastapi_durable

    checked = 0
    for package in (durable_core, fastapi_durable):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            log = getattr(importlib.import_module(info.name), "log", None)
            if isinstance(log, logging.Logger):
                assert log.name in (info.name, info.name.rpartition(".")[0]), info.name
                checked += 1
    assert checked >= 15
