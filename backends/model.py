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
    """What we know of an instance's health. Never "healthy" without a check: a
    container without a healthcheck is "no healthcheck", a pod is healthy when Ready."""

    HEALTHY = "healthy"
    STARTING = "starting"  # within its start period / first probes, never failed yet
    UNHEALTHY = "unhealthy"  # a check fails, an image cannot be pulled, a rollout is stuck
    CRASH_LOOPING = "crash-looping"  # keeps dying and being restarted
    NOT_READY = "not ready"  # running, past its start, but not (or no longer) ready
    NO_CHECK = "no healthcheck"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


# Worst first: a workload is as healthy as its least healthy running instance.
HEALTH_SEVERITY: dict[Health, int] = {
    Health.CRASH_LOOPING: 0,
    Health.UNHEALTHY: 1,
    Health.NOT_READY: 2,
    Health.STARTING: 3,
    Health.UNKNOWN: 4,
    Health.HEALTHY: 5,
    Health.NO_CHECK: 6,
    Health.STOPPED: 7,
}

# How many characters of a probe's output an instance keeps (Docker keeps 4 KiB of each).
PROBE_OUTPUT_CHARS = 500


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One run of a Compose healthcheck, as `State.Health.Log` has it (the engine keeps
    the last five). `output` is cleaned for the screen (valid text, no control
    characters) and cut to PROBE_OUTPUT_CHARS."""

    started: datetime | None
    ended: datetime | None
    exit_code: int  # 0 passed, 1 failed; Docker says -1 when the probe timed out or could not run
    output: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    """One container of a pod, from the pod's status (the health pane's detail)."""

    name: str
    ready: bool
    restarts: int
    state: str  # "running", "waiting", "terminated"
    reason: str = ""  # CrashLoopBackOff, ImagePullBackOff, ErrImageNeverPull, OOMKilled, Error…
    message: str = ""
    exit_code: int | None = None
    started_at: datetime | None = None
    # The previous run (lastState.terminated): why the container last died.
    last_reason: str = ""
    last_exit_code: int | None = None
    last_finished: datetime | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A Kubernetes condition (a pod's Ready, a Deployment's Progressing…)."""

    type: str
    status: str  # "True", "False", "Unknown"
    reason: str = ""
    message: str = ""
    changed: datetime | None = None  # lastTransitionTime


