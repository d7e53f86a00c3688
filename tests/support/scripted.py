"""A scripted adapter: the test decides what the "engine" reports, event by event.

For UI tests whose subject is the UI (row deltas, cursor, filter, snapshots) and for
benchmarks that need thousands of rows. Docker-backed UI tests use ComposeAdapter on
the real engine instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from backends.adapter import Action, ActionError, Adapter
from backends.model import (
    AdapterEvent,
    ConnState,
    Health,
    Instance,
    Port,
    ProbeRun,
    RunState,
    Source,
    SourceStatus,
    WorkloadKey,
)

FIXED_NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone.utc)


class ScriptedAdapter(Adapter):
    source = Source.COMPOSE

    def __init__(self, endpoint: str = "unix:///var/run/docker.sock") -> None:
        self._endpoint = endpoint
        self.queue: asyncio.Queue[AdapterEvent] = asyncio.Queue()
        self.performed: list[tuple[Action, tuple[str, ...]]] = []
        self.fail_with: str | None = None

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def emit(self, *events: AdapterEvent) -> None:
        for event in events:
            self.queue.put_nowait(event)

    def connected(self, version: str = "20.10.24") -> SourceStatus:
        return SourceStatus(self.source, ConnState.CONNECTED, self._endpoint, version)

    async def stream(self) -> AsyncIterator[AdapterEvent]:
        while True:
            yield await self.queue.get()

    def supports(self, action: Action) -> bool:
        return action in (Action.RESTART, Action.STOP, Action.START)

    async def perform(self, action: Action, instances: Sequence[Instance]) -> None:
        if self.fail_with:
            raise ActionError(self.fail_with)
        self.performed.append((action, tuple(i.id for i in instances)))

    def shell_command(self, instance: Instance) -> list[str]:
        return ["true"]


def make_instance(
    project: str,
    service: str,
    number: int = 1,
    *,
    state: RunState = RunState.RUNNING,
    health: Health = Health.HEALTHY,
    host_port: int | None = None,
    started_minutes_ago: float = 90,
    restarts: int = 0,
    exit_code: int | None = None,
    image: str | None = None,
    labels: dict[str, str] | None = None,
) -> Instance:
    ports = (Port(8080, "tcp", "0.0.0.0", host_port),) if host_port else (Port(8080),)
    running = state in (RunState.RUNNING, RunState.RESTARTING, RunState.PAUSED)
    all_labels = {"com.docker.compose.project": project, "com.docker.compose.service": service, **(labels or {})}
    return Instance(
        source=Source.COMPOSE,
        id=f"{project}-{service}-{number}".ljust(64, "0"),
        name=f"{project}_{service}_{number}",
        workload=WorkloadKey(Source.COMPOSE, project, service),
        state=state,
        health=health if running else Health.STOPPED,
        image=image or f"{project}/{service}:dev",
        ports=ports,
        created_at=FIXED_NOW - timedelta(minutes=started_minutes_ago + 1),
        started_at=FIXED_NOW - timedelta(minutes=started_minutes_ago) if running else None,
        restarts=restarts,
        exit_code=None if running else (exit_code if exit_code is not None else 0),
        labels=tuple(sorted(all_labels.items())),
        number=number,
    )


def demo_instances() -> list[Instance]:
    """A small but realistic hybrid-developer machine: two projects, mixed health."""
    return [
        make_instance("shop", "web", host_port=8080, started_minutes_ago=42),
        replace(
            make_instance("shop", "api", host_port=3001, health=Health.UNHEALTHY, restarts=3, started_minutes_ago=3),
            health_reason="healthcheck failed 3 times in a row: exit 1 — wget: server returned error: HTTP/1.1 503",
            probes=tuple(
                ProbeRun(FIXED_NOW - timedelta(seconds=s), FIXED_NOW - timedelta(seconds=s - 1), 1,
                         "wget: server returned error: HTTP/1.1 503 Service Unavailable")
                for s in (40, 30, 20)
            ),
        ),
        make_instance("shop", "api", 2, host_port=3002, health=Health.HEALTHY, started_minutes_ago=3),
        make_instance("shop", "postgres", health=Health.HEALTHY, started_minutes_ago=600, image="postgres:15-alpine"),
        make_instance("shop", "worker", health=Health.NO_CHECK, started_minutes_ago=42),
        make_instance("shop", "mailer", state=RunState.EXITED, exit_code=137),
        make_instance("billing", "ledger", health=Health.STARTING, started_minutes_ago=0.2, host_port=9090),
        make_instance("billing", "redis", health=Health.NO_CHECK, image="redis:7", started_minutes_ago=3000),
    ]


def stopped(instance: Instance, exit_code: int = 137) -> Instance:
    return replace(instance, state=RunState.EXITED, health=Health.STOPPED, exit_code=exit_code, started_at=None)
