"""`:pf`: every port-forward with its state, pod, connections and bytes, beside the
published ports of Compose containers: in one place, what answers on which local port.

x stops a forward (it stays listed, to be restarted or saved), r restarts it, ctrl+d
removes it, c copies its URL, w saves the forwards as a named set (restored at start-up).
"""

from __future__ import annotations

from textual.binding import Binding

from backends.forward_rows import FORWARD_COLUMNS, Published, forward_row, pf_rows, published_row
from backends.model import PortForward, Source
from backends.store import Change, Store
from tui.views.kinds import ResourceKind, Rows
from tui.views.workloads import ActionsView


def _delta(store: Store, change: Change, _scope: str | None) -> tuple[Rows, set[str]]:
    rows: Rows = {k: o for k, o in change.objects.items() if isinstance(o, PortForward)}
    removed = {k for k in change.objects_removed if k.startswith("forward/")}
    for key, inst in change.instances.items():
        row = published_row(inst)
        if row is None:
            removed.add(f"published/{key}")
        else:
            rows[row.key] = row
    removed.update(f"published/{key}" for key in change.instances_removed)
    return rows, removed


FORWARDS = ResourceKind(
    name="forwards",
    columns=FORWARD_COLUMNS,
    render=forward_row,
    sort_columns=("local",),
    select=lambda store, _scope: dict(pf_rows(store)),
    delta=_delta,
    labels=lambda _store, row: dict(row.labels) if isinstance(row, Published) else {},
    empty_text=(
        "Nothing answers on a local port yet: shift-f on a pod, Service or Deployment starts a "
        "port-forward, and the published ports of Compose containers show here too."
    ),
    sources=(Source.COMPOSE, Source.K3S),
    # Forwards first (by local port), then the Compose containers' published ports.
    order=lambda row: (1, row.instance.name) if isinstance(row, Published) else (0, row.spec.local_port),
)


class ForwardsView(ActionsView):
    BINDINGS = [
        Binding("x", "forward('stop')", "Stop", id="pf.stop"),
        Binding("r", "forward('restart')", "Restart", id="pf.restart"),
        Binding("ctrl+d", "forward('remove')", "Remove", id="pf.remove"),
        Binding("c", "copy_url", "Copy URL", id="pf.copy"),
        Binding("w", "save_set", "Save set", id="pf.save"),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__(FORWARDS, store, crumb="port-forwards")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if action == "forward" and allowed and not isinstance(self.selected, PortForward):
            return None  # a published port is Compose's: nothing to stop or restart here
        if action == "save_set":
            return True if self.store.objects_of(PortForward) else None
        return allowed

    def action_forward(self, what: str) -> None:
        row = self.selected
        if isinstance(row, PortForward):
            self.app.forward_action(what, row.key)

    def action_copy_url(self) -> None:
        from backends.forward_rows import url_of

        row = self.selected
        if row is not None:
            url = url_of(row)
            self.app.copy_to_clipboard(url)
            self.app.notify(f"Copied {url}", title="Port-forward")

    async def action_save_set(self) -> None:
        await self.app.save_forward_set()
