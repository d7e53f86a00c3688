"""What answers on which local port: the `:pf` rows (port-forwards and the published
ports of Compose containers, side by side), and the defaults the forward dialog offers.
Pure functions of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backends.model import (
    ForwardSpec,
    ForwardState,
    Instance,
    KubeService,
    PortForward,
    RunState,
    Source,
    WorkloadKey,
    WorkloadSpec,
)
from backends.rows import Cell, Column, Tone, humanize_age
from backends.store import Store


@dataclass(frozen=True, slots=True)
class Published:
    """A Compose container's published ports: what answers on localhost without a forward."""

    instance: Instance

    @property
    def key(self) -> str:
        return f"published/{self.instance.key}"

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        return self.instance.labels


PfRow = PortForward | Published

FORWARD_COLUMNS: tuple[Column, ...] = (
    Column("local", "LOCAL"),
    Column("via", "VIA"),
    Column("target", "TARGET"),
    Column("namespace", "NS/PROJECT"),
    Column("pod", "POD / CONTAINER"),
    Column("state", "STATE"),
    Column("conns", "CONNS"),
    Column("in", "IN"),
    Column("out", "OUT"),
    Column("age", "AGE", ticks=True),
    Column("error", "LAST ERROR"),
)

STATE_TONE: dict[ForwardState, Tone] = {
    ForwardState.STARTING: "warn",
    ForwardState.ACTIVE: "ok",
    ForwardState.RECONNECTING: "warn",
    ForwardState.FAILED: "error",
    ForwardState.STOPPED: "muted",
}


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop always returns


def _host(ip: str | None) -> str:
    return "localhost" if ip in (None, "", "0.0.0.0", "::", "127.0.0.1", "::1") else ip


def published_ports(instance: Instance) -> list[str]:
    """`localhost:8080→80/tcp`, one per distinct host binding (Docker may publish the IPv4
    and the IPv6 side of one port on different host ports: both answer, both are said)."""
    seen: list[str] = []
    for port in instance.ports:
        if port.host_port is None:
            continue
        text = f"{_host(port.host_ip)}:{port.host_port}→{port.container_port}/{port.protocol}"
        if text not in seen:
            seen.append(text)
    return seen


def forward_row(row: PfRow, now: datetime) -> tuple[Cell, ...]:
    if isinstance(row, Published):
        inst = row.instance
        return (
            Cell(", ".join(published_ports(inst))),
            Cell("compose", "info"),
            Cell(inst.workload.name),
            Cell(inst.workload.group, "info"),
            Cell(inst.name, "muted"),
            Cell("published", "ok"),
            Cell("-", "muted"),
            Cell("-", "muted"),
            Cell("-", "muted"),
            Cell(humanize_age(inst.started_at, now)),
            Cell("", "muted"),
        )
    spec = row.spec
    pod = row.pod or "-"
    if row.previous_pod and row.pod and row.previous_pod != row.pod:
        pod = f"{row.pod} (was {row.previous_pod})"
    return (
        Cell(f"{_host(spec.address)}:{spec.local_port}"),
        Cell("forward", "info"),
        Cell(spec.target),
        Cell(spec.namespace, "info"),
        Cell(pod, "normal" if row.pod else "muted"),
        Cell(str(row.state), STATE_TONE[row.state]),
        Cell(f"{row.connections} ({row.total_connections})"),
        Cell(human_bytes(row.bytes_in)),
        Cell(human_bytes(row.bytes_out)),
        Cell(humanize_age(row.started_at, now)),
        Cell(row.last_error, "error" if row.last_error else "muted"),
    )


def pf_rows(store: Store) -> dict[str, PfRow]:
    rows: dict[str, PfRow] = {k: o for k, o in store.objects_of(PortForward).items()}  # type: ignore[misc]
    for inst in store.instances.values():
        if (row := published_row(inst)) is not None:
            rows[row.key] = row
    return rows


def published_row(inst: Instance) -> Published | None:
    if inst.source != Source.COMPOSE or inst.state != RunState.RUNNING:
        return None
    return Published(inst) if any(p.host_port is not None for p in inst.ports) else None


def url_of(row: PfRow) -> str:
    if isinstance(row, Published):
        first = next((p for p in row.instance.ports if p.host_port is not None), None)
        return f"http://{_host(first.host_ip)}:{first.host_port}" if first else ""
    return row.spec.url


# ---- the dialog's defaults -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """What shift-f was pressed on, and what the dialog offers for it."""

    namespace: str
    kind: str  # pod, service, deployment, statefulset
    name: str
    ports: tuple[int, ...]  # the container ports (a Service: its ports)
    port_hints: tuple[str, ...]  # "80►8080/TCP", "8080/tcp" — shown beside the input
    local_port: int  # the default local port
    workload: WorkloadKey | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def default_local_port(remote: int, previous: int | None = None) -> int:
    """The Compose service's old host port when there is one (localhost:PORT keeps its
    meaning after a promotion); else the same port, moved above 1024 (an unprivileged
    user cannot bind 80: 80 → 8080, 443 → 8443)."""
    if previous:
        return previous
    return remote if remote >= 1024 else remote + 8000


def compose_host_port(store: Store, workload: WorkloadKey | None, container_port: int | None) -> int | None:
    """The host port the Compose service of the same hybrid row publishes (the one for
    `container_port` if it publishes that one)."""
    if workload is None:
        return None
    row_id = store.service_of(workload.id)
    service = store.services.get(row_id) if row_id else None
    if service is None or service.compose is None:
        return None
    published = [p for p in service.compose.ports if p.host_port is not None]
    match = next((p for p in published if p.container_port == container_port), None)
    chosen = match or (published[0] if published else None)
    return chosen.host_port if chosen else None


def target_of_pod(store: Store, pod: Instance) -> ForwardTarget:
    ports = tuple(sorted({p.container_port for p in pod.ports}))
    hints = tuple(f"{p.container_port}/{p.protocol}" + (f" ({p.name})" if p.name else "") for p in pod.ports)
    return _target(store, pod.workload.group, "pod", pod.name, ports, hints, pod.workload)


def target_of_workload(store: Store, spec: WorkloadSpec) -> ForwardTarget:
    pods = store.instances_of(spec.id)
    ports = tuple(sorted({p.container_port for i in pods for p in i.ports}))
    hints = tuple(f"{p}/tcp" for p in ports)
    return _target(store, spec.key.group, spec.kind.lower(), spec.key.name, ports, hints, spec.key)


def target_of_service(store: Store, svc: KubeService) -> ForwardTarget:
    ports = tuple(p.port for p in svc.ports)
    hints = tuple(str(p) for p in svc.ports)
    # The workload behind it: same name in the namespace (how hybrid rows pair, too).
    workload = next((s.key for s in store.specs.values()
                     if s.key.source == Source.K3S and s.key.group == svc.namespace and s.key.name == svc.name), None)
    return _target(store, svc.namespace, "service", svc.name, ports, hints, workload)


def _target(store: Store, namespace: str, kind: str, name: str, ports: tuple[int, ...], hints: tuple[str, ...],
            workload: WorkloadKey | None) -> ForwardTarget:
    first = ports[0] if ports else None
    local = default_local_port(first, compose_host_port(store, workload, first)) if first else 8080
    return ForwardTarget(namespace, kind, name, ports, hints, local, workload)


def spec_from(target: ForwardTarget, remote: int, local: int, address: str) -> ForwardSpec:
    return ForwardSpec(target.namespace, target.kind, target.name, remote, local, address)
