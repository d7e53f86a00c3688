"""A hub running in a task for adapter-level tests, and waiting on its store.

`running_hub(hub)` runs `hub.run()` for the body of an `async with` and cancels it after;
`until(condition, what)` polls a condition of the store (not a sleep as an assertion).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from backends.hub import Hub
from backends.model import ConnState, Source


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> object:
    """Wait until `condition()` is true, and return what it returned."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def connected(hub: Hub, source: Source) -> bool:
    status = hub.store.status.get(source)
    return status is not None and status.state == ConnState.CONNECTED


@contextlib.asynccontextmanager
async def running_hub(hub: Hub, *, wait_connected: Source | None = None) -> AsyncIterator[Hub]:
    """`hub` running for the body; with `wait_connected`, first until that source is
    connected. A hub whose run ended before its time re-raises what ended it."""
    task = asyncio.create_task(hub.run())
    try:
        if wait_connected is not None:
            await until(lambda: connected(hub, wait_connected), f"{wait_connected} connected")
        yield hub
        if task.done():
            task.result()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
