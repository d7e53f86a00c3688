"""The frame around the views: header, fault banner, breadcrumbs."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from backends.health import SideSummary
from backends.model import ConnState, Source, SourceStatus

STATE_MARK = {
    ConnState.CONNECTED: ("●", "green"),
    ConnState.CONNECTING: ("◌", "yellow"),
    ConnState.UNREACHABLE: ("✖", "bold red"),
    ConnState.ABSENT: ("○", "dim"),
}

SOURCE_TITLE = {Source.COMPOSE: "Docker", Source.K3S: "k3s"}


def status_text(status: SourceStatus) -> Text:
    mark, style = STATE_MARK[status.state]
    text = Text.assemble((f"{mark} ", style), (f"{SOURCE_TITLE[status.source]} ", "bold"))
    text.append(status.endpoint, style="cyan")
    if status.state == ConnState.CONNECTED and status.version:
        text.append(f"  {'engine' if status.source == Source.COMPOSE else 'k8s'} {status.version}", style="dim")
    elif status.state != ConnState.CONNECTED:
        text.append(f"  {status.state}", style=style)
    if status.scope and status.state != ConnState.ABSENT:
        scope = status.scope.replace("namespace ", "ns ").replace("all namespaces", "ns all")
        text.append(f"  {scope}", style="magenta")
    return text


class Header(Static):
    """App name, version and one status entry per backend connection."""

    def __init__(self, version: str) -> None:
        super().__init__(id="header", markup=False)
        self.version = version
        self._statuses: dict[Source, SourceStatus] = {}

    def on_mount(self) -> None:
        self._render_header()

    def set_status(self, status: SourceStatus) -> None:
        self._statuses[status.source] = status
        self._render_header()

    def _render_header(self) -> None:
        text = Text.assemble(("Ferryman", "bold"), " ", (self.version, "dim"))
        for status in self._statuses.values():
            text.append("  ")
            text.append_text(status_text(status))
        self.update(text)


def health_summary_text(summary: dict[Source, SideSummary]) -> Text:
    """`compose ✔4 ▲1 ✖0  k3s ✔2 ▲0 ✖1`: healthy / degraded / down services per side;
    symbols as well as colours, so it reads on any screen share."""
    text = Text()
    for source, counts in summary.items():
        if not counts.total:
            continue
        if text:
            text.append("  ")
        text.append(f"{source} ", "dim")
        text.append(f"✔{counts.healthy}", "green" if counts.healthy else "dim")
        text.append(f" ▲{counts.degraded}", "yellow" if counts.degraded else "dim")
        text.append(f" ✖{counts.down}", "bold red" if counts.down else "dim")
    return text


class Banner(Static):
    """A fault that needs the user's eyes ("Docker: unreachable at … — permission denied")."""

    def __init__(self) -> None:
        super().__init__("", id="banner", markup=False)
        self._faults: dict[Source, str] = {}

    def set_status(self, status: SourceStatus) -> None:
        if status.state == ConnState.UNREACHABLE:
            self._faults[status.source] = (status.message or f"{SOURCE_TITLE[status.source]}: unreachable") + " · retrying"
        elif status.state == ConnState.CONNECTED and status.message:
            self._faults[status.source] = status.message  # connected, but part of it is hidden from us
        else:
            self._faults.pop(status.source, None)
        lines = list(self._faults.values())
        self.update("\n".join(lines))
        self.display = bool(lines)


class Crumbs(Static):
    """Where the user is (`workloads ▸ shop/web`, plus the active filter) and, on the
    right, how many services are healthy / degraded / down on each side."""

    def __init__(self) -> None:
        super().__init__("", id="crumbs", markup=False)
        self._trail = Text()
        self._health: dict[Source, SideSummary] = {}

    def show(self, trail: list[str], filter_text: str | None = None) -> None:
        text = Text()
        for i, crumb in enumerate(trail):
            if i:
                text.append(" ▸ ", style="dim")
            last = i == len(trail) - 1
            text.append(f" {crumb} ", style="reverse bold" if last else "")
        if filter_text:
            text.append(f"   filter {filter_text}", style="yellow")
        self._trail = text
        self.refresh()

    def set_health(self, summary: dict[Source, SideSummary]) -> None:
        if summary != self._health:
            self._health = summary
            self.refresh()

    @property
    def health_text(self) -> str:
        return health_summary_text(self._health).plain

    def render(self) -> Text:
        # The summary is right-aligned on this row; the trail wins when both do not fit.
        summary = health_summary_text(self._health)
        text = self._trail.copy()
        gap = self.size.width - text.cell_len - summary.cell_len - 1
        if summary and gap >= 2:
            text.append(" " * gap)
            text.append_text(summary)
        return text
