"""The domain model every adapter speaks and every view reads.

Adapters turn Docker containers and Kubernetes pods into `Instance`s; the store
groups instances into `Workload`s (a Compose service, later a Deployment). All
values are immutable so a view can hold on to one while the store moves on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    """Which world an object lives in."""

    COMPOSE = "compose"
    K3S = "k3s"


class RunState(StrEnum):
    """Lifecycle of one instance, in Docker's words (pods map onto these)."""

    RUNNING = "running"
    RESTARTING = "restarting"
    PAUSED = "paused"
    CREATED = "created"
    EXITED = "exited"
    DEAD = "dead"
    REMOVING = "removing"
    UNKNOWN = "unknown"


class Health(StrEnum):
    """What we know of an instance's health. Never "healthy" without a check."""

    HEALTHY = "healthy"
    STARTING = "starting"
    UNHEALTHY = "unhealthy"
    NO_CHECK = "no healthcheck"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


# Worst first: a workload is as healthy as its least healthy running instance.
HEALTH_SEVERITY: dict[Health, int] = {
    Health.UNHEALTHY: 0,
    Health.STARTING: 1,
    Health.UNKNOWN: 2,
    Health.HEALTHY: 3,
    Health.NO_CHECK: 4,
    Health.STOPPED: 5,
}


@dataclass(frozen=True, slots=True)
class Port:
    """A port an instance exposes, and where it is published on the host if it is."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None

    @property
    def published(self) -> bool:
        return self.host_port is not None

    def __str__(self) -> str:
        inner = f"{self.container_port}/{self.protocol}"
        if self.host_port is None:
            return inner
        host = self.host_ip if self.host_ip and self.host_ip not in ("0.0.0.0", "::") else ""
        return f"{host + ':' if host else ''}{self.host_port}→{inner}"


@dataclass(frozen=True, slots=True, order=True)
class WorkloadKey:
    """Names a workload: a Compose service (group = project) or, later, a
    Kubernetes Deployment/StatefulSet (group = namespace)."""

    source: Source
    group: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.source}/{self.group}/{self.name}"

    def __str__(self) -> str:
        return f"{self.group}/{self.name}"


@dataclass(frozen=True, slots=True)
class Instance:
    """One running unit: a container (Compose) or, later, a pod (k3s)."""

    source: Source
    id: str
    name: str
    workload: WorkloadKey
    state: RunState
    health: Health
    image: str
    ports: tuple[Port, ...] = ()
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restarts: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    number: int = 1
    status_text: str = ""
    # Pods: containers ready of all (k9s's READY "1/2"), pod IP and node. Containers: unset.
    containers_ready: int = 0
    containers_total: int = 0
    # Pods: the names of their containers (logs of a multi-container pod need one).
    container_names: tuple[str, ...] = ()
    ip: str = ""
    node: str = ""

    @property
    def key(self) -> str:
        """Unique across sources; used as the table row key."""
        return f"{self.source}/{self.id}"

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.state in (RunState.RUNNING, RunState.RESTARTING, RunState.PAUSED)

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class Workload:
    """A logical service, aggregated from its instances by `aggregate`."""

    key: WorkloadKey
    state: str
    health: Health
    running: int
    desired: int
    ports: tuple[Port, ...]
    image: str
    started_at: datetime | None
    restarts: int
    instance_keys: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.key.id


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What a controller declares about a workload, independent of its instances.

    A Deployment scaled to 0 has no pods but is still a row; its desired replica
    count comes from here, not from counting pods. Compose services have no spec
    (their containers are all there is), so they aggregate from instances alone.
    """

    key: WorkloadKey
    kind: str  # "Deployment", "StatefulSet"
    desired: int
    image: str = ""
    ready: int = 0
    updated: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    created_at: datetime | None = None
    # False while the controller has not yet acted on the latest spec change.
    observed: bool = True
    available: int = 0

    @property
    def id(self) -> str:
        return self.key.id


@dataclass(frozen=True, slots=True)
class LogicalService:
    """One row of the hybrid workloads view: a service as the user thinks of it, with
    its Compose side, its Kubernetes side, or both (see backends/pairing.py)."""

    id: str
    name: str
    compose: Workload | None
    k3s: Workload | None
    health: Health

    @property
    def location(self) -> str:
        if self.compose and self.k3s:
            return "both"
        return "compose" if self.compose else "k3s"

    @property
    def sides(self) -> tuple[Workload, ...]:
        return tuple(w for w in (self.compose, self.k3s) if w is not None)


class ConnState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    # Nothing to connect to (no kubeconfig): not a fault, no banner; still rechecked.
    ABSENT = "not configured"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How an adapter's connection stands; drives the header and the banner."""

    source: Source
    state: ConnState
    endpoint: str
    version: str | None = None
    message: str | None = None
    # What part of the source is shown: "namespace shop", "all namespaces" (k3s).
    scope: str | None = None


