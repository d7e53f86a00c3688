"""The workloads view (`:wk`, the default) and the containers view (`:ctr`).

Both act on instances: a workload row stands for all of its containers. The key
bindings for those actions live here, with the views that own them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.binding import Binding
from textual.widgets import DataTable

from backends.adapter import MUTATING_ACTIONS, Action
from backends.model import Instance, Workload
from backends.store import Store
from tui.views.kinds import CONTAINERS, WORKLOADS
from tui.views.table import ResourceView

if TYPE_CHECKING:
    from tui.app import FerrymanApp

ACTION_NAMES = {"restart": Action.RESTART, "stop": Action.STOP, "start": Action.START}


class InstancesView(ResourceView):
    BINDINGS = [
        Binding("r", "instances('restart')", "Restart", id="restart"),
        Binding("x", "instances('stop')", "Stop", id="stop"),
        Binding("u", "instances('start')", "Start", id="start"),
        Binding("s", "shell", "Shell", id="shell"),
    ]

    app: FerrymanApp

    def targets(self) -> tuple[str, list[Instance]]:
        """What the selected row stands for: a label and its instances."""
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "instances" and ACTION_NAMES[str(parameters[0])] in MUTATING_ACTIONS and self.app.readonly:
            return False  # hidden from footer and help, and the key does nothing
        if action in ("instances", "shell") and self.selected is None:
            return None  # shown dimmed: nothing to act on
        return True

    def action_instances(self, name: str) -> None:
        label, instances = self.targets()
        if instances:
            self.app.request_action(ACTION_NAMES[name], label, instances)

    def action_shell(self) -> None:
        label, instances = self.targets()
        running = [i for i in instances if i.running]
        if not running:
            self.app.notify(f"{label} has no running container to open a shell in.", severity="warning")
            return
        self.app.open_shell(running[0])


class WorkloadsView(InstancesView):
    ENTER_HELP = "Containers of the service"

    def __init__(self, store: Store) -> None:
        super().__init__(WORKLOADS, store, crumb="workloads")

    def targets(self) -> tuple[str, list[Instance]]:
        workload: Workload | None = self.selected
        if workload is None:
            return "", []
        return str(workload.key), self.store.instances_of(workload.id)

    @on(DataTable.RowSelected)
    async def _drill(self, event: DataTable.RowSelected) -> None:
        event.stop()
        workload: Workload | None = self.selected
        if workload is not None:
            await self.app.push_view(ContainersView(self.store, workload=workload))


class ContainersView(InstancesView):
    def __init__(self, store: Store, workload: Workload | None = None) -> None:
        crumb = f"{workload.key} containers" if workload else "containers"
        super().__init__(CONTAINERS, store, crumb=crumb, scope=workload.id if workload else None)
        self.workload = workload
        if workload is not None:
            self.kind = CONTAINERS.with_empty_text(
                f"{workload.key} has no containers any more (removed). Esc goes back."
            )

    def targets(self) -> tuple[str, list[Instance]]:
        instance: Instance | None = self.selected
        return (instance.name, [instance]) if instance else ("", [])
