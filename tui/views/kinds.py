"""Resource kinds: what a table view shows and where its rows come from.

k9s keeps a registry mapping each resource kind to its accessor and renderer; this is
ours. A `ResourceKind` says which store objects belong to a view (optionally scoped,
e.g. the containers and pods of one service), how to render and order them, and which
part of a store `Change` concerns it. The table view knows none of the kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from backends.kube_rows import (
    EVENT_COLUMNS,
    KUBE_SERVICE_COLUMNS,
    NAMESPACE_COLUMNS,
    POD_COLUMNS,
    SPEC_COLUMNS,
    event_order,
    event_row,
    kube_service_row,
    namespace_row,
    pod_row,
    spec_row,
)
from backends.model import ClusterEvent, Instance, KubeService, LogicalService, Namespace, Source
from backends.rows import INSTANCE_COLUMNS, SERVICE_COLUMNS, Cell, Column, instance_row, service_row
from backends.store import Change, Store

Rows = dict[str, Any]


@dataclass(frozen=True)
class ResourceKind:
    name: str
    columns: tuple[Column, ...]
    render: Callable[[Any, datetime], tuple[Cell, ...]]
    sort_columns: tuple[str, ...]
    select: Callable[[Store, str | None], Rows]
    delta: Callable[[Store, Change, str | None], tuple[Rows, set[str]]]
    labels: Callable[[Store, Any], Mapping[str, str]]
    empty_text: str
    # The connections this view's rows come from; their faults explain an empty table.
    sources: tuple[Source, ...] = (Source.COMPOSE,)
    # Row order from the objects themselves, when the cells' text does not sort right.
    order: Callable[[Any], Any] | None = None

    def with_empty_text(self, text: str) -> ResourceKind:
        return replace(self, empty_text=text)


def _labels_of(obj: Any) -> Mapping[str, str]:
    return dict(getattr(obj, "labels", ()))


# ---- the hybrid workloads view ------------------------------------------------------------


def _service_labels(store: Store, s: LogicalService) -> Mapping[str, str]:
    labels: dict[str, str] = {}
    for side in s.sides:
        spec = store.specs.get(side.id)
        if spec is not None:
            labels.update(spec.labels)
        members = store.instances_of(side.id)
        if members:
            labels.update(members[0].labels)
    return labels


SERVICES = ResourceKind(
    name="workloads",
    columns=SERVICE_COLUMNS,
    render=service_row,
    sort_columns=("name", "group"),
    select=lambda store, _scope: dict(store.services),
    delta=lambda _store, change, _scope: (change.services, change.services_removed),
    labels=_service_labels,
    empty_text=(
        "No services found. Start a Compose project with `docker compose up -d`, "
        "or deploy to the cluster; both show up here live."
    ),
    sources=(Source.COMPOSE, Source.K3S),
)


# ---- instances: containers and pods -----------------------------------------------------------


def _instances(keep: Callable[[Store, Instance, str | None], bool]) -> tuple[
    Callable[[Store, str | None], Rows], Callable[[Store, Change, str | None], tuple[Rows, set[str]]]
]:
    def select(store: Store, scope: str | None) -> Rows:
        return {k: i for k, i in store.instances.items() if keep(store, i, scope)}

    def delta(store: Store, change: Change, scope: str | None) -> tuple[Rows, set[str]]:
        return {k: i for k, i in change.instances.items() if keep(store, i, scope)}, change.instances_removed

    return select, delta


def _of_service(store: Store, inst: Instance, scope: str | None) -> bool:
    return scope is None or store.service_of(inst.workload.id) == scope


def _container(_store: Store, inst: Instance, _scope: str | None) -> bool:
    return inst.source == Source.COMPOSE


def _pod(_store: Store, inst: Instance, scope: str | None) -> bool:
    return inst.source == Source.K3S and (scope is None or inst.workload.id == scope)


_select, _delta = _instances(_of_service)
INSTANCES = ResourceKind(
    name="instances",
    columns=INSTANCE_COLUMNS,
    render=instance_row,
    sort_columns=("where", "service", "name"),
    select=_select,
    delta=_delta,
    labels=lambda _store, inst: inst.label_map(),
    empty_text="No containers or pods.",
    sources=(Source.COMPOSE, Source.K3S),
)

_select, _delta = _instances(_container)
CONTAINERS = ResourceKind(
    name="containers",
    columns=INSTANCE_COLUMNS,
    render=instance_row,
    sort_columns=("service", "name"),
    select=_select,
    delta=_delta,
    labels=lambda _store, inst: inst.label_map(),
    empty_text="No containers.",
)

_select, _delta = _instances(_pod)
PODS = ResourceKind(
    name="pods",
    columns=POD_COLUMNS,
    render=pod_row,
    sort_columns=("namespace", "name"),
    select=_select,
    delta=_delta,
    labels=lambda _store, inst: inst.label_map(),
    empty_text="No pods.",
    sources=(Source.K3S,),
)


# ---- Kubernetes controllers and objects ------------------------------------------------------


DEPLOYMENTS = ResourceKind(
    name="deployments",
    columns=SPEC_COLUMNS,
    render=spec_row,
    sort_columns=("namespace", "name"),
    select=lambda store, _scope: dict(store.specs),
    delta=lambda _store, change, _scope: (change.specs, change.specs_removed),
    labels=lambda _store, spec: _labels_of(spec),
    empty_text="No Deployments or StatefulSets.",
    sources=(Source.K3S,),
)


def _objects(kind: type) -> tuple[
    Callable[[Store, str | None], Rows], Callable[[Store, Change, str | None], tuple[Rows, set[str]]]
]:
    def select(store: Store, _scope: str | None) -> Rows:
        return store.objects_of(kind)

    def delta(_store: Store, change: Change, _scope: str | None) -> tuple[Rows, set[str]]:
        return {k: o for k, o in change.objects.items() if isinstance(o, kind)}, change.objects_removed

    return select, delta


_select, _delta = _objects(KubeService)
KUBE_SERVICES = ResourceKind(
    name="services",
    columns=KUBE_SERVICE_COLUMNS,
    render=kube_service_row,
    sort_columns=("namespace", "name"),
    select=_select,
    delta=_delta,
    labels=lambda _store, svc: _labels_of(svc),
    empty_text="No Kubernetes Services.",
    sources=(Source.K3S,),
)

_select, _delta = _objects(ClusterEvent)
EVENTS = ResourceKind(
    name="events",
    columns=EVENT_COLUMNS,
    render=event_row,
    sort_columns=("namespace", "last_seen"),
    select=_select,
    delta=_delta,
    labels=lambda _store, event: _labels_of(event),
    empty_text="No events (the API server keeps them for an hour).",
    sources=(Source.K3S,),
    order=event_order,
)

# The first row of `:ns`: Enter on it watches every namespace.
ALL_NAMESPACES = Namespace(name="(all namespaces)", phase="")
_select, _delta = _objects(Namespace)
NAMESPACES = ResourceKind(
    name="namespaces",
    columns=NAMESPACE_COLUMNS,
    render=namespace_row,
    sort_columns=("name",),
    select=lambda store, scope: {ALL_NAMESPACES.key: ALL_NAMESPACES, **_select(store, scope)},
    delta=_delta,
    labels=lambda _store, ns: _labels_of(ns),
    empty_text="No namespaces visible.",
    sources=(Source.K3S,),
    order=lambda ns: (ns is not ALL_NAMESPACES, ns.name),
)
