"""Wires adapters to the store: the one object the UI holds on to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from backends.adapter import Action, ActionError, Adapter, ObjectRef
from backends.model import Instance, Source, WorkloadKey
from backends.pairing import Naming
from backends.store import Store

log = logging.getLogger(__name__)


AdapterFactory = Callable[[], Adapter]


class Hub:
    """Adapters and the store they feed. Adapters may be given built, or as factories
    that are called in a thread when the hub starts: building one imports its SDK
    (docker alone is ~90 ms), which has no business delaying the UI's first frame."""

    def __init__(
        self, adapters: Sequence[Adapter] = (), *, factories: Sequence[AdapterFactory] = (),
        naming: Naming | None = None,
    ) -> None:
        self.store = Store(naming)
        self.adapters: dict[Source, Adapter] = {a.source: a for a in adapters}
        self._factories = list(factories)

    async def start_adapters(self) -> None:
        """Build the adapters given as factories, off the event loop."""
        while self._factories:
            adapter = await asyncio.to_thread(self._factories.pop(0))
            self.adapters[adapter.source] = adapter

    async def run(self) -> None:
        """Pump every adapter's events into the store until cancelled."""
        await self.start_adapters()
        try:
            await asyncio.gather(*(self._pump(a) for a in self.adapters.values()))
        finally:
            for adapter in self.adapters.values():
                await adapter.close()

    async def _pump(self, adapter: Adapter) -> None:
        async for event in adapter.stream():
            self.store.apply(event)

    def supports(self, action: Action, instances: Sequence[Instance]) -> bool:
        return bool(instances) and all(
            (a := self.adapters.get(i.source)) is not None and a.supports(action) for i in instances
        )

    async def perform(self, action: Action, instances: Sequence[Instance]) -> None:
        by_source: dict[Source, list[Instance]] = {}
        for inst in instances:
            by_source.setdefault(inst.source, []).append(inst)
        for source, group in by_source.items():
            adapter = self.adapters.get(source)
            if adapter is None or not adapter.supports(action):
                raise ActionError(f"{action} is not available for {source} objects (not connected yet?)")
            await adapter.perform(action, group)

    def shell_command(self, instance: Instance) -> list[str]:
        return self._adapter(instance.source, instance.name).shell_command(instance)

    async def scale(self, workload: WorkloadKey, replicas: int) -> None:
        await self._adapter(workload.source, str(workload)).scale(workload, replicas)

    async def rollout_restart(self, workload: WorkloadKey) -> None:
        await self._adapter(workload.source, str(workload)).rollout_restart(workload)

    async def manifest(self, ref: ObjectRef) -> str:
        return await self._adapter(ref.source, str(ref)).manifest(ref)

    async def describe(self, ref: ObjectRef) -> str:
        return await self._adapter(ref.source, str(ref)).describe(ref)

    # ---- the Kubernetes connection's scope (context, namespace) ------------------------

    @property
    def kube(self) -> KubeScope | None:
        adapter = self.adapters.get(Source.K3S)
        return adapter if isinstance(adapter, KubeScope) else None

    def _kube(self) -> KubeScope:
        kube = self.kube
        if kube is None:
            raise ActionError("Kubernetes is not connected")
        return kube

    async def contexts(self) -> list[str]:
        return await self._kube().contexts()

    async def set_context(self, name: str) -> None:
        await self._kube().set_context(name)

    async def set_namespace(self, namespace: str | None) -> None:
        await self._kube().set_namespace(namespace)

    def _adapter(self, source: Source, what: str) -> Adapter:
        adapter = self.adapters.get(source)
        if adapter is None:
            raise ActionError(f"no {source} connection for {what}")
        return adapter


@runtime_checkable
class KubeScope(Protocol):
    """What the UI may ask of the Kubernetes adapter beyond `Adapter` (no kr8s needed)."""

    @property
    def context(self) -> str | None: ...

    @property
    def namespace(self) -> str | None: ...

    async def contexts(self) -> list[str]: ...

    async def set_context(self, name: str) -> None: ...

    async def set_namespace(self, namespace: str | None) -> None: ...