@dataclass(frozen=True, slots=True)
class Port:
    """A port an instance exposes, and where it is published on the host if it is."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None
    name: str = ""  # a pod's named port ("http"): what a Service's targetPort may name

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
    # Why `health` is what it is, in one line ("healthcheck failed 3 times: exit 1",
    # "CrashLoopBackOff: back-off 40s restarting failed container", "OOMKilled (exit 137)").
    health_reason: str = ""
    # Containers: the healthcheck's last runs, oldest first. Pods: their containers'
    # statuses and the pod's conditions.
    probes: tuple[ProbeRun, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()

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
    health_reason: str = ""

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
    # The controller's conditions (a Deployment's Progressing and Available).
    conditions: tuple[Condition, ...] = ()

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
    health_reason: str = ""

    @property
    def location(self) -> str:
        """Where the service runs. With both sides declared but only one running (a
        promoted service whose Compose container is stopped, a demoted one whose
        Deployment is at 0), that side: the row moves as the promotion happens. The
        COMPOSE and K3S cells still show both sides."""
        if self.compose and self.k3s:
            compose_runs, k3s_runs = self.compose.running > 0, self.k3s.running > 0
            if compose_runs != k3s_runs:
                return "compose" if compose_runs else "k3s"
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


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """The latest probe of one workload's health URL (config `health.urls`), kept in the
    store beside the Kubernetes objects. Not of a source: no snapshot removes it."""

    workload: WorkloadKey
    path: str  # as configured: "/health"
    url: str  # what was requested: "http://127.0.0.1:8080/health"; "" when no target resolves
    ok: bool  # an answer within the timeout with an expected status (default 200-399)
    status: int | None  # the HTTP status; None when nothing answered
    latency_ms: float | None
    error: str  # "timed out after 2 s", "connection refused", "no published port"…
    checked_at: datetime | None
    recent: tuple[bool, ...] = ()  # the last results, oldest first (at most HTTP_CHECK_RECENT)

    kind = "HttpCheck"
    source = None

    @property
    def key(self) -> str:
        return f"probe/{self.workload.id}{self.path}"

    @property
    def created_at(self) -> datetime | None:
        return self.checked_at


HTTP_CHECK_RECENT = 20


# ---- port-forwards ------------------------------------------------------------------------


class ForwardState(StrEnum):
    STARTING = "starting"  # listening, the first pod not resolved yet
    ACTIVE = "active"  # listening, and new connections go to a ready pod
    RECONNECTING = "reconnecting"  # listening, but no ready pod (or no API server) right now
    FAILED = "failed"  # the last attempt failed for a reason waiting will not fix (RBAC…)
    STOPPED = "stopped"


FORWARD_KINDS = ("pod", "service", "deployment", "statefulset")


@dataclass(frozen=True, slots=True)
class ForwardSpec:
    """A port-forward as the user asks for it, and as a saved set stores it."""

    namespace: str
    kind: str  # one of FORWARD_KINDS
    name: str
    # pod, deployment, statefulset: the container port; service: the Service's port, which
    # the forward maps to its targetPort on the pod it picks.
    remote_port: int
    local_port: int
    address: str = "127.0.0.1"

    @property
    def key(self) -> str:
        return f"forward/{self.address}:{self.local_port}"

    @property
    def target(self) -> str:
        short = {"service": "svc", "deployment": "deploy", "statefulset": "sts"}.get(self.kind, self.kind)
        return f"{short}/{self.name}:{self.remote_port}"

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        host = "localhost" if self.address in ("127.0.0.1", "::1") else host
        return f"http://{host}:{self.local_port}"


@dataclass(frozen=True, slots=True)
class PortForward:
    """A forward as the store holds it (`:pf`): its spec and how it stands now."""

    spec: ForwardSpec
    state: ForwardState
    pod: str = ""  # where new connections go now ("" while no pod is ready)
    pod_port: int = 0  # the container port on that pod (a Service's targetPort, resolved)
    connections: int = 0  # open now
    total_connections: int = 0
    bytes_in: int = 0  # from the pod to local clients
    bytes_out: int = 0  # from local clients to the pod
    started_at: datetime | None = None
    last_error: str = ""
    previous_pod: str = ""  # the pod before the last switch (a restart or a rollout)
    switched_at: datetime | None = None

    kind = "PortForward"
    source = None

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def created_at(self) -> datetime | None:
        return self.started_at

KubeObject = KubeService | ClusterEvent | Namespace | HttpCheck | PortForward


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
    health, reason = workload_health(ordered, spec)
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
        health_reason=reason,
    )


# A problem an instance has is the workload's even when the instance is not running
# (a pod waiting in CrashLoopBackOff or ImagePullBackOff).
_PROBLEMS = frozenset({Health.CRASH_LOOPING, Health.UNHEALTHY})


def workload_health(instances: list[Instance], spec: WorkloadSpec | None = None) -> tuple[Health, str]:
    """A workload's health and why: its worst instance (running, or with a problem), then
    what its controller says (a rollout stuck past its deadline, fewer ready than wanted).
    Instances in `number` order, so the same one is named each time."""
    considered = [i for i in instances if i.running or i.health in _PROBLEMS]
    if considered:
        worst = min(considered, key=lambda i: HEALTH_SEVERITY[i.health])
        health, reason = worst.health, worst.health_reason
        if reason and len(instances) > 1:
            reason = f"{worst.name}: {reason}"
    elif spec is not None and spec.desired > 0:
        # Wanted but nothing runs: not "stopped", and not healthy either.
        health, reason = Health.UNKNOWN, f"0/{spec.desired} running"
    else:
        health = Health.STOPPED
        codes = {i.exit_code for i in instances}
        reason = ""
        if any(i.oom_killed for i in instances):
            reason = "OOMKilled"
        elif len(codes) == 1 and None not in codes and codes != {0}:
            reason = f"exited ({codes.pop()})"
    if spec is None:
        return health, reason
    failed = next((c for c in spec.conditions if c.type == "ReplicaFailure" and c.status == "True"), None)
    stuck = next((c for c in spec.conditions if c.type == "Progressing" and c.status == "False"), None)
    if HEALTH_SEVERITY[health] > HEALTH_SEVERITY[Health.UNHEALTHY]:
        # The controller cannot make pods (a quota, an admission webhook), or a rollout
        # ran past its progressDeadlineSeconds: no pod may say so.
        if failed is not None:
            return Health.UNHEALTHY, f"cannot create pods: {failed.reason}" + (f" — {failed.message}" if failed.message else "")
        if stuck is not None:
            return Health.UNHEALTHY, f"rollout stuck: {stuck.reason}" + (f" — {stuck.message}" if stuck.message else "")
    running = sum(i.running for i in instances)
    if health in (Health.HEALTHY, Health.NO_CHECK) and 0 < running < spec.desired:
        return Health.NOT_READY, f"{running}/{spec.desired} running"
    return health, reason


@dataclass(frozen=True, slots=True)
class KubeContext:
    """A kubeconfig context, for the `:ctx` picker."""

    name: str
    current: bool

    @property
    def key(self) -> str:
        return f"context/{self.name}"
