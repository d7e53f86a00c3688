"""The view registry: every top-level view and the `:` words that open it.

A later capability adds its view by appending a `ViewSpec` here; the app turns each
spec into a command, a help entry and a start-up choice (`ui.default_view`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backends.store import Store
from tui.views.table import ResourceView
from tui.views.workloads import ContainersView, WorkloadsView


@dataclass(frozen=True)
class ViewSpec:
    name: str
    aliases: tuple[str, ...]
    help: str
    make: Callable[[Store], ResourceView]


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("workloads", ("wk", "workload"), "Every service, one row each", WorkloadsView),
    ViewSpec("containers", ("ctr", "co", "container"), "Every container of every Compose project", ContainersView),
)


def view_spec(name: str) -> ViewSpec | None:
    return next((v for v in VIEWS if name == v.name or name in v.aliases), None)
