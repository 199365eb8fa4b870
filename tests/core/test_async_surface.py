"""Every public blocking method of Engine, Client, WorkflowHandle and Queue has an ``_async``
twin (API.md), checked by introspection; and the twins work."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest

from durable_core import Client, Engine, Queue, WorkflowHandle, set_event, step, workflow
from durable_core.runtime import Runtime

# The engine's seam for its own modules and integrations (durable_core.runtime.Runtime): not
# user API, except the calls users make too, which keep their twins.
SEAM = {name for name in dir(Runtime) if not name.startswith("_")} - {
    "start_workflow",
    "retrieve_workflow",
    "cancel_workflow",
}


def blocking_methods(cls: type) -> list[str]:
    names = []
    for name in dir(cls):
        if name.startswith("_") or name.endswith("_async") or name in SEAM:
            continue
        member = inspect.getattr_static(cls, name)
        if isinstance(member, property) or not callable(member):
            continue
        function = getattr(cls, name)
        if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("cls", [Engine, Client, WorkflowHandle, Queue])
def test_every_public_blocking_method_has_an_async_twin(cls):
    methods = blocking_methods(cls)
    assert methods  # the introspection sees the class's methods
    missing = [name for name in methods if not hasattr(cls, f"{name}_async")]
    assert missing == [], f"{cls.__name__} lacks {', '.join(n + '_async' for n in missing)}"
    for name in methods:
        twin = getattr(cls, f"{name}_async")
        assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name


def test_the_surface_checked_is_the_one_api_md_names():
    assert {"cancel_workflow", "fork_workflow", "resume_workflow", "list_workflows"} <= set(
        blocking_methods(Engine)
    )
    assert {"enqueue", "close", "get_event", "read_stream"} <= set(blocking_methods(Client))
    assert {"result", "status"} <= set(blocking_methods(WorkflowHandle))
    assert blocking_methods(Queue) == ["enqueue", "enqueue_many"]


@step
def add_one(x: int) -> int:
    return x + 1


@workflow
def publishing(x: int) -> int:
    set_event("seen", x)
    return add_one(x)


async def test_engine_twins(engine):
    handle = await engine.start_workflow_async(publishing, 1)
    assert await handle.result_async(timeout=30) == 2
    wid = handle.workflow_id
    assert (await engine.retrieve_workflow_async(wid)).workflow_id == wid
    assert (await engine.get_workflow_status_async(wid)).status == "SUCCESS"
    assert [
        w.workflow_id
        for w in await engine.list_workflows_async(name=publishing.__durable_workflow__.name)
    ] == [wid]
    assert [s.name for s in await engine.list_steps_async(wid)] == [
        "durable.set_event",
        add_one.__durable_step__.name,
    ]
    assert await engine.get_event_async(wid, "seen", timeout=5) == 1
    fork = await engine.fork_workflow_async(wid, 2, workflow_id=f"{wid}-fork")
    assert fork.workflow_id == f"{wid}-fork"
    assert await fork.result_async(timeout=30) == 2
    assert wid in str(await engine.export_workflow_async(wid))
    assert await engine.garbage_collect_async(dt.timedelta(days=1)) == 0


async def test_async_with_client(engine):
    handle = await engine.start_workflow_async(publishing, 5)
    await handle.result_async(timeout=30)
    async with Client(engine.database_url) as client:
        assert await client.get_event_async(handle.workflow_id, "seen", timeout=5) == 5
        assert (await client.get_workflow_status_async(handle.workflow_id)).result == 6
        status = await (await client.retrieve_workflow_async(handle.workflow_id)).status_async()
        assert status.status == "SUCCESS"
        assert [v async for v in client.read_stream_async(handle.workflow_id, "none")] == []
        queued = await client.enqueue_async("q-async", "no.such.workflow", 1)
        assert (await queued.status_async()).status == "ENQUEUED"
        await client.cancel_workflow_async(queued.workflow_id)
        assert (await queued.status_async()).status == "CANCELLED"
