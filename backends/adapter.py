"""The interface every backend adapter implements.

An adapter owns one connection (the Docker engine, a Kubernetes context). It
streams `AdapterEvent`s forever: a `SourceStatus`, then a `Snapshot`, then changes;
after any disconnect it says so with a `SourceStatus`, reconnects with back-off and
sends a fresh `Snapshot`, which the store diffs so that nothing is duplicated or
lost. Actions are coroutines; blocking SDK calls run in threads, never on the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from backends.logs import LogEnded, LogLine, LogOptions, LogTarget
from backends.model import (
    AdapterEvent,
    ClusterEvent,
    Instance,
    KubeService,
    Namespace,
    Source,
    WorkloadKey,
    WorkloadSpec,
)


class Action(StrEnum):
    """Actions a view can ask for; each adapter says which it supports."""

    RESTART = "restart"
    STOP = "stop"
    START = "start"
    DELETE = "delete"
    # On a workload as a whole (a Deployment/StatefulSet), not on its instances.
    SCALE = "scale"
    ROLLOUT_RESTART = "rollout restart"


# Actions that change the world; `--readonly` hides them all.
MUTATING_ACTIONS = frozenset(Action)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Names one object for YAML/describe: ("Pod", namespace, name), ("Deployment", …),
    ("container", project, container id)."""

    source: Source
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def ref_of(obj: object) -> ObjectRef | None:
    """What `y`/`d` show for a row's object; None for rows that are no object."""
    match obj:
        case Instance(source=Source.COMPOSE):
            return ObjectRef(Source.COMPOSE, "container", obj.workload.group, obj.id)
        case Instance():
            return ObjectRef(Source.K3S, "Pod", obj.workload.group, obj.name)
        case WorkloadSpec():
            return ObjectRef(Source.K3S, obj.kind, obj.key.group, obj.key.name)
        case KubeService() | ClusterEvent():
            return ObjectRef(Source.K3S, obj.kind, obj.namespace, obj.name)
        case Namespace() if obj.phase:
            return ObjectRef(Source.K3S, "Namespace", None, obj.name)
    return None


class ActionError(Exception):
    """An action failed in a way the user should read (the message says why)."""


class Adapter(ABC):
    source: Source

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where this adapter connects, for the header ("unix:///var/run/docker.sock")."""

    @abstractmethod
    def stream(self) -> AsyncIterator[AdapterEvent]:
        """Yield events until cancelled; reconnect and resync by itself."""

    @abstractmethod
    def supports(self, action: Action) -> bool: ...

    @abstractmethod
    async def perform(self, action: Action, instances: Sequence[Instance]) -> None:
        """Run `action` on every instance; raise `ActionError` with a readable reason."""

    @abstractmethod
    def shell_command(self, instance: Instance) -> list[str]:
        """The argv that opens an interactive shell in `instance` (run by the UI,
        which suspends itself around it)."""

    async def scale(self, workload: WorkloadKey, replicas: int) -> None:
        raise ActionError(f"scaling is not available for {self.source} workloads")

    async def rollout_restart(self, workload: WorkloadKey) -> None:
        raise ActionError(f"rollout restart is not available for {self.source} workloads")

    async def manifest(self, ref: ObjectRef) -> str:
        """The object as YAML (a container's inspect, a Kubernetes object's manifest)."""
        raise ActionError(f"no YAML for {ref}")

    async def describe(self, ref: ObjectRef) -> str:
        """The object as a person reads it (kubectl describe, a container's essentials)."""
        raise ActionError(f"no description for {ref}")

    # ---- logs ---------------------------------------------------------------------------

    def logs(self, target: LogTarget, options: LogOptions) -> AsyncIterator[list[LogLine] | LogEnded]:
        """The target's log lines, in order, with the engine's timestamps, in batches:
        each item is a non-empty list of the lines that arrived since the last one (a
        flood of 100k+ lines/s must not cost a step of the iterator per line).

        Following (`options.follow`), the stream always ends with a `LogEnded` saying why
        (the container exited, the server ended the stream, the target is gone: `final`).
        Not following, it just stops after the last line. Either way a fault (the target
        cannot be read, the connection broke) is a `LogEnded`, never an exception. Closing
        the iterator (or cancelling its reader) ends the request at once."""
        raise ActionError(f"no logs for {target.label}")

    async def close(self) -> None:
        """Release connections; the default has nothing to release."""


def backoff_delays(minimum: float, maximum: float) -> Iterator[float]:
    """Reconnect delays: minimum, 2×minimum, … capped at maximum, forever."""
    delay = minimum
    while True:
        yield delay
        delay = min(delay * 2, maximum)
