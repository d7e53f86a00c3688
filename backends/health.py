"""Health over time: what each service's and instance's health has been this session,
the restarts seen, the header's per-side summary, and the timeline drawn in `:health`.

The adapters say what health *is* (backends/compose.py, backends/kube.py, and
`model.workload_health` for a workload); this module remembers how it got there. The
store feeds `HealthLog.observe` every change before any view sees it, so the history is
the same whichever view is open, and nothing here polls.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from backends.model import Health, Instance, LogicalService, Source, Workload

# Per service / instance; a flapping check makes two transitions a minute, so this is
# well over an hour of flapping, and a few KB per service.
KEEP_TRANSITIONS = 200
KEEP_RESTARTS = 50
# Instances come and go (every rollout replaces the pods): the histories of the most
# recently seen ones are kept, the rest forgotten oldest first.
KEEP_INSTANCES = 500


@dataclass(frozen=True, slots=True)
class Transition:
    """Health became `health` at `at`, for `reason`."""

    at: datetime
    health: Health
    reason: str


@dataclass(frozen=True, slots=True)
class Restart:
    """An instance was restarted (its restart count went up) at about `at`."""

    at: datetime
    instance: str  # container or pod name
    count: int  # its restart count after this restart
    detail: str  # "exit 137, OOMKilled", "exit 1", "" when the engine did not say


class HealthLog:
    """Transitions per service row id and per instance key, and restarts per workload id.

    `observe` is given every store change (see `Store.apply`); a transition is recorded
    only when the health or its reason differs from the last one recorded, so a resync
    that changes nothing records nothing."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.services: dict[str, deque[Transition]] = {}
        self.instances: OrderedDict[str, deque[Transition]] = OrderedDict()
        self.restarts: dict[str, deque[Restart]] = {}
        self._restart_counts: dict[str, int] = {}

    # -- feeding --

    def observe(
        self,
        services: Mapping[str, LogicalService],
        instances: Mapping[str, Instance],
        previous: Mapping[str, Instance],
    ) -> None:
        """Record what changed: `services` and `instances` as they are now (only the
        changed ones), `previous` the instances as they were before this change."""
        now = self.clock()
        for row_id, service in services.items():
            _record(self.services.setdefault(row_id, deque(maxlen=KEEP_TRANSITIONS)), now,
                    service.health, service.health_reason)
        for key, inst in instances.items():
            history = self.instances.get(key)
            if history is None:
                history = self.instances[key] = deque(maxlen=KEEP_TRANSITIONS)
                while len(self.instances) > KEEP_INSTANCES:
                    self.instances.popitem(last=False)
            else:
                self.instances.move_to_end(key)
            _record(history, now, inst.health, inst.health_reason)
            self._note_restart(inst, previous.get(key), now)

    def _note_restart(self, inst: Instance, before: Instance | None, now: datetime) -> None:
        known = self._restart_counts.get(inst.key)
        if before is not None and known is None:
            known = before.restarts
        self._restart_counts[inst.key] = inst.restarts
        if known is None or inst.restarts <= known:
            return  # first sight (its older restarts are in its count), or no new restart
        restarts = self.restarts.setdefault(inst.workload.id, deque(maxlen=KEEP_RESTARTS))
        restarts.append(Restart(inst.started_at or now, inst.name, inst.restarts, restart_detail(inst, before)))

    # -- reading --

    def of_service(self, row_id: str) -> list[Transition]:
        return list(self.services.get(row_id, ()))

    def of_instance(self, key: str) -> list[Transition]:
        return list(self.instances.get(key, ()))

    def restarts_of(self, workload_ids: Iterable[str]) -> list[Restart]:
        found = [r for wid in workload_ids for r in self.restarts.get(wid, ())]
        return sorted(found, key=lambda r: r.at)


def _record(history: deque[Transition], now: datetime, health: Health, reason: str) -> None:
    if history and history[-1].health == health and history[-1].reason == reason:
        return
    history.append(Transition(now, health, reason))


def restart_detail(inst: Instance, before: Instance | None) -> str:
    """Why the instance last died, as far as the engine says: a pod's containers keep
    their last termination; a container's exit code is the one seen before it restarted."""
    for status in inst.container_statuses:
        if status.last_exit_code is not None or status.last_reason:
            parts = [f"exit {status.last_exit_code}" if status.last_exit_code is not None else "",
                     status.last_reason if status.last_reason not in ("", "Error", "Completed") else ""]
            return ", ".join(p for p in parts if p)
    code = before.exit_code if before is not None and before.exit_code is not None else inst.exit_code
    parts = [f"exit {code}" if code is not None else "", "OOMKilled" if inst.oom_killed else ""]
    return ", ".join(p for p in parts if p)


# ---- the header's summary -----------------------------------------------------------------

# How a side of a service counts in the header: up, degraded or down. Stopped sides are
# not counted: a service the user stopped is not a fault.
UP = frozenset({Health.HEALTHY, Health.NO_CHECK})
DEGRADED = frozenset({Health.STARTING, Health.NOT_READY, Health.UNKNOWN})
DOWN = frozenset({Health.UNHEALTHY, Health.CRASH_LOOPING})


@dataclass(frozen=True, slots=True)
class SideSummary:
    healthy: int = 0
    degraded: int = 0
    down: int = 0

    @property
    def total(self) -> int:
        return self.healthy + self.degraded + self.down


def summarize(services: Iterable[LogicalService]) -> dict[Source, SideSummary]:
    """Per side, how many services are healthy (or run without a check), degraded, down."""
    counts = {source: [0, 0, 0] for source in Source}
    for service in services:
        for side in service.sides:
            bucket = _bucket(side)
            if bucket is not None:
                counts[side.key.source][bucket] += 1
    return {source: SideSummary(*c) for source, c in counts.items()}


def _bucket(workload: Workload) -> int | None:
    if workload.health in UP:
        return 0
    if workload.health in DEGRADED:
        return 1
    if workload.health in DOWN:
        return 2
    return None


# ---- the timeline -------------------------------------------------------------------------

TIMELINE_WINDOW = timedelta(minutes=10)
TIMELINE_WIDTH = 20
# A sparkline: the taller, the healthier, so it reads without colour too (screen shares).
LEVEL: dict[Health, int] = {
    Health.HEALTHY: 3,
    Health.NO_CHECK: 3,
    Health.STARTING: 2,
    Health.NOT_READY: 2,
    Health.UNKNOWN: 2,
    Health.UNHEALTHY: 1,
    Health.CRASH_LOOPING: 1,
    Health.STOPPED: 0,
}
GLYPH = {3: "█", 2: "▄", 1: "▁", 0: "·"}


def timeline(
    history: list[Transition], now: datetime, *, window: timedelta = TIMELINE_WINDOW, width: int = TIMELINE_WIDTH
) -> list[Health | None]:
    """The last `window` in `width` buckets, oldest first: each bucket's worst health
    (any moment of it counts: a flap shorter than a bucket still shows), None before
    the history begins."""
    step = window / width
    start = now - window
    buckets: list[Health | None] = [None] * width
    for i, transition in enumerate(history):
        until = history[i + 1].at if i + 1 < len(history) else now
        if until < start:
            continue
        first = min(width - 1, max(0, int((transition.at - start) / step)))
        last = min(width - 1, int((until - start) / step)) if until < now else width - 1
        for b in range(first, last + 1):
            current = buckets[b]
            if current is None or LEVEL[transition.health] < LEVEL[current]:
                buckets[b] = transition.health
    return buckets


def sparkline(buckets: list[Health | None]) -> str:
    return "".join(" " if h is None else GLYPH[LEVEL[h]] for h in buckets)
