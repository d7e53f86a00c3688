"""The `:health` table and the health pane, as pure functions of the store.

A row of `:health` is a hybrid service (the workloads view's rows) with what explains
its health: the reason, when it last changed, a timeline of the session, restarts and
the HTTP checks. The pane (`health_report`) is the long form for one service: every
instance with its probe runs or container states, conditions, warning events, restart
history, state changes and HTTP checks. Both are lists of (text, tone) so the TUI
colours them and tests read them as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from backends.health import Restart, Transition, sparkline, timeline
from backends.model import (
    ClusterEvent,
    Health,
    HttpCheck,
    Instance,
    LogicalService,
    Source,
    Workload,
)
from backends.rows import HEALTH_TONE, LOCATION_TONE, Cell, Column, Tone, humanize_age
from backends.store import Store

Span = tuple[str, Tone]
Line = list[Span]


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One `:health` row: the service and what the store knows about its health now."""

    service: LogicalService
    history: tuple[Transition, ...]
    checks: tuple[HttpCheck, ...]

    @property
    def id(self) -> str:
        return self.service.id

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        return ()


def health_row_of(store: Store, row_id: str) -> HealthRow | None:
    service = store.services.get(row_id)
    if service is None:
        return None
    return HealthRow(service, tuple(store.health_log.of_service(row_id)), checks_of(store, service))


def checks_of(store: Store, service: LogicalService) -> tuple[HttpCheck, ...]:
    ids = {side.id for side in service.sides}
    found = [o for o in store.objects.values() if isinstance(o, HttpCheck) and o.workload.id in ids]
    return tuple(sorted(found, key=lambda c: (c.workload.source, c.path)))


HEALTH_COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME"),
    Column("location", "LOCATION"),
    Column("health", "HEALTH"),
    Column("reason", "WHY"),
    Column("since", "SINCE", ticks=True),
    Column("timeline", "LAST 10 MIN", ticks=True),
    Column("restarts", "RESTARTS"),
    Column("http", "HTTP"),
)

LEVEL_TONE: dict[Health | None, Tone] = {None: "muted", **HEALTH_TONE}


def health_table_row(row: HealthRow, now: datetime) -> tuple[Cell, ...]:
    s = row.service
    since = row.history[-1].at if row.history else None
    why = "" if s.health_reason == str(s.health) else s.health_reason  # "no healthcheck" twice says nothing
    restarts = sum(w.restarts for w in s.sides)
    return (
        Cell(s.name),
        Cell(s.location, LOCATION_TONE[s.location]),
        Cell(str(s.health), HEALTH_TONE[s.health]),
        Cell(_short(why) or "-", "normal" if why else "muted"),
        Cell(humanize_age(since, now)),
        timeline_cell(list(row.history), now),
        Cell(str(restarts), "warn" if restarts else "muted"),
        http_cell(row.checks),
    )


WHY_CHARS = 48  # the pane has the whole reason; the table keeps room for the timeline


def _short(text: str) -> str:
    return text if len(text) <= WHY_CHARS else text[: WHY_CHARS - 1] + "…"


def timeline_cell(history: list[Transition], now: datetime) -> Cell:
    buckets = timeline(history, now)
    spans: list[Span] = []
    for health in buckets:
        glyph = sparkline([health])
        tone = LEVEL_TONE[health]
        if spans and spans[-1][1] == tone:
            spans[-1] = (spans[-1][0] + glyph, tone)
        else:
            spans.append((glyph, tone))
    return Cell.of_spans(spans)


def check_text(check: HttpCheck) -> str:
    if check.ok:
        latency = f" {check.latency_ms:.0f}ms" if check.latency_ms is not None else ""
        return f"{check.path} {check.status}{latency}"
    if check.status is not None:
        return f"{check.path} {check.status}"
    return f"{check.path} ✖ {check.error or 'no answer'}"


def http_cell(checks: tuple[HttpCheck, ...]) -> Cell:
    if not checks:
        return Cell("-", "muted")
    tone: Tone = "ok" if all(c.ok for c in checks) else "error"
    # Both sides probed: say which answered what.
    sided = len({c.workload.source for c in checks}) > 1
    return Cell(", ".join(f"{c.workload.source} {check_text(c)}" if sided else check_text(c) for c in checks), tone)


# ---- the pane -----------------------------------------------------------------------------


def _clock(at: datetime | None) -> str:
    return at.strftime("%H:%M:%S") if at is not None else "--:--:--"


def _ago(at: datetime | None, now: datetime) -> str:
    return f"{humanize_age(at, now)} ago" if at is not None else "never"


def health_report(store: Store, row_id: str, now: datetime) -> list[Line]:
    """The health pane of one service row: everything that explains its state."""
    service = store.services.get(row_id)
    if service is None:
        return [[("This service is gone (removed, or out of the namespace shown).", "muted")]]
    lines: list[Line] = [
        [(service.name, "normal"), (f"  {service.location}  ", LOCATION_TONE[service.location]),
         (str(service.health), HEALTH_TONE[service.health]),
         (f" — {service.health_reason}" if service.health_reason else "", "normal")],
    ]
    history = store.health_log.of_service(row_id)
    lines.append([("last 10 min  ", "muted"), *timeline_cell(history, now).spans,
                  ("   █ healthy ▄ starting/not ready ▁ unhealthy · stopped", "muted")])
    lines.append([])
    lines += _http_section(checks_of(store, service), now)
    for side in service.sides:
        lines += _side_section(store, side, now)
    lines += _restarts_section(store.health_log.restarts_of(w.id for w in service.sides))
    lines += _history_section(history)
    return lines