# ---- Kubernetes objects with tables of their own ------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target_port: str  # a number or a container port's name, as the Service says it
    protocol: str = "TCP"
    node_port: int | None = None

    def __str__(self) -> str:
        text = f"{self.port}"
        if self.node_port:
            text += f":{self.node_port}"
        text += f"►{self.target_port}" if str(self.port) != self.target_port else ""
        return f"{self.name}:{text}/{self.protocol}" if self.name else f"{text}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class KubeService:
    """A Kubernetes Service (`:svc`); port-forwards resolve service port → targetPort here."""

    namespace: str
    name: str
    type: str
    cluster_ip: str
    external_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    selector: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...] = ()
    created_at: datetime | None = None

    kind = "Service"
    source = Source.K3S

    @property
    def key(self) -> str:
        return f"k3s/Service/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """A Kubernetes Event (`:events`, describe, and health's warning events)."""

    namespace: str
    name: str
    type: str  # Normal, Warning
    reason: str
    object_kind: str
    object_name: str
    message: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    component: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    kind = "Event"
    source = Source.K3S

    @property
    def key(self) -> str:
        return f"k3s/Event/{self.namespace}/{self.name}"

    @property
    def created_at(self) -> datetime | None:
        return self.first_seen


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    phase: str
    labels: tuple[tuple[str, str], ...] = ()
    created_at: datetime | None = None

    kind = "Namespace"
    source = Source.K3S

    @property
    def key(self) -> str:
        return f"k3s/Namespace/{self.name}"


KubeObject = KubeService | ClusterEvent | Namespace


# ---- what adapters emit ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The complete current set of a source's instances and workload specs (start-up
    and every resync)."""

    source: Source
    instances: tuple[Instance, ...]
    specs: tuple[WorkloadSpec, ...] = ()
    objects: tuple[KubeObject, ...] = ()


@dataclass(frozen=True, slots=True)
class InstanceChanged:
    instance: Instance


@dataclass(frozen=True, slots=True)
class InstanceGone:
    source: Source
    instance_id: str

    @property
    def key(self) -> str:
        return f"{self.source}/{self.instance_id}"


@dataclass(frozen=True, slots=True)
class SpecChanged:
    spec: WorkloadSpec


@dataclass(frozen=True, slots=True)
class SpecGone:
    key: WorkloadKey


@dataclass(frozen=True, slots=True)
class ObjectChanged:
    obj: KubeObject


@dataclass(frozen=True, slots=True)
class ObjectGone:
    key: str  # KubeObject.key


AdapterEvent = (
    SourceStatus | Snapshot | InstanceChanged | InstanceGone | SpecChanged | SpecGone | ObjectChanged | ObjectGone
)


# ---- aggregation ----------------------------------------------------------------------


def aggregate(key: WorkloadKey, instances: list[Instance], spec: WorkloadSpec | None = None) -> Workload:
    """Fold a workload's instances (and its controller's spec, if any) into its row:
    pure, so it is tested densely."""
    ordered = sorted(instances, key=lambda i: (i.number, i.name))
    running = [i for i in ordered if i.running]
    desired = spec.desired if spec is not None else len(ordered)
    if spec is not None and not ordered:
        state = "scaled to 0" if desired == 0 else "pending"
    elif any(i.state == RunState.RESTARTING for i in ordered):
        state = "restarting"
    elif running and len(running) >= desired:
        state = "paused" if all(i.state == RunState.PAUSED for i in running) else "running"
    elif running:
        state = "partial"
    elif ordered and all(i.state == RunState.CREATED for i in ordered):
        state = "created"
    else:
        # As `docker ps` says it: a job that failed must not read like a clean stop.
        codes = {i.exit_code for i in ordered}
        state = f"exited ({codes.pop()})" if len(codes) == 1 and None not in codes else "stopped"
    if running:
        health = min((i.health for i in running), key=HEALTH_SEVERITY.__getitem__)
    elif spec is not None and desired > 0:
        health = Health.UNKNOWN  # wanted but nothing runs: not "stopped", and not healthy
    else:
        health = Health.STOPPED
    ports: list[Port] = []
    for inst in ordered:
        for port in inst.ports:
            if port not in ports:
                ports.append(port)
    starts = [i.started_at for i in running if i.started_at is not None]
    images = list(dict.fromkeys(i.image for i in ordered)) or ([spec.image] if spec and spec.image else [""])
    return Workload(
        key=key,
        state=state,
        health=health,
        running=len(running),
        desired=desired,
        ports=tuple(ports),
        image=images[0] if len(images) == 1 else f"{images[0]} (+{len(images) - 1})",
        started_at=min(starts) if starts else None,
        restarts=sum(i.restarts for i in ordered),
        instance_keys=tuple(i.key for i in ordered),
    )


@dataclass(frozen=True, slots=True)
class KubeContext:
    """A kubeconfig context, for the `:ctx` picker."""

    name: str
    current: bool

    @property
    def key(self) -> str:
        return f"context/{self.name}"
