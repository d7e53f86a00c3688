"""The view registry: every top-level view and the `:` words that open it.

A later capability adds its view by appending a `ViewSpec` here; the app turns each
spec into a command, a help entry and a start-up choice (`ui.default_view`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backends.store import Store
from tui.views.forwards import ForwardsView
from tui.views.health import HealthView
from tui.views.kube import ContextsView, DeploymentsView, NamespacesView, events_view, kube_services_view
from tui.views.table import ResourceView
from tui.views.workloads import WorkloadsView, containers_view, pods_view


@dataclass(frozen=True)
class ViewSpec:
    name: str
    aliases: tuple[str, ...]
    help: str
    make: Callable[[Store], ResourceView]


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("workloads", ("wk", "workload"), "Every service, Compose and k3s, one row each", WorkloadsView),
    ViewSpec("containers", ("ctr", "co", "container"), "Every container of every Compose project", containers_view),
    ViewSpec("pods", ("po", "pod"), "Every pod (k3s)", pods_view),
    ViewSpec("deployments", ("deploy", "dp", "sts", "statefulsets"), "Deployments and StatefulSets", DeploymentsView),
    ViewSpec("services", ("svc", "service"), "Kubernetes Services", kube_services_view),
    ViewSpec("events", ("ev", "event"), "Kubernetes events, newest first", events_view),
    ViewSpec("health", ("he", "hc"), "Health of every service: why, since when, timeline, HTTP checks", HealthView),
    ViewSpec("forwards", ("pf", "portforwards", "port-forwards"),
             "Port-forwards and Compose published ports: what answers on which local port", ForwardsView),
    ViewSpec("namespaces", ("ns", "namespace"), "Namespaces; Enter switches (:ns NAME too)", NamespacesView),
    ViewSpec("contexts", ("ctx", "context"), "Kubeconfig contexts; Enter switches (:ctx NAME too)", ContextsView),
)

# Views whose `:` word takes a name to switch to rather than a filter.
SWITCHES = {"namespaces": "namespace", "contexts": "context"}


def view_spec(name: str) -> ViewSpec | None:
    return next((v for v in VIEWS if name == v.name or name in v.aliases), None)
