"""Turn domain objects into table rows: plain text plus a tone per cell.

Shared by the TUI (which maps tones to colors) and the headless `ferryman status`
(which prints the text). Pure functions; `now` is passed in so tests are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from backends.model import Health, Instance, LogicalService, Port, RunState, Source, Workload

Tone = Literal["normal", "ok", "warn", "error", "muted", "info"]


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    tone: Tone = "normal"
    # Parts of `text` in tones of their own (a sparkline); `text` is their concatenation
    # and what filters and `ferryman status` read.
    spans: tuple[tuple[str, Tone], ...] = ()

    @classmethod
    def of_spans(cls, spans: Sequence[tuple[str, Tone]], tone: Tone = "normal") -> Cell:
        return cls("".join(text for text, _ in spans), tone, tuple(spans))


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    # Uptime-like columns change with the clock alone; the view refreshes only those.
    ticks: bool = False


HEALTH_TONE: dict[Health, Tone] = {
    Health.HEALTHY: "ok",
    Health.STARTING: "warn",
    Health.UNHEALTHY: "error",
    Health.CRASH_LOOPING: "error",
    Health.NOT_READY: "warn",
    Health.NO_CHECK: "muted",
    Health.STOPPED: "muted",
    Health.UNKNOWN: "warn",
}

STATE_TONE: dict[str, Tone] = {
    "running": "ok",
    "partial": "warn",
    "restarting": "error",
    "paused": "warn",
    "created": "muted",
    "stopped": "muted",
    RunState.EXITED: "muted",
    RunState.DEAD: "error",
    RunState.REMOVING: "warn",
    RunState.UNKNOWN: "warn",
}


def humanize_age(start: datetime | None, now: datetime) -> str:
    """k9s-style compact age: 42s, 7m, 3h12m, 5d."""
    if start is None:
        return "-"
    seconds = int((now - start).total_seconds())
    if seconds < 0:
        seconds = 0
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    return f"{hours // 24}d"


def format_ports(ports: Sequence[Port]) -> str:
    """Published ports first (what answers on localhost), then exposed ones."""
    published = [str(p) for p in ports if p.published]
    exposed = [str(p) for p in ports if not p.published]
    return ", ".join(published + exposed)


def _restarts(n: int) -> Cell:
    return Cell(str(n), "warn" if n else "normal")


WORKLOAD_COLUMNS: tuple[Column, ...] = (
    Column("project", "PROJECT"),
    Column("service", "SERVICE"),
    Column("state", "STATE"),
    Column("health", "HEALTH"),
    Column("ready", "READY"),
    Column("ports", "PORTS"),
    Column("image", "IMAGE"),
    Column("uptime", "UPTIME", ticks=True),
    Column("restarts", "RESTARTS"),
)


def state_tone(state: str) -> Tone:
    if state.startswith("exited ("):
        return "muted" if state == "exited (0)" else "error"
    return STATE_TONE.get(state, "normal")


def workload_row(w: Workload, now: datetime) -> tuple[Cell, ...]:
    ready_tone: Tone = "ok" if w.running == w.desired and w.desired else ("muted" if not w.running else "warn")
    return (
        Cell(w.key.group, "info"),
        Cell(w.key.name),
        Cell(w.state, state_tone(w.state)),
        Cell(str(w.health), HEALTH_TONE[w.health]),
        Cell(f"{w.running}/{w.desired}", ready_tone),
        Cell(format_ports(w.ports)),
        Cell(w.image, "muted"),
        Cell(humanize_age(w.started_at, now)),
        _restarts(w.restarts),
    )


SERVICE_COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME"),
    Column("location", "LOCATION"),
    Column("group", "PROJECT/NS"),
    Column("compose", "COMPOSE"),
    Column("k3s", "K3S"),
    Column("health", "HEALTH"),
    Column("ports", "PORTS"),
    Column("image", "IMAGE"),
    Column("uptime", "UPTIME", ticks=True),
    Column("restarts", "RESTARTS"),
)

LOCATION_TONE: dict[str, Tone] = {"compose": "info", "k3s": "info", "both": "warn"}


def _side(w: Workload | None) -> Cell:
    """One side of a hybrid row: its state and ready count ("running 2/2")."""
    if w is None:
        return Cell("-", "muted")
    return Cell(f"{w.state} {w.running}/{w.desired}", state_tone(w.state))


def service_row(s: LogicalService, now: datetime) -> tuple[Cell, ...]:
    sides = s.sides
    ports: list[Port] = []
    for w in sides:
        ports += [p for p in w.ports if p not in ports]
    images = list(dict.fromkeys(w.image for w in sides if w.image))
    starts = [w.started_at for w in sides if w.started_at is not None]
    return (
        Cell(s.name),
        Cell(s.location, LOCATION_TONE[s.location]),
        Cell(" · ".join(dict.fromkeys(w.key.group for w in sides)), "info"),
        _side(s.compose),
        _side(s.k3s),
        Cell(str(s.health), HEALTH_TONE[s.health]),
        Cell(format_ports(ports)),
        Cell(" | ".join(images), "muted"),
        Cell(humanize_age(min(starts) if starts else None, now)),
        _restarts(sum(w.restarts for w in sides)),
    )


INSTANCE_COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME"),
    Column("where", "WHERE"),
    Column("service", "SERVICE"),
    Column("state", "STATE"),
    Column("health", "HEALTH"),
    Column("ports", "PORTS"),
    Column("image", "IMAGE"),
    Column("uptime", "UPTIME", ticks=True),
    Column("restarts", "RESTARTS"),
    Column("exit", "EXIT"),
    Column("id", "ID"),
)


def instance_state_text(i: Instance) -> str:
    if i.source == Source.K3S and i.status_text:
        return i.status_text  # kubectl's words: CrashLoopBackOff, ImagePullBackOff, Completed
    if i.state == RunState.EXITED and i.oom_killed:
        return "exited (OOMKilled)"
    return str(i.state)


def instance_row(i: Instance, now: datetime) -> tuple[Cell, ...]:
    exit_cell = Cell("-", "muted")
    if i.exit_code is not None:
        exit_cell = Cell(str(i.exit_code), "error" if i.exit_code else "muted")
    return (
        Cell(i.name),
        Cell(str(i.source), "info"),
        Cell(str(i.workload), "info"),
        Cell(instance_state_text(i), STATE_TONE.get(i.state, "normal")),
        Cell(str(i.health), HEALTH_TONE[i.health]),
        Cell(format_ports(i.ports)),
        Cell(i.image, "muted"),
        Cell(humanize_age(i.started_at if i.running else None, now)),
        _restarts(i.restarts),
        exit_cell,
        Cell(i.short_id, "muted"),
    )


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> str:
    """A plain, aligned text table (for `ferryman status`)."""
    texts = [[c.title for c in columns], *[[cell.text for cell in row] for row in rows]]
    widths = [max(len(r[i]) for r in texts) for i in range(len(columns))]
    lines = ["  ".join(t.ljust(w) for t, w in zip(r, widths, strict=True)).rstrip() for r in texts]
    return "\n".join(lines)
