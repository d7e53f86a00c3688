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
    KubeObject,
    LogicalService,
    ObjectChanged,
    ObjectGone,
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
from backends.health import HealthLog
from backends.pairing import Naming, rows_of_group
from backends.rows import utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Change:
    """What one event changed. Keys are `Instance.key`, `WorkloadKey.id` (workloads and
    specs), `LogicalService.id` and `KubeObject.key`."""

    instances: dict[str, Instance] = field(default_factory=dict)
    instances_removed: set[str] = field(default_factory=set)
    workloads: dict[str, Workload] = field(default_factory=dict)
    workloads_removed: set[str] = field(default_factory=set)
    specs: dict[str, WorkloadSpec] = field(default_factory=dict)
    specs_removed: set[str] = field(default_factory=set)
    services: dict[str, LogicalService] = field(default_factory=dict)
    services_removed: set[str] = field(default_factory=set)
    objects: dict[str, KubeObject] = field(default_factory=dict)
    objects_removed: set[str] = field(default_factory=set)
    status: SourceStatus | None = None

    def __bool__(self) -> bool:
        return bool(
            self.instances
            or self.instances_removed
            or self.workloads
            or self.workloads_removed
            or self.specs
            or self.specs_removed
            or self.services
            or self.services_removed
            or self.objects
            or self.objects_removed
            or self.status
        )


Subscriber = Callable[[Change], None]


class Store:
    def __init__(self, naming: Naming | None = None) -> None:
        self.instances: dict[str, Instance] = {}
        self.workloads: dict[str, Workload] = {}
        self.status: dict[Source, SourceStatus] = {}
        self._members: dict[str, set[str]] = {}  # workload id -> instance keys
        self.specs: dict[str, WorkloadSpec] = {}  # workload id -> its controller's spec
        # The hybrid rows: workloads grouped by `naming`, each group paired into rows.
        self.naming = naming or Naming()
        self.services: dict[str, LogicalService] = {}
        self._groups: dict[str, set[str]] = {}  # group -> workload ids
        self._group_rows: dict[str, set[str]] = {}  # group -> its service row ids
        self._service_of: dict[str, str] = {}  # workload id -> service row id
        self.objects: dict[str, KubeObject] = {}  # services, events, namespaces (KubeObject.key)
        self._subscribers: list[Subscriber] = []
        # Health over the session, fed below before any subscriber sees a change.
        self.health_log = HealthLog(utcnow)
        self._before: dict[str, Instance] = {}  # instances as they were before this change

    # ---- observing ---------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every non-empty change; returns the unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def instances_of(self, workload_id: str) -> list[Instance]:
        return [self.instances[k] for k in sorted(self._members.get(workload_id, ()))]

    def service_of(self, workload_id: str) -> str | None:
        """The id of the hybrid row a workload is shown in."""
        return self._service_of.get(workload_id)

    def instances_of_service(self, service_id: str) -> list[Instance]:
        service = self.services.get(service_id)
        if service is None:
            return []
        return [i for side in service.sides for i in self.instances_of(side.id)]

    def objects_of(self, kind: type) -> dict[str, KubeObject]:
        return {k: o for k, o in self.objects.items() if isinstance(o, kind)}

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
                self._put_spec(spec, change, touched)
            case SpecGone(key=key):
                self._drop_spec(key, change, touched)
            case ObjectChanged(obj=obj):
                self._put_object(obj, change)
            case ObjectGone(key=key):
                self._drop_object(key, change)
            case Snapshot(source=source, instances=fresh, specs=fresh_specs, objects=fresh_objects):
                seen = {inst.key for inst in fresh}
                for key in [k for k, i in self.instances.items() if i.source == source and k not in seen]:
                    self._drop(key, change, touched)
                for inst in fresh:
                    self._put(inst, change, touched)
                declared = {spec.id for spec in fresh_specs}
                for spec in [s for s in self.specs.values() if s.key.source == source and s.id not in declared]:
                    self._drop_spec(spec.key, change, touched)
                for spec in fresh_specs:
                    self._put_spec(spec, change, touched)
                present = {obj.key for obj in fresh_objects}
                for key in [k for k, o in self.objects.items() if o.source == source and k not in present]:
                    self._drop_object(key, change)
                for obj in fresh_objects:
                    self._put_object(obj, change)
        groups: set[str] = set()
        for wkey in touched:
            self._reaggregate(wkey, change, groups)
        for group in groups:
            self._regroup(group, change)
        if change.services or change.instances:
            self.health_log.observe(change.services, change.instances, self._before)
        self._before = {}
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
        if old is not None:
            self._before.setdefault(inst.key, old)
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

    def _put_spec(self, spec: WorkloadSpec, change: Change, touched: set[WorkloadKey]) -> None:
        if self.specs.get(spec.id) != spec:
            self.specs[spec.id] = spec
            change.specs[spec.id] = spec
            change.specs_removed.discard(spec.id)
            touched.add(spec.key)

    def _drop_spec(self, key: WorkloadKey, change: Change, touched: set[WorkloadKey]) -> None:
        if self.specs.pop(key.id, None) is not None:
            change.specs.pop(key.id, None)
            change.specs_removed.add(key.id)
            touched.add(key)

    def _put_object(self, obj: KubeObject, change: Change) -> None:
        if self.objects.get(obj.key) != obj:
            self.objects[obj.key] = obj
            change.objects[obj.key] = obj
            change.objects_removed.discard(obj.key)

    def _drop_object(self, key: str, change: Change) -> None:
        if self.objects.pop(key, None) is not None:
            change.objects.pop(key, None)
            change.objects_removed.add(key)

    def _reaggregate(self, wkey: WorkloadKey, change: Change, groups: set[str]) -> None:
        members = self._members.get(wkey.id)
        spec = self.specs.get(wkey.id)
        group = self.naming.group_of(wkey)
        if not members:
            self._members.pop(wkey.id, None)
            if spec is None:
                if self.workloads.pop(wkey.id, None) is not None:
                    change.workloads_removed.add(wkey.id)
                    self._groups.get(group, set()).discard(wkey.id)
                    self._service_of.pop(wkey.id, None)
                    groups.add(group)
                return
        workload = aggregate(wkey, [self.instances[k] for k in members or ()], spec)
        if self.workloads.get(wkey.id) != workload:
            self.workloads[wkey.id] = workload
            change.workloads[wkey.id] = workload
            self._groups.setdefault(group, set()).add(wkey.id)
            groups.add(group)

    def _regroup(self, group: str, change: Change) -> None:
        """Pair a group's workloads into rows again; only rows that differ go out."""
        ids = self._groups.get(group, set())
        rows = {row.id: row for row in rows_of_group(group, (self.workloads[w] for w in ids))}
        for row_id in self._group_rows.get(group, set()) - rows.keys():
            if self.services.pop(row_id, None) is not None:
                change.services.pop(row_id, None)
                change.services_removed.add(row_id)
        for row_id, row in rows.items():
            for side in row.sides:
                self._service_of[side.id] = row_id
            if self.services.get(row_id) != row:
                self.services[row_id] = row
                change.services[row_id] = row
                change.services_removed.discard(row_id)
        if rows:
            self._group_rows[group] = set(rows)
        else:
            self._group_rows.pop(group, None)
            self._groups.pop(group, None)
