"""Headless use of the backends: building the hub, and `ferryman status`.

`status` takes one snapshot through the same adapters and store the TUI uses, so the
table it prints is the TUI's workloads table, row for row.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime

from backends.adapter import Adapter
from backends.config import Config
from backends.hub import Hub
from backends.model import ConnState, Instance, Port, Snapshot, Source, SourceStatus, Workload
from backends.rows import WORKLOAD_COLUMNS, render_table, utcnow, workload_row


def build_hub(config: Config) -> Hub:
    def compose() -> Adapter:
        from backends.compose import ComposeAdapter  # the docker SDK loads here, in the hub's thread

        return ComposeAdapter(host=config.docker.host)

    return Hub(factories=[compose])


@dataclass
class StatusReport:
    hub: Hub
    problems: list[str] = field(default_factory=list)
    taken_at: datetime = field(default_factory=utcnow)

    @property
    def workloads(self) -> list[Workload]:
        return sorted(self.hub.store.workloads.values(), key=lambda w: w.key)

    @property
    def statuses(self) -> list[SourceStatus]:
        return list(self.hub.store.status.values())


async def collect_status(config: Config, *, timeout: float = 10.0, hub: Hub | None = None) -> StatusReport:
    """Wait for every source's first snapshot, or its first failure, or the timeout."""
    hub = hub or build_hub(config)
    await hub.start_adapters()
    report = StatusReport(hub)

    async def first_answer(source: Source) -> None:
        adapter = hub.adapters[source]
        async for event in adapter.stream():
            hub.store.apply(event)
            if isinstance(event, Snapshot):
                return
            if isinstance(event, SourceStatus) and event.state == ConnState.UNREACHABLE:
                report.problems.append(event.message or f"{source}: unreachable at {adapter.endpoint}")
                return

    for source, adapter in hub.adapters.items():
        try:
            await asyncio.wait_for(first_answer(source), timeout)
        except TimeoutError:
            report.problems.append(f"{source}: no answer from {adapter.endpoint} within {timeout:g}s")
        finally:
            await adapter.close()
    report.taken_at = utcnow()
    return report


def status_table(report: StatusReport) -> str:
    rows = [workload_row(w, report.taken_at) for w in report.workloads]
    if not rows:
        return "No workloads found."
    return render_table(WORKLOAD_COLUMNS, rows)


def _port(p: Port) -> dict:
    return {"container_port": p.container_port, "protocol": p.protocol, "host_ip": p.host_ip, "host_port": p.host_port}


def _time(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _instance(i: Instance) -> dict:
    return {
        "id": i.id,
        "name": i.name,
        "state": str(i.state),
        "health": str(i.health),
        "image": i.image,
        "ports": [_port(p) for p in i.ports],
        "started_at": _time(i.started_at),
        "restarts": i.restarts,
        "exit_code": i.exit_code,
        "oom_killed": i.oom_killed,
    }


def status_json(report: StatusReport) -> str:
    store = report.hub.store
    doc = {
        "taken_at": _time(report.taken_at),
        "sources": [
            {"source": str(s.source), "state": str(s.state), "endpoint": s.endpoint, "version": s.version,
             "message": s.message}
            for s in report.statuses
        ],
        "workloads": [
            {
                "source": str(w.key.source),
                "group": w.key.group,
                "name": w.key.name,
                "state": w.state,
                "health": str(w.health),
                "running": w.running,
                "desired": w.desired,
                "ports": [_port(p) for p in w.ports],
                "image": w.image,
                "started_at": _time(w.started_at),
                "restarts": w.restarts,
                "instances": [_instance(i) for i in store.instances_of(w.id)],
            }
            for w in report.workloads
        ],
        "problems": report.problems,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)
