"""The hybrid workloads view (`:wk`, the default), and the instance views: the containers
and pods of one service (Enter), `:ctr` and `:pods`.

A workload row stands for both of its sides: restart restarts the Compose containers
and rolls the Kubernetes workload; stop/start concern Compose containers; scaling
concerns the Kubernetes side. The bindings live with the views that own them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on
from textual.binding import Binding
from textual.widgets import DataTable

from backends.adapter import Action, ref_of
from backends.forward_rows import ForwardTarget, target_of_pod, target_of_service, target_of_workload
from backends.model import Instance, KubeService, LogicalService, Source, WorkloadKey
from backends.store import Store
from tui.views.kinds import CONTAINERS, INSTANCES, PODS, SERVICES, ResourceKind
from tui.views.table import ResourceView

if TYPE_CHECKING:
    from tui.app import FerrymanApp

ACTION_NAMES = {"restart": Action.RESTART, "stop": Action.STOP, "start": Action.START, "delete": Action.DELETE}

# Binding actions that change the world: hidden in --readonly.
MUTATING = {"instances", "scale", "scale_dialog", "rollout_restart", "restart_service", "promote", "demote"}

INSPECT_BINDINGS = [
    Binding("y", "inspect('yaml')", "YAML", id="yaml"),
    Binding("d", "inspect('describe')", "Describe", id="describe"),
]
LOGS_BINDING = Binding("l", "logs", "Logs", id="logs")
FORWARD_BINDING = Binding("F", "forward_dialog", "Port-forward", id="port_forward")


class ActionsView(ResourceView):
    """A table whose bindings act on its selection; readonly hides what mutates."""

    app: FerrymanApp

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING and self.app.readonly:
            return False  # hidden from footer and help, and the key does nothing
        if self.selected is None and action not in ("back",):
            return None  # shown dimmed: nothing to act on
        return True

    def inspect_target(self) -> Any:
        return self.selected

    def forward_target(self) -> ForwardTarget | None:
        """What shift-f forwards to from the selected row (None: nothing here can)."""
        return None

    def action_forward_dialog(self) -> None:
        target = self.forward_target()
        if target is None:
            self.app.notify("Port-forwards go to pods, Services and Kubernetes workloads.", severity="warning")
            return
        self.app.open_forward_dialog(target)

    @on(DataTable.RowHighlighted)
    def _selection_moved(self) -> None:
        # What the keys can do depends on the row (stop is Compose's, delete is k3s's):
        # the footer and the help must follow the cursor.
        self.screen.refresh_bindings()

    def action_inspect(self, mode: str) -> None:
        target = self.inspect_target()
        ref = ref_of(target)
        if ref is None:
            self.app.notify("Nothing to inspect here.", severity="warning")
            return
        self.app.show_object(ref, mode)


class InstancesView(ActionsView):
    BINDINGS = [
        Binding("r", "instances('restart')", "Restart", id="restart"),
        Binding("x", "instances('stop')", "Stop", id="stop"),
        Binding("u", "instances('start')", "Start", id="start"),
        Binding("ctrl+d", "instances('delete')", "Delete", id="delete"),
        Binding("s", "shell", "Shell", id="shell"),
        LOGS_BINDING,
        *INSPECT_BINDINGS,
        FORWARD_BINDING,
    ]

    def targets(self) -> tuple[str, list[Instance]]:
        instance: Instance | None = self.selected
        return (instance.name, [instance]) if instance else ("", [])

    def forward_target(self) -> ForwardTarget | None:
        instance = self.selected
        if isinstance(instance, Instance) and instance.source == Source.K3S:
            return target_of_pod(self.store, instance)
        return None

    def action_logs(self) -> None:
        instance: Instance | None = self.selected
        if instance is not None:
            key = instance.key
            self.app.open_logs(instance.name, lambda store: [i for i in [store.instances.get(key)] if i])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if action == "forward_dialog" and allowed:
            if Source.K3S not in self.kind.sources:
                return False  # :ctr: containers publish ports, they are not forwarded
            return True if self.forward_target() is not None else None
        if action == "instances" and allowed is not False:
            wanted = ACTION_NAMES[str(parameters[0])]
            adapters = [self.app.hub.adapters.get(source) for source in self.kind.sources]
            if not any(a is not None and a.supports(wanted) for a in adapters):
                return False  # nothing in this view can (stop in :pods, delete in :ctr): hidden
            _label, instances = self.targets()
            if allowed and not self.app.hub.supports(wanted, instances):
                return None  # this row cannot (delete on a container in a mixed list): dimmed
        return allowed

    def action_instances(self, name: str) -> None:
        label, instances = self.targets()
        if instances:
            self.app.request_action(ACTION_NAMES[name], label, instances)

    def action_shell(self) -> None:
        label, instances = self.targets()
        running = [i for i in instances if i.running]
        if not running:
            self.app.notify(f"{label} has no running container or pod to open a shell in.", severity="warning")
            return
        self.app.open_shell(running[0])


class InstanceListView(InstancesView):
    """`:ctr`, `:pods`, and the containers and pods of one service."""

    def __init__(self, kind: ResourceKind, store: Store, *, crumb: str, scope: str | None = None) -> None:
        super().__init__(kind, store, crumb=crumb, scope=scope)


def containers_view(store: Store) -> InstanceListView:
    return InstanceListView(CONTAINERS, store, crumb="containers")


def pods_view(store: Store) -> InstanceListView:
    return InstanceListView(PODS, store, crumb="pods")


def service_instances_view(store: Store, service: LogicalService) -> InstanceListView:
    view = InstanceListView(INSTANCES, store, crumb=f"{service.name} ({service.location})", scope=service.id)
    view.kind = INSTANCES.with_empty_text(f"{service.name} has no containers or pods now. Esc goes back.")
    return view


class ScalingView(ActionsView):
    """Bindings for a view whose rows have a Kubernetes workload to scale and roll."""

    SCALE_BINDINGS = [
        Binding("plus", "scale(1)", "Scale +1", id="scale_up"),
        Binding("minus", "scale(-1)", "Scale -1", id="scale_down"),
        Binding("S", "scale_dialog", "Scale…", id="scale"),
    ]

    def workload_target(self) -> tuple[WorkloadKey, int] | None:
        """The Kubernetes workload of the selection and its desired replicas."""
        raise NotImplementedError

    def action_scale(self, step: int) -> None:
        target = self._workload_target()
        if target is not None:
            key, desired = target
            self.app.request_scale(key, max(desired + step, 0), desired, confirm=False)

    async def action_scale_dialog(self) -> None:
        target = self._workload_target()
        if target is not None:
            await self.app.open_scale_dialog(*target)

    def _workload_target(self) -> tuple[WorkloadKey, int] | None:
        target = self.workload_target()
        if target is None:
            self.app.notify(
                "Only Kubernetes workloads scale here (Compose: `docker compose up --scale`).", severity="warning"
            )
        return target


class WorkloadsView(InstancesView, ScalingView):
    ENTER_HELP = "Containers and pods of the service"
    BINDINGS = [
        Binding("r", "restart_service", "Restart", id="restart"),
        *ScalingView.SCALE_BINDINGS,
        Binding("h", "health", "Health", id="health"),
        Binding("p", "promote", "Promote", id="promote"),
        Binding("P", "demote", "Demote", id="demote"),
    ]

    def action_demote(self) -> None:
        service: LogicalService | None = self.selected
        if service is None or service.k3s is None or service.compose is None:
            self.app.notify("Demote brings a promoted service (in k3s, with its Compose side) back to Compose.",
                            severity="warning")
            return
        self.app.request_demote(service.compose.key)

    def action_promote(self) -> None:
        service: LogicalService | None = self.selected
        if service is None or service.compose is None:
            self.app.notify("Only a Compose service can be promoted.", severity="warning")
            return
        self.app.open_promote_preview(service.compose.key, self.store.instances_of(service.compose.id))

    def action_health(self) -> None:
        service: LogicalService | None = self.selected
        if service is not None:
            self.app.open_health(service)

    def __init__(self, store: Store) -> None:
        super().__init__(SERVICES, store, crumb="workloads")

    def targets(self) -> tuple[str, list[Instance]]:
        service: LogicalService | None = self.selected
        if service is None:
            return "", []
        return service.name, self.store.instances_of_service(service.id)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        service: LogicalService | None = self.selected
        if action == "instances" and parameters and parameters[0] in ("stop", "start"):
            if service is not None and service.compose is None:
                return None  # stop/start are Compose's; a k3s service scales instead
            # They act on the Compose side only (action_instances), so its pods do not count.
            return ActionsView.check_action(self, action, parameters)
        if action == "demote" and service is not None and (service.k3s is None or service.compose is None):
            allowed = super().check_action(action, parameters)
            return None if allowed else allowed  # nothing promoted to bring back
        if action == "promote" and service is not None and service.compose is None:
            allowed = super().check_action(action, parameters)
            return None if allowed else allowed  # a k3s-only row has nothing to promote
        if action in ("scale", "scale_dialog") and service is not None and service.k3s is None:
            allowed = super().check_action(action, parameters)
            return None if allowed else allowed  # scaling is the Kubernetes side's: dimmed
        return super().check_action(action, parameters)

    def workload_target(self) -> tuple[WorkloadKey, int] | None:
        service: LogicalService | None = self.selected
        if service is None or service.k3s is None:
            return None
        spec = self.store.specs.get(service.k3s.id)
        return service.k3s.key, spec.desired if spec else service.k3s.desired

    def forward_target(self) -> ForwardTarget | None:
        """The k3s side: its Service of the same name if there is one (the stable way in),
        else the workload itself."""
        service: LogicalService | None = self.selected
        if service is None or service.k3s is None:
            return None
        key = service.k3s.key
        svc = self.store.objects.get(f"k3s/Service/{key.group}/{key.name}")
        if isinstance(svc, KubeService):
            return target_of_service(self.store, svc)
        spec = self.store.specs.get(service.k3s.id)
        return target_of_workload(self.store, spec) if spec is not None else None

    def inspect_target(self) -> Any:
        """The Kubernetes workload if there is one, else the first container."""
        service: LogicalService | None = self.selected
        if service is None:
            return None
        if service.k3s is not None and (spec := self.store.specs.get(service.k3s.id)) is not None:
            return spec
        members = self.store.instances_of_service(service.id)
        return members[0] if members else None

    def action_instances(self, name: str) -> None:
        if name in ("stop", "start"):
            service: LogicalService | None = self.selected
            if service is None or service.compose is None:
                return
            label, instances = service.name, self.store.instances_of(service.compose.id)
            self.app.request_action(ACTION_NAMES[name], label, instances)
            return
        super().action_instances(name)

    def action_restart_service(self) -> None:
        service: LogicalService | None = self.selected
        if service is None:
            return
        containers = self.store.instances_of(service.compose.id) if service.compose else []
        has_spec = service.k3s is not None and service.k3s.id in self.store.specs
        rollout = service.k3s.key if service.k3s is not None and has_spec else None
        pods = self.store.instances_of(service.k3s.id) if service.k3s is not None and not has_spec else []
        self.app.request_service_restart(service.name, [*containers, *pods], rollout)

    def action_logs(self) -> None:
        """Every container and pod of the service, interleaved; new replicas join."""
        service: LogicalService | None = self.selected
        if service is not None:
            service_id = service.id
            self.app.open_logs(service.name, lambda store: store.instances_of_service(service_id))

    @on(DataTable.RowSelected)
    async def _drill(self, event: DataTable.RowSelected) -> None:
        event.stop()
        service: LogicalService | None = self.selected
        if service is not None:
            await self.app.push_view(service_instances_view(self.store, service))
