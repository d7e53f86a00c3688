"""`:health`: one row per service with its health, why, since when, a timeline of the
session, restarts and HTTP checks. Enter (or `h`) opens the health pane of the row.
"""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.widgets import DataTable

from backends.health_rows import HEALTH_COLUMNS, HealthRow, health_row_of, health_table_row
from backends.model import HttpCheck, LogicalService, Source
from backends.store import Change, Store
from tui.views.kinds import ResourceKind, Rows
from tui.views.workloads import LOGS_BINDING, ActionsView

HEALTH_BINDING = Binding("h", "health", "Health", id="health")


def _select(store: Store, _scope: str | None) -> Rows:
    return {row_id: row for row_id in store.services if (row := health_row_of(store, row_id)) is not None}


def _delta(store: Store, change: Change, _scope: str | None) -> tuple[Rows, set[str]]:
    touched = set(change.services)
    for obj in change.objects.values():
        if isinstance(obj, HttpCheck) and (row_id := store.service_of(obj.workload.id)) is not None:
            touched.add(row_id)
    for key in change.objects_removed:
        if key.startswith("probe/"):
            touched.update(store.services)  # a check went: its row is not named by the key alone
            break
    rows = {row_id: row for row_id in touched if (row := health_row_of(store, row_id)) is not None}
    return rows, set(change.services_removed)


HEALTH = ResourceKind(
    name="health",
    columns=HEALTH_COLUMNS,
    render=health_table_row,
    sort_columns=("name",),
    select=_select,
    delta=_delta,
    labels=lambda store, row: {},
    empty_text="No services yet: health shows here as soon as a Compose service or a k3s workload appears.",
    sources=(Source.COMPOSE, Source.K3S),
)


class HealthView(ActionsView):
    ENTER_HELP = "Why: the service's health pane"
    BINDINGS = [HEALTH_BINDING, LOGS_BINDING]

    def __init__(self, store: Store) -> None:
        super().__init__(HEALTH, store, crumb="health")

    def selected_service(self) -> LogicalService | None:
        row: HealthRow | None = self.selected
        return row.service if row is not None else None

    def action_health(self) -> None:
        service = self.selected_service()
        if service is not None:
            self.app.open_health(service)

    def action_logs(self) -> None:
        service = self.selected_service()
        if service is not None:
            service_id = service.id
            self.app.open_logs(service.name, lambda store: store.instances_of_service(service_id))

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_health()
