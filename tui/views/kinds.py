"""Resource kinds: what a table view shows and where its rows come from.

k9s keeps a registry mapping each resource kind to its accessor and renderer; this is
ours. A `ResourceKind` says which store objects belong to a view (optionally scoped,
e.g. the containers of one workload), how to render and order them, and which part
of a store `Change` concerns it. Later kinds (pods, deployments, forwards) are added
here without touching the table view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from backends.model import Instance, Source, Workload
from backends.rows import INSTANCE_COLUMNS, WORKLOAD_COLUMNS, Cell, Column, instance_row, workload_row
from backends.store import Change, Store

Rows = dict[str, Any]


@dataclass(frozen=True)
class ResourceKind:
    name: str
    columns: tuple[Column, ...]
    render: Callable[[Any, datetime], tuple[Cell, ...]]
    sort_columns: tuple[str, ...]
    select: Callable[[Store, str | None], Rows]
    delta: Callable[[Change, str | None], tuple[Rows, set[str]]]
    labels: Callable[[Store, Any], Mapping[str, str]]
    empty_text: str
    # The connections this view's rows come from; their faults explain an empty table.
    sources: tuple[Source, ...] = (Source.COMPOSE,)

    def with_empty_text(self, text: str) -> ResourceKind:
        return replace(self, empty_text=text)


def _workload_labels(store: Store, w: Workload) -> Mapping[str, str]:
    members = store.instances_of(w.id)
    return members[0].label_map() if members else {}


def _in_scope(inst: Instance, scope: str | None) -> bool:
    return scope is None or inst.workload.id == scope


WORKLOADS = ResourceKind(
    name="workloads",
    columns=WORKLOAD_COLUMNS,
    render=workload_row,
    sort_columns=("project", "service"),
    select=lambda store, _scope: dict(store.workloads),
    delta=lambda change, _scope: (change.workloads, change.workloads_removed),
    labels=_workload_labels,
    empty_text="No Compose services found. Start a project with `docker compose up -d`.",
)

CONTAINERS = ResourceKind(
    name="containers",
    columns=INSTANCE_COLUMNS,
    render=instance_row,
    sort_columns=("service", "name"),
    select=lambda store, scope: {k: i for k, i in store.instances.items() if _in_scope(i, scope)},
    delta=lambda change, scope: (
        {k: i for k, i in change.instances.items() if _in_scope(i, scope)},
        change.instances_removed,
    ),
    labels=lambda _store, inst: inst.label_map(),
    empty_text="No containers.",
)
