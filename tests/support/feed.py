"""Run an adapter for real in a test: its stream into a Store, conditions waited on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from backends.adapter import Adapter
from backends.model import AdapterEvent, Instance, Snapshot, SourceStatus
from backends.store import Store


class AdapterFeed:
    """Runs an adapter's stream into a Store in a background task, keeping every raw
    event too, and waits on conditions over what arrived (polling, never fixed sleeps)."""

    deadline: float = 15.0

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.store = Store()
        self.events: list[AdapterEvent] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self):  # noqa: ANN204 - the subclass
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task
        await self.adapter.close()

    async def _run(self) -> None:
        async for event in self.adapter.stream():
            self.events.append(event)
            self.store.apply(event)

    async def until(self, predicate: Callable[[], object], what: str, timeout: float | None = None) -> None:
        timeout = self.deadline if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self._task is not None
            if self._task.done():
                self._task.result()  # re-raises what killed the stream
                pytest.fail(f"the stream ended while waiting for {what}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}; status: {self.status}")
            await asyncio.sleep(0.02)

    async def synced(self, count: int = 1) -> None:
        await self.until(lambda: len(self.snapshots) >= count, f"snapshot #{count}")

    @property
    def status(self) -> SourceStatus | None:
        return self.store.status.get(self.adapter.source)

    @property
    def snapshots(self) -> list[Snapshot]:
        return [e for e in self.events if isinstance(e, Snapshot)]

    def statuses(self) -> list[SourceStatus]:
        return [e for e in self.events if isinstance(e, SourceStatus)]


class KubeFeed(AdapterFeed):
    """An AdapterFeed for the Kubernetes adapter, with pods looked up by name."""

    def pods(self) -> dict[str, Instance]:
        """Pod name -> instance; fails on two rows for one pod name."""
        found: dict[str, Instance] = {}
        for inst in self.store.instances.values():
            assert inst.name not in found, f"pod {inst.name} appears twice"
            found[inst.name] = inst
        return found

    def pod_names(self) -> set[str]:
        return set(self.pods())
