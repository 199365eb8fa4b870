"""A process that runs Durable's lifespan, starts a workflow whose step outlives the shutdown
timeout by far, leaves the lifespan and returns: ``python -m tests.fastapi.run_lifespan_exit URL``.
Prints ``lifespan exited`` when the lifespan has shut down."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from fastapi import FastAPI

from durable_core import step, workflow
from fastapi_durable import Durable

started = threading.Event()


@step
def outlives_the_timeout() -> str:
    started.set()
    time.sleep(60)  # the workload: a step still running when the app shuts down
    return "done"


@workflow
def long_flow() -> str:
    return outlives_the_timeout()


async def main(url: str) -> None:
    durable = Durable(database_url=url, shutdown_timeout=1)
    app = FastAPI(lifespan=durable.lifespan)
    async with durable.lifespan(app):
        durable.engine.start_workflow(long_flow, workflow_id="exit-1")
        assert await asyncio.to_thread(started.wait, 30)
    print("lifespan exited", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
