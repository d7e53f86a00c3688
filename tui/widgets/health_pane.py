"""The health pane: why one service is in the state it is, live.

`h` on a workloads or `:health` row opens it (Enter on `:health` too). It shows
`backends.health_rows.health_report` for the service and follows the store: every
change that touches the service repaints it (at most `REPAINT_INTERVAL` apart), and
the timeline moves with the clock. Esc closes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from backends.health_rows import Line, health_report, report_text
from backends.model import HttpCheck
from backends.store import Change, Store
from tui.views.table import TONE_STYLE

REPAINT_INTERVAL = 0.25  # a flapping check or a pod storm repaints at most 4 times a second
TICK_SECONDS = 5.0  # the timeline's buckets are 30 s: this keeps "ago" and the sparkline moving


def lines_as_text(lines: list[Line]) -> Text:
    text = Text(no_wrap=False)
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        for part, tone in line:
            text.append(part, TONE_STYLE[tone])
    return text


class HealthScreen(Screen[None]):
    DEFAULT_CSS = """
    HealthScreen { background: $surface; }
    HealthScreen > #health-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    HealthScreen > VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back", id="health.close"),
        Binding("q", "close", "Back", show=False, id="health.quit"),
        Binding("c", "copy", "Copy", id="health.copy"),
    ]

    def __init__(self, store: Store, row_id: str, title: str, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.store = store
        self.row_id = row_id
        self.title_text = title
        self.clock = clock
        self._unsubscribe: Callable[[], None] | None = None
        self._pending = False
        self._last = 0.0
        self.lines: list[Line] = []

    def compose(self) -> ComposeResult:
        yield Static(f"health ▸ {self.title_text}", id="health-title", markup=False)
        with VerticalScroll():
            yield Static(id="health-body", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._unsubscribe = self.store.subscribe(self._changed)
        self.set_interval(TICK_SECONDS, self.repaint)
        self.repaint()
        self.query_one(VerticalScroll).focus()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _concerns(self, change: Change) -> bool:
        service = self.store.services.get(self.row_id)
        if self.row_id in change.services or self.row_id in change.services_removed:
            return True
        if service is None:
            return False
        sides = {side.id for side in service.sides}
        if any(inst.workload.id in sides for inst in change.instances.values()):
            return True
        if change.instances_removed or change.specs.keys() & sides:
            return True
        return any(
            isinstance(obj, HttpCheck) or getattr(obj, "type", "") == "Warning" for obj in change.objects.values()
        )

    def _changed(self, change: Change) -> None:
        if not self._concerns(change) or self._pending:
            return
        self._pending = True
        delay = self._last + REPAINT_INTERVAL - time.monotonic()
        if delay > 0:
            self.set_timer(delay, self.repaint)
        else:
            self.call_later(self.repaint)

    def repaint(self) -> None:
        self._pending = False
        self._last = time.monotonic()
        self.lines = health_report(self.store, self.row_id, self.clock())
        self.query_one("#health-body", Static).update(lines_as_text(self.lines))

    @property
    def text(self) -> str:
        return report_text(self.lines)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify("Health report copied.", title="Health")

    def action_close(self) -> None:
        self.dismiss(None)
