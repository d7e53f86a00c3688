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
from enum import StrEnum

from backends.model import AdapterEvent, Instance, Source


class Action(StrEnum):
    """Actions a view can ask for; each adapter says which it supports."""

    RESTART = "restart"
    STOP = "stop"
    START = "start"


# Actions that change the world; `--readonly` hides them all.
MUTATING_ACTIONS = frozenset({Action.RESTART, Action.STOP, Action.START})


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

    async def close(self) -> None:
        """Release connections; the default has nothing to release."""


def backoff_delays(minimum: float, maximum: float) -> Iterator[float]:
    """Reconnect delays: minimum, 2×minimum, … capped at maximum, forever."""
    delay = minimum
    while True:
        yield delay
        delay = min(delay * 2, maximum)
