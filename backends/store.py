"""Current state of every source, fed by adapter events, observed by views.

The store turns each adapter event into a `Change`: which instances and workloads
were added, updated or removed. Views apply those as row deltas; nothing upstream
of the store knows a view exists. A `Snapshot` (start-up or resync after a
reconnect) is diffed against what is held, so a resync that finds the world as it
was produces an empty change and no redraw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from backends.model import (
    AdapterEvent,
    Instance,
    InstanceChanged,
    InstanceGone,
    Snapshot,
    Source,
    SourceStatus,
    SpecChanged,
    SpecGone,
    Workload,
    WorkloadKey,
    WorkloadSpec,
    aggregate,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Change:
    """What one event changed. Keys are `Instance.key` and `WorkloadKey.id`."""

    instances: dict[str, Instance] = field(default_factory=dict)
    instances_removed: set[str] = field(default_factory=set)
    workloads: dict[str, Workload] = field(default_factory=dict)
    workloads_removed: set[str] = field(default_factory=set)
    status: SourceStatus | None = None

    def __bool__(self) -> bool:
        return bool(
            self.instances
            or self.instances_removed
            or self.workloads
            or self.workloads_removed
            or self.status
        )


Subscriber = Callable[[Change], None]


class Store:
    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.workloads: dict[str, Workload] = {}
        self.status: dict[Source, SourceStatus] = {}
        self._members: dict[str, set[str]] = {}  # workload id -> instance keys
        self.specs: dict[str, WorkloadSpec] = {}  # workload id -> its controller's spec
        self._subscribers: list[Subscriber] = []

    # ---- observing ---------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every non-empty change; returns the unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def instances_of(self, workload_id: str) -> list[Instance]:
        return [self.instances[k] for k in sorted(self._members.get(workload_id, ()))]

    # ---- feeding -----------------------------------------------------------------------

    def apply(self, event: AdapterEvent) -> Change:
        change = Change()
        touched: set[WorkloadKey] = set()
        match event:
            case SourceStatus():
                if self.status.get(event.source) != event:
                    self.status[event.source] = event
                    change.status = event
            case InstanceChanged(instance=inst):
                self._put(inst, change, touched)
            case InstanceGone():
                self._drop(event.key, change, touched)
            case SpecChanged(spec=spec):
                self._put_spec(spec, touched)
            case SpecGone(key=key):
                self._drop_spec(key, touched)
            case Snapshot(source=source, instances=fresh, specs=fresh_specs):
                seen = {inst.key for inst in fresh}
                for key in [k for k, i in self.instances.items() if i.source == source and k not in seen]:
                    self._drop(key, change, touched)
                for inst in fresh:
                    self._put(inst, change, touched)
                declared = {spec.id for spec in fresh_specs}
                for spec in [s for s in self.specs.values() if s.key.source == source and s.id not in declared]:
                    self._drop_spec(spec.key, touched)
                for spec in fresh_specs:
                    self._put_spec(spec, touched)
        for wkey in touched:
            self._reaggregate(wkey, change)
        if change:
            for callback in list(self._subscribers):
                try:
                    callback(change)
                except Exception:  # one broken view must not stop the others
                    log.exception("store subscriber failed")
        return change

    def _put(self, inst: Instance, change: Change, touched: set[WorkloadKey]) -> None:
        old = self.instances.get(inst.key)
        if old == inst:
            return
        if old is not None and old.workload != inst.workload:
            self._members.get(old.workload.id, set()).discard(inst.key)
            touched.add(old.workload)
        self.instances[inst.key] = inst
        self._members.setdefault(inst.workload.id, set()).add(inst.key)
        change.instances[inst.key] = inst
        change.instances_removed.discard(inst.key)
        touched.add(inst.workload)

    def _drop(self, key: str, change: Change, touched: set[WorkloadKey]) -> None:
        old = self.instances.pop(key, None)
        if old is None:
            return
        self._members.get(old.workload.id, set()).discard(key)
        change.instances.pop(key, None)
        change.instances_removed.add(key)
        touched.add(old.workload)

    def _put_spec(self, spec: WorkloadSpec, touched: set[WorkloadKey]) -> None:
        if self.specs.get(spec.id) != spec:
            self.specs[spec.id] = spec
            touched.add(spec.key)

    def _drop_spec(self, key: WorkloadKey, touched: set[WorkloadKey]) -> None:
        if self.specs.pop(key.id, None) is not None:
            touched.add(key)

    def _reaggregate(self, wkey: WorkloadKey, change: Change) -> None:
        members = self._members.get(wkey.id)
        spec = self.specs.get(wkey.id)
        if not members:
            self._members.pop(wkey.id, None)
            if spec is None:
                if self.workloads.pop(wkey.id, None) is not None:
                    change.workloads_removed.add(wkey.id)
                return
        workload = aggregate(wkey, [self.instances[k] for k in members or ()], spec)
        if self.workloads.get(wkey.id) != workload:
            self.workloads[wkey.id] = workload
            change.workloads[wkey.id] = workload
