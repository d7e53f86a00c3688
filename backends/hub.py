"""Wires adapters to the store: the one object the UI holds on to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from backends.adapter import Action, ActionError, Adapter, ObjectRef
from backends.forwards import ApiUnreachable, ForwardManager, PortOpener, PortStream
from backends.model import AdapterEvent, Instance, Source, WorkloadKey
from backends.pairing import Naming
from backends.store import Store

log = logging.getLogger(__name__)


AdapterFactory = Callable[[], Adapter]


@runtime_checkable
class Prober(Protocol):
    """Watches the store and adds findings of its own (HTTP health checks): it reads
    `store`, writes through `apply`, and runs until cancelled or closed."""

    async def run(self, apply: Callable[[AdapterEvent], object]) -> None: ...

    async def close(self) -> None: ...


# Probers read the hub's store, which does not exist before the hub: they may be given
# as factories of it (called in a thread, like adapter factories, for their imports).
ProberFactory = Callable[[Store], Prober]


class Hub:
    """Adapters and the store they feed, and probers that watch it. Adapters may be
    given built, or as factories that are called in a thread when the hub starts:
    building one imports its SDK (docker alone is ~90 ms), which has no business
    delaying the UI's first frame."""

    def __init__(
        self, adapters: Sequence[Adapter] = (), *, factories: Sequence[AdapterFactory] = (),
        naming: Naming | None = None, probers: Sequence[Prober | ProberFactory] = (),
    ) -> None:
        self.store = Store(naming)
        self.adapters: dict[Source, Adapter] = {a.source: a for a in adapters}
        self._factories = list(factories)
        self.probers: list[Prober] = [p for p in probers if isinstance(p, Prober)]
        self._prober_factories: list[ProberFactory] = [p for p in probers if not isinstance(p, Prober)]
        # Always there (the `:pf` view, saved sets, promotion all use it), and cheap while
        # no forward runs: it listens on nothing and only glances at store changes.
        self.forwards = ForwardManager(self.store, self.open_port)

    async def start_adapters(self) -> None:
        """Build the adapters given as factories, off the event loop."""
        while self._factories:
            adapter = await asyncio.to_thread(self._factories.pop(0))
            self.adapters[adapter.source] = adapter

    async def start_probers(self) -> None:
        """Build the probers given as factories, off the event loop."""
        while self._prober_factories:
            self.probers.append(await asyncio.to_thread(self._prober_factories.pop(0), self.store))

    async def run(self) -> None:
        """Pump every adapter's events into the store, and run the probers, until
        cancelled; then close them all."""
        await self.start_adapters()
        await self.start_probers()
        try:
            await asyncio.gather(
                *(self._pump(a) for a in self.adapters.values()),
                *(self._probe(p) for p in [*self.probers, self.forwards]),
            )
        finally:
            # Forwards first: their streams ride on the k3s adapter's connection, and
            # quitting must leave no listener behind.
            await self.forwards.close()
            for prober in self.probers:
                await prober.close()
            for adapter in self.adapters.values():
                await adapter.close()

    async def _pump(self, adapter: Adapter) -> None:
        async for event in adapter.stream():
            self.store.apply(event)

    async def _probe(self, prober: Prober) -> None:
        # A prober is an extra: its failure is logged and must not take the adapters
        # (which gather() would leave running, unowned) or the UI with it.
        try:
            await prober.run(self.store.apply)
        except Exception:
            log.exception("prober %r failed", prober)

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

    async def live_object(self, manifest: Mapping[str, Any]) -> dict | None:
        """The object `manifest` names, as the cluster has it now (None: it does not exist).
        For the promotion preview's diff; ActionError without a cluster."""
        from backends.kube import ObjectId

        adapter = self.adapters.get(Source.K3S)
        get_object = getattr(adapter, "get_object", None)
        if get_object is None:
            raise ActionError("Kubernetes is not connected")
        return await get_object(ObjectId.of(manifest))

    @contextlib.asynccontextmanager
    async def open_port(self, namespace: str, pod: str, port: int) -> AsyncIterator[PortStream]:
        """A stream to a pod's port, through the k3s adapter (what `forwards` relays over).
        Without one (not configured, or not built yet) it raises ApiUnreachable, an
        ActionError that the forward manager waits out."""
        adapter = self.adapters.get(Source.K3S)
        if not isinstance(adapter, PortOpener):
            raise ApiUnreachable("Kubernetes is not connected: no pod port can be opened")
        async with adapter.open_port(namespace, pod, port) as stream:
            yield stream

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
