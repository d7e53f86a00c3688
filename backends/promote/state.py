"""Where a promotion is remembered: on the promoted Deployment itself, in the cluster.

A promotion changes three worlds (a Deployment runs, a Compose container is stopped, a
local port is forwarded), and only the cluster outlives Ferryman. So the promotion is
written as annotations on the managed Deployment, and anything that can read the
cluster (Ferryman after a restart, on another machine, a plain `kubectl get -o yaml`)
sees which Compose service it replaced and which host ports must keep answering:

    ferryman.io/state: promoted                      (or "demoted": scaled to zero)
    ferryman.io/promoted-from: compose shop/web      (project/service)
    ferryman.io/host-ports: 127.0.0.1:8080->80       (address:host port -> remote port, ", "-separated)
    ferryman.io/forward-to: service/web              (what the forwards target)
    ferryman.io/objects: v1/Service/web,apps/v1/Deployment/web   (what a delete-demote removes)
    ferryman.io/image: app:ferryman-0123456789ab
    ferryman.io/promoted-at: 2024-05-01T10:00:00Z

The annotations are written by server-side apply under a field manager of their own
(`STATE_MANAGER`), not `ferryman`: the manifests are applied as `ferryman`, and an apply
drops every field its manager no longer sends, so writing the state as `ferryman` would
take the Deployment's spec away, and re-applying the manifests would take the state
away. Each manager owns its part, and re-applying the state with fewer annotations
removes exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from backends.adapter import ActionError
from backends.hub import Hub
from backends.kube import MANAGED_BY_LABEL, Applied, ObjectId
from backends.model import ForwardSpec, ForwardState, PortForward, Source, WorkloadKey

MANAGED_BY = "ferryman"
STATE_MANAGER = "ferryman-state"

PREFIX = "ferryman.io/"
STATE = PREFIX + "state"
PROMOTED_FROM = PREFIX + "promoted-from"
HOST_PORTS = PREFIX + "host-ports"
FORWARD_TO = PREFIX + "forward-to"
OBJECTS = PREFIX + "objects"
IMAGE = PREFIX + "image"
PROMOTED_AT = PREFIX + "promoted-at"

PROMOTED = "promoted"
DEMOTED = "demoted"


@runtime_checkable
class ClusterObjects(Protocol):
    """What promotion needs of the Kubernetes adapter beyond `Adapter` (KubeAdapter has it)."""

    @property
    def namespace(self) -> str | None: ...

    async def apply(
        self, objects: Sequence[Mapping[str, Any]], field_manager: str = "ferryman", *, force: bool = True,
    ) -> list[Applied]: ...

    async def get_object(self, ident: ObjectId) -> dict | None: ...

    async def delete_object(self, ident: ObjectId, *, managed_by: str | None = None) -> bool: ...

    async def list_managed(
        self, kind: str = "Deployment", api_version: str = "apps/v1", namespace: str | None = None, *,
        managed_by: str = "ferryman",
    ) -> list[dict]: ...


def cluster_of(hub: Hub) -> ClusterObjects:
    adapter = hub.adapters.get(Source.K3S)
    if not isinstance(adapter, ClusterObjects):
        raise ActionError("Kubernetes is not connected: configure a kubeconfig context first")
    return adapter


# ---- the annotations (pure) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeptPort:
    """A host port that keeps answering after the promotion: a forward listening on
    `address:host_port` to `remote_port` of the forward's target (the Service's port)."""

    address: str
    host_port: int
    remote_port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.host_port}->{self.remote_port}"


def parse_ports(text: str) -> tuple[KeptPort, ...]:
    """"127.0.0.1:8080->80, [::1]:8443->443" -> KeptPorts; malformed items are skipped
    (someone may have edited the annotation by hand: what is readable is still restored)."""
    ports = []
    for item in text.split(","):
        left, arrow, right = item.strip().partition("->")
        address, colon, host_port = left.rpartition(":")
        if not arrow or not colon or not host_port.isdigit() or not right.strip().isdigit():
            continue
        ports.append(KeptPort(address.strip("[]") or "127.0.0.1", int(host_port), int(right)))
    return tuple(ports)


def _format_objects(objects: Sequence[ObjectId]) -> str:
    return ",".join(f"{o.api_version}/{o.kind}/{o.name}" for o in objects)


def _parse_objects(text: str, namespace: str) -> tuple[ObjectId, ...]:
    found = []
    for item in text.split(","):
        parts = item.strip().rsplit("/", 2)  # the apiVersion may hold a "/" itself ("apps/v1")
        if len(parts) == 3 and all(parts):
            api_version, kind, name = parts
            found.append(ObjectId(api_version, kind, None if kind == "Namespace" else namespace, name))
    return tuple(found)


@dataclass(frozen=True)
class Promotion:
    """One Compose service running in the cluster instead, as its Deployment says."""

    compose: WorkloadKey  # Source.COMPOSE, project, service
    deployment: ObjectId
    state: str  # PROMOTED or DEMOTED
    forward_kind: str = "service"  # a ForwardSpec kind
    forward_name: str = ""
    ports: tuple[KeptPort, ...] = ()
    objects: tuple[ObjectId, ...] = ()  # everything the promotion applied
    image: str = ""
    promoted_at: datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def promoted(self) -> bool:
        return self.state == PROMOTED

    @property
    def namespace(self) -> str:
        return self.deployment.namespace or ""

    @property
    def workload(self) -> WorkloadKey:
        """The Deployment as the store keys it."""
        return WorkloadKey(Source.K3S, self.namespace, self.deployment.name)

    def forward_specs(self) -> list[ForwardSpec]:
        return [ForwardSpec(self.namespace, self.forward_kind, self.forward_name or self.deployment.name,
                            p.remote_port, p.host_port, p.address) for p in self.ports]


def compose_origin(workload: WorkloadKey) -> str:
    return f"compose {workload.group}/{workload.name}"


def parse_origin(text: str) -> WorkloadKey | None:
    source, _, rest = text.strip().partition(" ")
    project, slash, service = rest.strip().partition("/")
    if source != "compose" or not slash or not project or not service:
        return None
    return WorkloadKey(Source.COMPOSE, project, service)


def promoted_annotations(
    compose: WorkloadKey, *, forward_kind: str, forward_name: str, ports: Sequence[KeptPort],
    objects: Sequence[ObjectId], image: str, now: datetime | None = None,
) -> dict[str, str]:
    return {
        STATE: PROMOTED,
        PROMOTED_FROM: compose_origin(compose),
        HOST_PORTS: ", ".join(str(p) for p in ports),
        FORWARD_TO: f"{forward_kind}/{forward_name}",
        OBJECTS: _format_objects(objects),
        IMAGE: image,
        PROMOTED_AT: (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def demoted_annotations(promotion: Promotion) -> dict[str, str]:
    """Scaled to zero: where it came from and what it consists of stay (a later delete
    or re-promotion needs them); the ports go, so nothing restores a forward to it."""
    kept = {k: v for k, v in promotion.annotations.items() if k in (PROMOTED_FROM, OBJECTS, IMAGE, PROMOTED_AT)}
    return {**kept, STATE: DEMOTED}


def state_manifest(deployment: ObjectId, annotations: Mapping[str, str]) -> dict[str, Any]:
    """The partial object `STATE_MANAGER` applies: only the annotations it owns."""
    return {
        "apiVersion": deployment.api_version,
        "kind": deployment.kind,
        "metadata": {"name": deployment.name, "namespace": deployment.namespace, "annotations": dict(annotations)},
    }


def parse_promotion(obj: Mapping[str, Any]) -> Promotion | None:
    """The promotion a managed Deployment records; None if it records none (or is not ours)."""
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items() if str(k).startswith(PREFIX)}
    compose = parse_origin(annotations.get(PROMOTED_FROM, ""))
    if compose is None:
        return None
    namespace = str(meta.get("namespace") or "")
    deployment = ObjectId(str(obj.get("apiVersion") or "apps/v1"), str(obj.get("kind") or "Deployment"),
                          namespace, str(meta.get("name") or ""))
    forward_kind, _, forward_name = annotations.get(FORWARD_TO, "").partition("/")
    promoted_at = None
    with contextlib.suppress(ValueError):
        promoted_at = datetime.fromisoformat(annotations.get(PROMOTED_AT, ""))  # "…Z" is read since 3.11
    return Promotion(
        compose=compose,
        deployment=deployment,
        state=annotations.get(STATE, PROMOTED),
        forward_kind=forward_kind or "service",
        forward_name=forward_name or deployment.name,
        ports=parse_ports(annotations.get(HOST_PORTS, "")),
        objects=_parse_objects(annotations.get(OBJECTS, ""), namespace),
        image=annotations.get(IMAGE, ""),
        promoted_at=promoted_at,
        annotations=annotations,
    )


# ---- reading and restoring (I/O) -----------------------------------------------------------------


async def read_promotions(
    hub: Hub, *, namespace: str | None = None, everywhere: bool = False, include_demoted: bool = False,
) -> list[Promotion]:
    """The promotions recorded in the cluster, from the managed Deployments' annotations:
    in `namespace`, else everywhere if asked, else in the namespace Ferryman watches (all
    when it watches all: a namespace-scoped user may not list cluster-wide)."""
    cluster = cluster_of(hub)
    scope = namespace or (None if everywhere else cluster.namespace)
    found = []
    for obj in await cluster.list_managed("Deployment", "apps/v1", scope, managed_by=MANAGED_BY):
        promotion = parse_promotion(obj)
        if promotion is not None and (include_demoted or promotion.promoted):
            found.append(promotion)
    return sorted(found, key=lambda p: (p.compose.group, p.compose.name))


def find_promotion(promotions: Sequence[Promotion], workload: WorkloadKey) -> Promotion | None:
    """The promotion of a Compose service, or of a Deployment, among `promotions`."""
    for promotion in promotions:
        if workload in (promotion.compose, promotion.workload):
            return promotion
    return None


async def record(hub: Hub, deployment: ObjectId, annotations: Mapping[str, str]) -> None:
    """Write the promotion state (see the module docstring for why a manager of its own)."""
    await cluster_of(hub).apply([state_manifest(deployment, annotations)], field_manager=STATE_MANAGER)


@dataclass(frozen=True)
class Restored:
    """What `restore_forwards` did: forwards started, already there, or failed and why."""

    started: tuple[PortForward, ...] = ()
    existing: tuple[str, ...] = ()  # forward keys that already ran as recorded
    failed: tuple[tuple[ForwardSpec, str], ...] = ()


async def restore_forwards(hub: Hub, promotions: Sequence[Promotion] | None = None) -> Restored:
    """At start-up: the forwards of every promoted service, so that its old host ports
    answer again. Never raises for one forward: a port taken meanwhile (someone ran
    `docker compose up` by hand) is reported with the forward manager's reason."""
    if promotions is None:
        promotions = await read_promotions(hub)
    started: list[PortForward] = []
    existing: list[str] = []
    failed: list[tuple[ForwardSpec, str]] = []
    for promotion in promotions:
        if not promotion.promoted:
            continue
        for spec in promotion.forward_specs():
            current = hub.forwards.forwards.get(spec.key)
            if current is not None and current.spec == spec and current.state != ForwardState.STOPPED:
                existing.append(spec.key)
                continue
            try:
                started.append(await start_forward(hub, spec, retry_for=0.0))
            except ActionError as exc:
                failed.append((spec, str(exc)))
    return Restored(tuple(started), tuple(existing), tuple(failed))


async def start_forward(hub: Hub, spec: ForwardSpec, *, retry_for: float = 10.0) -> PortForward:
    """Start (or restart) a forward; while its port is still in use, retry for `retry_for`
    seconds: a stopped container's port is released by docker-proxy a moment after the
    stop returns."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    while True:
        try:
            # A stopped forward with the key is replaced; a running one is refused (it is
            # somebody's: never taken over).
            return await hub.forwards.start(spec)
        except ActionError as exc:
            cause = exc.__cause__
            in_use = isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE
            if not in_use or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.2)


__all__ = [
    "DEMOTED", "FORWARD_TO", "HOST_PORTS", "IMAGE", "MANAGED_BY", "OBJECTS", "PROMOTED", "PROMOTED_AT",
    "PROMOTED_FROM", "STATE", "STATE_MANAGER", "ClusterObjects", "KeptPort", "Promotion", "Restored",
    "cluster_of", "compose_origin", "demoted_annotations", "find_promotion", "parse_origin", "parse_ports",
    "parse_promotion", "promoted_annotations", "read_promotions", "record", "restore_forwards", "start_forward",
    "state_manifest",
]