def _http_section(checks: tuple[HttpCheck, ...], now: datetime) -> list[Line]:
    if not checks:
        return []
    lines: list[Line] = [[("HTTP checks", "info")]]
    for c in checks:
        tone: Tone = "ok" if c.ok else "error"
        recent = "".join("✓" if ok else "✗" for ok in c.recent)
        latency = f"  {c.latency_ms:.0f} ms" if c.latency_ms is not None else ""
        status = str(c.status) if c.status is not None else "no answer"
        lines.append([(f"  {c.workload.source} {c.path}  ", "normal"), (status, tone), (latency, "normal"),
                      (f"  {c.error}" if c.error else "", "error"),
                      (f"  {c.url or '(no target)'}  checked {_ago(c.checked_at, now)}  ", "muted"),
                      (recent, tone)])
    lines.append([])
    return lines


def _side_section(store: Store, side: Workload, now: datetime) -> list[Line]:
    spec = store.specs.get(side.id)
    title: Line = [(f"{side.key.source}: {side.key}", "info"),
                   (f"  {side.state} {side.running}/{side.desired}  ", "normal"),
                   (str(side.health), HEALTH_TONE[side.health]),
                   (f" — {side.health_reason}" if side.health_reason else "", "normal")]
    lines: list[Line] = [title]
    if spec is not None:
        for c in spec.conditions:
            tone: Tone = "ok" if c.status == "True" else "error" if c.status == "False" else "warn"
            lines.append([(f"  {spec.kind} {c.type} ", "normal"), (c.status, tone),
                          (f" {c.reason}" if c.reason else "", "normal"),
                          (f" — {c.message}" if c.message else "", "muted")])
    instances = sorted(store.instances_of(side.id), key=lambda i: (i.number, i.name))
    if not instances:
        lines.append([("  no containers or pods now", "muted")])
    for inst in instances:
        lines += _instance_section(store, inst, now)
    lines.append([])
    return lines


def _instance_section(store: Store, inst: Instance, now: datetime) -> list[Line]:
    what = "pod" if inst.source == Source.K3S else "container"
    lines: list[Line] = [[(f"  {inst.name} ", "normal"), (f"({what}, {inst.state}, up {humanize_age(inst.started_at, now)}"
                          f", {inst.restarts} restarts)  ", "muted"),
                         (str(inst.health), HEALTH_TONE[inst.health]),
                         (f" — {inst.health_reason}" if inst.health_reason else "", "normal")]]
    if inst.source == Source.COMPOSE:
        if inst.probes:
            lines.append([("    healthcheck runs (newest last):", "muted")])
        for probe in inst.probes:
            took = ""
            if probe.started and probe.ended:
                took = f" {(probe.ended - probe.started).total_seconds():.1f}s"
            output = probe.output.strip().replace("\n", " ⏎ ")
            lines.append([(f"      {_clock(probe.started)} ", "muted"),
                          (f"exit {probe.exit_code}", "ok" if probe.passed else "error"),
                          (took, "muted"), (f"  {output}" if output else "", "normal")])
    for cs in inst.container_statuses:
        tone: Tone = "ok" if cs.ready else "warn" if cs.state == "running" else "error"
        state = cs.state + (f" {cs.reason}" if cs.reason else "")
        last = ""
        if cs.last_reason or cs.last_exit_code is not None:
            last = f"; last ended {cs.last_reason or 'exit'} ({cs.last_exit_code}) at {_clock(cs.last_finished)}"
        lines.append([(f"    {cs.name}: ", "normal"), (state, tone),
                      (f" — {cs.message}" if cs.message else "", "normal"),
                      (f"  ready {str(cs.ready).lower()}, {cs.restarts} restarts{last}", "muted")])
    for c in inst.conditions:
        if c.status != "True":
            lines.append([(f"    condition {c.type} {c.status}", "warn"),
                          (f" {c.reason}" if c.reason else "", "normal"),
                          (f" — {c.message}" if c.message else "", "muted")])
    for event in warning_events(store, inst):
        count = f" ×{event.count}" if event.count > 1 else ""
        lines.append([(f"    {_clock(event.last_seen)} ", "muted"), (f"{event.reason}{count}", "error"),
                      (f"  {event.message}", "normal")])
    return lines


def warning_events(store: Store, inst: Instance, limit: int = 5) -> list[ClusterEvent]:
    """The newest Warning events about a pod (events whose pod is gone are never asked for)."""
    if inst.source != Source.K3S:
        return []
    namespace = inst.workload.group
    found = [
        o for o in store.objects.values()
        if isinstance(o, ClusterEvent) and o.type == "Warning" and o.object_kind == "Pod"
        and o.object_name == inst.name and o.namespace == namespace
    ]
    found.sort(key=lambda e: e.last_seen or e.first_seen or _EPOCH)
    return found[-limit:]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _restarts_section(restarts: list[Restart]) -> list[Line]:
    if not restarts:
        return []
    lines: list[Line] = [[("Restarts seen this session", "info")]]
    for r in restarts[-10:]:
        lines.append([(f"  {_clock(r.at)} ", "muted"), (f"{r.instance} restarted (#{r.count})", "warn"),
                      (f"  {r.detail}" if r.detail else "", "normal")])
    lines.append([])
    return lines


def _history_section(history: list[Transition]) -> list[Line]:
    lines: list[Line] = [[("State changes this session", "info")]]
    if not history:
        lines.append([("  none yet", "muted")])
    for t in history[-15:]:
        lines.append([(f"  {_clock(t.at)} ", "muted"), (str(t.health), HEALTH_TONE[t.health]),
                      (f"  {t.reason}" if t.reason else "", "normal")])
    return lines


def report_text(lines: list[Line]) -> str:
    """The pane as plain text (tests, and a copy to the clipboard)."""
    return "\n".join("".join(text for text, _ in line) for line in lines)
