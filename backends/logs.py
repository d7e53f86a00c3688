"""Logs: the model shared by the log sources (adapters), the follower that merges them,
and the log view.

A *target* is one stream of lines: a container, or one container of a pod. Adapters
turn a target's stream into `LogLine`s (whole, cleaned lines with the engine's
timestamp) and say when the stream ends (`LogEnded`). A follower (backends/logfollow.py)
follows every target of a selection — one container, or all replicas of a workload, new
ones joining — across restarts, interleaves them in time order into a bounded
`LogBuffer` (backends/logtext.py) and adds markers: "container restarted, exit 137,
OOMKilled", "stream cut by the server; reconnected", "N lines dropped".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from backends.model import Instance, Source

if TYPE_CHECKING:
    from backends.logtext import LogBuffer


class LogKind(StrEnum):
    LINE = "line"  # what the program wrote
    MARKER = "marker"  # what Ferryman says about the stream (restart, reconnect, drops)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line, ready to show: valid text, no terminal control sequences (colours and
    cursor movement are stripped, never interpreted), carriage returns resolved as a
    terminal would show them, very long lines cut (`truncated` says how many bytes)."""

    source: str  # the prefix shown: container or pod name, "pod/container" for multi-container pods
    time: datetime | None  # the engine's timestamp (UTC); None if the engine gave none
    text: str
    kind: LogKind = LogKind.LINE
    stream: str = "stdout"  # or "stderr" where the engine tells them apart
    truncated: int = 0


@dataclass(frozen=True, slots=True)
class LogEnded:
    """The target's stream ended. `reason` is for the marker line ("container exited
    (137, OOMKilled)", "stream cut by the API server"); `final` when the target is gone
    for good (container removed, pod deleted) and no reconnect will be tried."""

    reason: str
    final: bool = False


@dataclass(frozen=True, slots=True)
class LogTarget:
    instance: Instance
    container: str | None = None  # for pods with several containers; None: the only/default one

    @property
    def label(self) -> str:
        return f"{self.instance.name}/{self.container}" if self.container else self.instance.name


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What to ask each source for. Exactly one of `tail` / `since` limits the history
    (both None: everything the engine kept)."""

    tail: int | None = 500
    since: timedelta | None = None
    follow: bool = True
    previous: bool = False  # Kubernetes: the previous (e.g. crashed) container's log

    def since_time(self, now: datetime) -> datetime | None:
        return now - self.since if self.since is not None else None


# The presets the view cycles through (k9s users know 1m/5m/15m/1h/all).
SINCE_PRESETS: tuple[tuple[str, LogOptions], ...] = (
    ("tail 500", LogOptions(tail=500)),
    ("1m", LogOptions(tail=None, since=timedelta(minutes=1))),
    ("5m", LogOptions(tail=None, since=timedelta(minutes=5))),
    ("15m", LogOptions(tail=None, since=timedelta(minutes=15))),
    ("1h", LogOptions(tail=None, since=timedelta(hours=1))),
    ("all", LogOptions(tail=None)),
)


class LogSession(Protocol):
    """What the log view holds: a follower of one selection (backends/logfollow.py
    implements it; tests may script one). The view owns it: it calls `run` in a worker
    and `close` when it goes, so no stream outlives the view."""

    buffer: LogBuffer  # bounded; lines are appended in time order, markers included
    options: LogOptions
    # Whether `LogOptions.previous` means anything here (Kubernetes pods only).
    previous_supported: bool

    async def run(self, on_lines: Callable[[], None]) -> None:
        """Follow until cancelled or closed; call `on_lines` (cheaply, often) after lines
        were appended to `buffer`. Faults become marker lines, never exceptions."""

    async def restart(self, options: LogOptions) -> None:
        """Start over with other options (a since preset, previous): the buffer is
        cleared and every stream reopened."""

    async def close(self) -> None:
        """End every stream now; idempotent."""


def targets_of(instances: Iterable[Instance]) -> list[LogTarget]:
    """Every stream of these instances: a container is one; a pod is one per container
    when it has several (its log API needs the container's name then)."""
    targets = []
    for inst in instances:
        names = inst.container_names if inst.source == Source.K3S else ()
        if len(names) > 1:
            targets.extend(LogTarget(inst, name) for name in names)
        else:
            targets.append(LogTarget(inst))
    return targets
