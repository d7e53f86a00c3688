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
from backends.hub import Hub, Prober
from backends.model import ConnState, Instance, LogicalService, Port, Snapshot, Source, SourceStatus, Workload
from backends.pairing import Naming, naming_from
from backends.store import Store
from backends.rows import SERVICE_COLUMNS, render_table, service_row, utcnow


def build_hub(config: Config) -> Hub:
    """The hub for `config`; each SDK loads in the hub's thread, not before the first frame."""

    def compose() -> Adapter:
        from backends.compose import ComposeAdapter

        return ComposeAdapter(host=config.docker.host)

    def kube() -> Adapter:
        from backends.kube import KubeAdapter

        k8s = config.kubernetes
        return KubeAdapter(kubeconfig=k8s.kubeconfig, context=k8s.context, namespace=k8s.namespace)

    def http_prober(store: Store) -> Prober:
        from backends.httpprobe import HttpProber

        # A k3s workload with a port-forward is probed through it (its ClusterIP is
        # rarely reachable from a developer's machine).
        return HttpProber(config.health, store, extra_targets=hub.forwards.url_for)

    factories = [compose, kube] if config.kubernetes.enabled else [compose]
    # No URLs, no prober: nothing to import (httpx) or run.
    probers = [http_prober] if config.health.urls else []
    hub = Hub(factories=factories, naming=naming_of(config), probers=probers)
    hub.forwards.allow_remote_bind = config.forwards.allow_remote_bind
    return hub


def naming_of(config: Config) -> Naming:
    return naming_from([(p.compose, p.k3s) for p in config.hybrid.pairs], by_name=config.hybrid.match_by_name)


@dataclass
class StatusReport:
    hub: Hub
    problems: list[str] = field(default_factory=list)
    taken_at: datetime = field(default_factory=utcnow)

    @property
    def services(self) -> list[LogicalService]:
        return sorted(self.hub.store.services.values(), key=lambda s: (s.name, s.id))

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
            if isinstance(event, SourceStatus) and event.state == ConnState.ABSENT:
                return  # not configured: nothing to report on, and nothing wrong

    async def ask(source: Source, adapter: Adapter) -> None:
        try:
            await asyncio.wait_for(first_answer(source), timeout)
        except TimeoutError:
            report.problems.append(f"{source}: no answer from {adapter.endpoint} within {timeout:g}s")
        finally:
            await adapter.close()

    # Both sides at once: a slow cluster must not add its wait to Docker's.
    await asyncio.gather(*(ask(source, adapter) for source, adapter in hub.adapters.items()))
    report.taken_at = utcnow()
    return report


def status_table(report: StatusReport) -> str:
    lines = []
    for status in report.statuses:
        lines.append(f"{status.source}: {status_line(status)}")
    rows = [service_row(s, report.taken_at) for s in report.services]
    table = render_table(SERVICE_COLUMNS, rows) if rows else "No workloads found."
    return "\n".join([*lines, "", table]) if lines else table


def status_line(status: SourceStatus) -> str:
    """One line per connection: where, which version, what is shown."""
    if status.state == ConnState.ABSENT:
        return "not configured" + (f" ({status.message.removeprefix('k3s: ')})" if status.message else "")
    text = f"{status.state} {status.endpoint}"
    if status.version:
        text += f" ({status.version})"
    if status.scope:
        text += f", {status.scope}"
    if status.message and status.state == ConnState.CONNECTED:
        text += f" — {status.message}"
    return text


def _port(p: Port) -> dict:
    return {"container_port": p.container_port, "protocol": p.protocol, "host_ip": p.host_ip, "host_port": p.host_port}


def _time(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _instance(i: Instance) -> dict:
    return {
        "source": str(i.source),
        "id": i.id,
        "name": i.name,
        "state": str(i.state),
        "health": str(i.health),
        "health_reason": i.health_reason,
        "image": i.image,
        "ports": [_port(p) for p in i.ports],
        "started_at": _time(i.started_at),
        "restarts": i.restarts,
        "exit_code": i.exit_code,
        "oom_killed": i.oom_killed,
        "status": i.status_text,
    }


def _workload(w: Workload, store: Store) -> dict:
    return {
        "source": str(w.key.source),
        "group": w.key.group,
        "name": w.key.name,
        "state": w.state,
        "health": str(w.health),
        "health_reason": w.health_reason,
        "running": w.running,
        "desired": w.desired,
        "ports": [_port(p) for p in w.ports],
        "image": w.image,
        "started_at": _time(w.started_at),
        "restarts": w.restarts,
        "instances": [_instance(i) for i in store.instances_of(w.id)],
    }


def status_json(report: StatusReport) -> str:
    store = report.hub.store
    doc = {
        "taken_at": _time(report.taken_at),
        "sources": [
            {"source": str(s.source), "state": str(s.state), "endpoint": s.endpoint, "version": s.version,
             "scope": s.scope, "message": s.message}
            for s in report.statuses
        ],
        "services": [
            {
                "name": s.name,
                "location": s.location,
                "health": str(s.health),
                "health_reason": s.health_reason,
                "compose": _workload(s.compose, store) if s.compose else None,
                "k3s": _workload(s.k3s, store) if s.k3s else None,
            }
            for s in report.services
        ],
        "problems": report.problems,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)
