"""The Kubernetes views: `:deploy` (Deployments and StatefulSets), `:svc`, `:events`,
`:ns` and `:ctx`. Pods are instances and live in tui/views/workloads.py.
"""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.widgets import DataTable

from backends.adapter import ActionError
from backends.kube_rows import CONTEXT_COLUMNS, context_row
from backends.forward_rows import ForwardTarget, target_of_service, target_of_workload
from backends.model import KubeContext, KubeService, Namespace, Source, WorkloadKey, WorkloadSpec
from backends.store import Store
from tui.views.kinds import ALL_NAMESPACES, DEPLOYMENTS, EVENTS, KUBE_SERVICES, NAMESPACES, PODS, ResourceKind
from tui.views.workloads import (
    FORWARD_BINDING,
    INSPECT_BINDINGS,
    LOGS_BINDING,
    ActionsView,
    InstanceListView,
    ScalingView,
)


class DeploymentsView(ScalingView):
    ENTER_HELP = "Pods of the workload"
    BINDINGS = [
        Binding("r", "rollout_restart", "Rollout restart", id="rollout_restart"),
        *ScalingView.SCALE_BINDINGS,
        LOGS_BINDING,
        *INSPECT_BINDINGS,
        FORWARD_BINDING,
    ]

    def __init__(self, store: Store) -> None:
        super().__init__(DEPLOYMENTS, store, crumb="deployments")

    def forward_target(self) -> ForwardTarget | None:
        spec: WorkloadSpec | None = self.selected
        return target_of_workload(self.store, spec) if spec is not None else None

    def workload_target(self) -> tuple[WorkloadKey, int] | None:
        spec: WorkloadSpec | None = self.selected
        return (spec.key, spec.desired) if spec else None

    def action_logs(self) -> None:
        spec: WorkloadSpec | None = self.selected
        if spec is not None:
            workload_id = spec.id
            self.app.open_logs(f"{spec.kind} {spec.key}", lambda store: store.instances_of(workload_id))

    def action_rollout_restart(self) -> None:
        spec: WorkloadSpec | None = self.selected
        if spec is not None:
            self.app.request_service_restart(f"{spec.kind} {spec.key}", [], spec.key)

    @on(DataTable.RowSelected)
    async def _drill(self, event: DataTable.RowSelected) -> None:
        event.stop()
        spec: WorkloadSpec | None = self.selected
        if spec is not None:
            view = InstanceListView(PODS, self.store, crumb=f"{spec.key} pods", scope=spec.id)
            view.kind = PODS.with_empty_text(f"{spec.kind} {spec.key} has no pods now. Esc goes back.")
            await self.app.push_view(view)


class InspectOnlyView(ActionsView):
    BINDINGS = [*INSPECT_BINDINGS]


class KubeServicesView(InspectOnlyView):
    BINDINGS = [FORWARD_BINDING]

    def __init__(self, store: Store) -> None:
        super().__init__(KUBE_SERVICES, store, crumb="services")

    def forward_target(self) -> ForwardTarget | None:
        svc: KubeService | None = self.selected
        return target_of_service(self.store, svc) if svc is not None else None


def kube_services_view(store: Store) -> KubeServicesView:
    return KubeServicesView(store)


def events_view(store: Store) -> InspectOnlyView:
    return InspectOnlyView(EVENTS, store, crumb="events")


class NamespacesView(InspectOnlyView):
    ENTER_HELP = "Show this namespace (the first row: all of them)"

    def __init__(self, store: Store) -> None:
        super().__init__(NAMESPACES, store, crumb="namespaces")

    @on(DataTable.RowSelected)
    async def _switch(self, event: DataTable.RowSelected) -> None:
        event.stop()
        namespace: Namespace | None = self.selected
        if namespace is not None:
            await self.app.switch_namespace(None if namespace is ALL_NAMESPACES else namespace.name)


CONTEXTS = ResourceKind(
    name="contexts",
    columns=CONTEXT_COLUMNS,
    render=context_row,
    sort_columns=("name",),
    select=lambda _store, _scope: {},  # not in the store: read from the kubeconfig on open
    delta=lambda _store, _change, _scope: ({}, set()),
    labels=lambda _store, _ctx: {},
    empty_text="Reading the kubeconfig…",
    sources=(Source.K3S,),
)


class ContextsView(ActionsView):
    ENTER_HELP = "Switch to this context"

    def __init__(self, store: Store) -> None:
        super().__init__(CONTEXTS, store, crumb="contexts")

    def on_mount(self) -> None:
        super().on_mount()
        self.run_worker(self._load(), exit_on_error=False)

    async def _load(self) -> None:
        try:
            names = await self.app.hub.contexts()
        except ActionError as exc:
            self.kind = CONTEXTS.with_empty_text(str(exc))
            self.put_rows({})
            return
        kube = self.app.hub.kube
        current = kube.context if kube is not None else None
        contexts = [KubeContext(name, name == current) for name in names]
        self.kind = CONTEXTS.with_empty_text("The kubeconfig has no contexts.")
        self.put_rows({c.key: c for c in contexts})

    @on(DataTable.RowSelected)
    async def _switch(self, event: DataTable.RowSelected) -> None:
        event.stop()
        context: KubeContext | None = self.selected
        if context is not None:
            await self.app.switch_context(context.name)
