"""Promotion and demotion as they happen: Compose → k3s with one key, and back.

`promote(hub, plan)` runs these steps, each reported to `on_progress` as it goes:

1. ``check``: the cluster is connected and its pods are in view; no object of the plan
   exists without the ``app.kubernetes.io/managed-by: ferryman`` label (such an object is
   somebody else's: refuse, change nothing); the host ports to keep are Compose's own or
   free.
2. ``deliver``: the image gets into the cluster (backends/promote/deliver.py) and the
   Deployment is made to name it, with a pull policy that never pulls a local image.
3. ``apply``: server-side apply, field manager ``ferryman``, object by object.
4. ``rollout``: wait until the Deployment's pods of this version are ready
   (progress = ready / replicas), from the store that the k3s watch keeps current.
5. ``stop compose``: only now, with the replacement ready, stop the Compose container(s).
6. ``forward``: listen on each old host port and forward to the new Service, so that
   ``localhost:PORT`` keeps answering. The port is Compose's until its container is
   stopped: this order is forced.
7. ``record``: write the promotion on the Deployment (backends/promote/state.py), so that
   a restarted Ferryman sees it and restores the forwards.

Any failure, and any cancellation (Ctrl-C, a cancelled worker), undoes what this run did,
in reverse: forwards removed, Compose started again if it was stopped, the objects this
run created deleted (objects that existed before, which are ours by their label, are
left, their replicas set back). The undo runs to its end even if cancelled again
meanwhile (`_shielded`). Compose keeps running through every failure before step 5.

`demote(hub, workload)` reverses a promotion: stop the forwards (their ports are needed
by Compose's containers), start Compose, wait for it to run, remove the forwards, then
scale the Deployment to zero or delete Ferryman's objects, and record it.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from backends.adapter import Action, ActionError
from backends.hub import Hub
from backends.kube import MANAGED_BY_LABEL, Applied, ApplyRejected, ObjectId
from backends.model import (
    ConnState,
    ForwardSpec,
    ForwardState,
    Health,
    Instance,
    PortForward,
    RunState,
    Source,
    WorkloadKey,
)
from backends.promote.deliver import Delivered, DeliveryError, DeliverySettings, deliver
from backends.promote.model import PromoteError
from backends.promote.state import (
    MANAGED_BY,
    PREFIX as STATE_PREFIX,
    KeptPort,
    Promotion,
    cluster_of,
    demoted_annotations,
    find_promotion,
    parse_promotion,
    promoted_annotations,
    read_promotions,
    record,
    start_forward,
)
from backends.store import Change

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


class Step(StrEnum):
    # promote
    CHECK = "check"
    DELIVER = "deliver"
    APPLY = "apply"
    ROLLOUT = "rollout"
    STOP_COMPOSE = "stop compose"
    FORWARD = "forward"
    RECORD = "record"
    # demote
    STOP_FORWARDS = "stop forwards"
    START_COMPOSE = "start compose"
    REMOVE_FORWARDS = "remove forwards"
    SCALE_DOWN = "scale to zero"
    DELETE = "delete objects"
    # either, after a failure or a cancellation
    ROLLBACK = "rollback"


PROMOTE_STEPS = (Step.CHECK, Step.DELIVER, Step.APPLY, Step.ROLLOUT, Step.STOP_COMPOSE, Step.FORWARD, Step.RECORD)


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Progress:
    """One report: a step, how it stands, one line of detail, and how far it is (0..1)."""

    step: Step
    state: StepState
    detail: str = ""
    progress: float = 0.0


OnProgress = Callable[[Progress], object]


class CollisionError(PromoteError):
    """An object of the plan exists and is not Ferryman's: nothing was changed."""


class ApplyError(PromoteError):
    """The API server rejected an object; its message is in the text."""


class RolloutTimeout(PromoteError):
    """The new pods did not become ready in time; the promotion was rolled back."""


class KeepPort(NamedTuple):
    """A port Compose published: `host_port` on `address` → the container's `container_port`."""

    host_port: int
    container_port: int
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class PromotionPlan:
    """What to promote: the Compose service, where, the manifests (the translator's,
    in apply order), the host ports to keep answering, and how to deliver the image."""

    workload: WorkloadKey  # Source.COMPOSE, project, service
    namespace: str
    objects: Sequence[Mapping[str, Any]]
    # None: what the service's containers publish when the promotion starts (`kept_ports`).
    host_ports: Sequence[KeepPort | tuple[int, int, str]] | None = None
    delivery: DeliverySettings | None = None  # None: the manifests' image is used as it is
    image: str | None = None  # the local image to deliver; default: what the Compose container runs


@dataclass(frozen=True)
class PromotionResult:
    promotion: Promotion
    delivered: Delivered | None
    applied: tuple[Applied, ...]
    forwards: tuple[PortForward, ...]


def kept_ports(hub: Hub, workload: WorkloadKey) -> list[KeepPort]:
    """The TCP host ports the Compose service's running containers publish now (what a
    plan keeps by default). Read it before the promotion: a stopped container publishes
    nothing."""
    seen: dict[tuple[int, str], KeepPort] = {}
    for inst in hub.store.instances_of(workload.id):
        if not inst.running:
            continue
        for port in inst.ports:
            if port.host_port is None or port.protocol != "tcp":
                continue
            address = _forward_address(port.host_ip or "", allow_remote=hub.forwards.allow_remote_bind)
            seen.setdefault((port.host_port, address), KeepPort(port.host_port, port.container_port, address))
    return sorted(seen.values())


# ---- small helpers (pure) ------------------------------------------------------------------------


def _forward_address(host_ip: str, *, allow_remote: bool) -> str:
    """Where the forward listens for a port Compose published on `host_ip`. Compose
    publishes on every interface by default; a forward is an unauthenticated way into
    the cluster, so it listens on loopback unless remote binds are allowed: localhost
    keeps answering, other machines do not (the progress detail says so)."""
    if host_ip in ("", "0.0.0.0", "::", "localhost"):
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host_ip).is_loopback or allow_remote:
            return host_ip
    except ValueError:
        pass
    return "127.0.0.1"


def _pod_ready(pod: Instance) -> bool:
    """What the endpoints controller (and so a Service) counts as ready."""
    return pod.state == RunState.RUNNING and any(c.type == "Ready" and c.status == "True" for c in pod.conditions)


def _replicas(manifest: Mapping[str, Any]) -> int:
    value = (manifest.get("spec") or {}).get("replicas", 1)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 1


def _containers(manifest: Mapping[str, Any]) -> list[dict]:
    pod = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def _main_image(manifest: Mapping[str, Any]) -> str:
    pod = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or []
    return str(containers[0].get("image") or "") if containers else ""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _managed(obj: Mapping[str, Any]) -> bool:
    return _labels(obj).get(MANAGED_BY_LABEL) == MANAGED_BY


def _port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def with_delivered_image(objects: Sequence[Mapping[str, Any]], source: str, delivered: Delivered) -> list[dict]:
    """The manifests with every container that runs `source` (or already the delivered
    reference) running the delivered reference. The pull policy becomes the delivery's
    unless the container's own is stricter (``Never``): never ``Always`` for an image
    that no registry has."""
    result = []
    for obj in objects:
        obj = copy.deepcopy(dict(obj))
        if obj.get("kind") in WORKLOAD_KINDS:
            for container in _containers(obj):
                if container.get("image") in (source, delivered.reference):
                    container["image"] = delivered.reference
                    if container.get("imagePullPolicy") != "Never":
                        container["imagePullPolicy"] = delivered.pull_policy
        result.append(obj)
    return result


def _prepared(objects: Sequence[Mapping[str, Any]], namespace: str) -> list[dict]:
    """Copies with the namespace and the managed-by label set on every object (and pod
    template): the label is what tells Ferryman's objects from anybody else's, so it
    must not depend on the translator remembering it."""
    prepared = []
    for obj in objects:
        obj = copy.deepcopy(dict(obj))
        meta = obj.setdefault("metadata", {})
        if obj.get("kind") != "Namespace":
            meta["namespace"] = meta.get("namespace") or namespace
        meta.setdefault("labels", {})[MANAGED_BY_LABEL] = MANAGED_BY
        prepared.append(obj)
    return prepared


async def _shielded(work: Awaitable[T]) -> T:
    """Run `work` to its end even if the caller is cancelled meanwhile (cleanup must not
    stop half-way: that is the state it exists to prevent); a cancellation that came
    meanwhile is raised after it."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():  # the work itself was cancelled (the loop is shutting down)
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class _Reporter:
    def __init__(self, on_progress: OnProgress | None) -> None:
        self._on_progress = on_progress
        self.last: dict[Step, Progress] = {}

    def __call__(self, step: Step, state: StepState, detail: str = "", progress: float | None = None) -> None:
        if progress is None:
            progress = 1.0 if state in (StepState.DONE, StepState.SKIPPED) else 0.0
        report = Progress(step, state, detail, max(0.0, min(1.0, progress)))
        self.last[step] = report
        if self._on_progress is not None:
            try:
                self._on_progress(report)
            except Exception:  # noqa: BLE001 - a view's bug must not leave a promotion half-done
                log.exception("progress callback failed")


class _StoreWaiter:
    """Wakes a waiter whenever the store changes: conditions are re-checked on events,
    never on a polling loop."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._event = asyncio.Event()

    async def until(self, condition: Callable[[], T], timeout: float | None) -> T:
        def changed(_: Change) -> None:
            self._event.set()

        unsubscribe = self._hub.store.subscribe(changed)
        try:
            async with asyncio.timeout(timeout):
                while not (value := condition()):
                    self._event.clear()
                    await self._event.wait()
                return value
        finally:
            unsubscribe()


def _wait_store(hub: Hub, condition: Callable[[], T], timeout: float | None) -> Awaitable[T]:
    return _StoreWaiter(hub).until(condition, timeout)


# ---- promote ---------------------------------------------------------------------------------------


@dataclass
class _Undo:
    """What this run changed, so that a failure undoes exactly that."""

    created: list[ObjectId] = field(default_factory=list)
    replicas_before: dict[ObjectId, int] = field(default_factory=dict)  # pre-existing workloads
    stopped: list[Instance] = field(default_factory=list)  # Compose containers this run stopped
    forwards: list[str] = field(default_factory=list)  # forward keys this run started
    state_before: dict[str, str] | None = None  # a pre-existing Deployment's promotion record


class _Promotion:
    def __init__(self, hub: Hub, plan: PromotionPlan, on_progress: OnProgress | None) -> None:
        self.hub = hub
        self.plan = plan
        self.report = _Reporter(on_progress)
        self.undo = _Undo()
        self.objects = _prepared(plan.objects, plan.namespace)
        self.ports = [KeepPort(*p) for p in (
            kept_ports(hub, plan.workload) if plan.host_ports is None else plan.host_ports)]
        self.existing: dict[ObjectId, dict] = {}
        self.delivered: Delivered | None = None
        self.applied: list[Applied] = []
        self.started: list[PortForward] = []
        self.step = Step.CHECK
        workloads = [o for o in self.objects if o.get("kind") in WORKLOAD_KINDS]
        if len(workloads) != 1:
            raise PromoteError(f"a promotion applies exactly one Deployment (or StatefulSet); the manifests have "
                               f"{len(workloads)}")
        self.workload = workloads[0]

    @property
    def workload_id(self) -> ObjectId:
        return ObjectId.of(self.workload)

    @property
    def workload_key(self) -> WorkloadKey:
        ident = self.workload_id
        return WorkloadKey(Source.K3S, ident.namespace or "", ident.name)

    def begin(self, step: Step, detail: str = "") -> None:
        self.step = step
        self.report(step, StepState.RUNNING, detail)

    async def run(self, timeout: float) -> PromotionResult:
        for step in PROMOTE_STEPS:
            self.report(step, StepState.PENDING)
        for step, action in ((Step.CHECK, self.check), (Step.DELIVER, self.deliver), (Step.APPLY, self.apply),
                             (Step.ROLLOUT, lambda: self.rollout(timeout)), (Step.STOP_COMPOSE, self.stop_compose),
                             (Step.FORWARD, self.forward)):
            self.step = step  # a failure is reported against the step it happened in
            await action()
        self.step = Step.RECORD
        promotion = await self.record()
        return PromotionResult(promotion, self.delivered, tuple(self.applied), tuple(self.started))

    # -- 1. check ------------------------------------------------------------------------------

    async def check(self) -> None:
        self.begin(Step.CHECK, "cluster, names, ports")
        hub, plan = self.hub, self.plan
        try:
            cluster = cluster_of(hub)
        except ActionError as exc:
            raise PromoteError(str(exc)) from exc
        status = hub.store.status.get(Source.K3S)
        if status is None or status.state != ConnState.CONNECTED:
            why = (status.message if status is not None else None) or "not connected yet"
            raise PromoteError(f"Kubernetes is not connected ({why}): nothing was changed")
        if cluster.namespace not in (None, plan.namespace):
            raise PromoteError(
                f"Ferryman watches namespace {cluster.namespace}: promoting into {plan.namespace} needs its pods in "
                f"view to follow the rollout — switch to {plan.namespace} (:ns {plan.namespace}) or all namespaces"
            )
        if plan.workload.source != Source.COMPOSE:
            raise PromoteError(f"{plan.workload} is not a Compose service")

        collisions = []
        for obj in list(self.objects):
            ident = ObjectId.of(obj)
            current = await cluster.get_object(ident)
            if current is None:
                continue
            if ident.kind == "Namespace":
                # Namespaces are shared: use an existing one, never take it over.
                self.objects.remove(obj)
                continue
            if not _managed(current):
                collisions.append(f"{ident} already exists and is not managed by Ferryman (no label "
                                  f"{MANAGED_BY_LABEL}={MANAGED_BY})")
                continue
            promotion = parse_promotion(current)
            if promotion is not None and promotion.compose != plan.workload:
                collisions.append(f"{ident} belongs to the promotion of {promotion.compose} (compose), not "
                                  f"{plan.workload}")
                continue
            self.existing[ident] = current
        if collisions:
            raise CollisionError("; ".join(collisions) + ": promotion refused, nothing was changed (rename the "
                                 "service, choose another namespace, or remove or label that object yourself)")

        namespace_id = ObjectId("v1", "Namespace", None, plan.namespace)
        try:
            missing = await cluster.get_object(namespace_id) is None
        except ActionError:
            missing = False  # not allowed to read namespaces: assume it exists (apply will say if not)
        if missing and not any(ObjectId.of(o) == namespace_id for o in self.objects):
            # A namespace per run is a common habit: create it, as ours, and undo it with the rest.
            self.objects.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": plan.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}})

        ours = {p.host_port for inst in hub.store.instances_of(plan.workload.id) if inst.running
                for p in inst.ports if p.host_port is not None}
        for port in self.ports:
            current_fw = hub.forwards.forwards.get(self._spec(port).key)
            if current_fw is not None and current_fw.state != ForwardState.STOPPED:
                if current_fw.spec != self._spec(port):
                    raise PromoteError(f"{port.address}:{port.host_port} is already forwarded to "
                                       f"{current_fw.spec.target}: stop that forward first")
                continue  # a re-promotion: the forward is already there
            if port.host_port not in ours and not await asyncio.to_thread(_port_free, port.address, port.host_port):
                raise PromoteError(f"{port.address}:{port.host_port} is in use by something other than "
                                   f"{plan.workload} (compose): the forward could not take it over")
        names = ", ".join(str(ObjectId.of(o)) for o in self.objects)
        self.report(Step.CHECK, StepState.DONE, f"{len(self.objects)} objects: {names}")

    # -- 2. deliver ----------------------------------------------------------------------------

    async def deliver(self) -> None:
        settings = self.plan.delivery
        if settings is None:
            self.report(Step.DELIVER, StepState.SKIPPED, f"image {_main_image(self.workload)} used as it is")
            return
        source = self.plan.image or next(
            (i.image for i in self.hub.store.instances_of(self.plan.workload.id) if i.image), None
        )
        if not source:
            raise PromoteError(f"no image to deliver: {self.plan.workload} has no container to take it from")
        self.begin(Step.DELIVER, f"{source} by {settings.strategy}")
        try:
            delivered = await deliver(settings, source, name_hint=self.plan.workload.name)
        except DeliveryError as exc:
            raise PromoteError(f"image delivery failed: {exc}") from exc
        self.delivered = delivered
        self.objects = with_delivered_image(self.objects, source, delivered)
        self.workload = next(o for o in self.objects if o.get("kind") in WORKLOAD_KINDS)
        self.report(Step.DELIVER, StepState.DONE, f"{delivered.detail}; pull policy {delivered.pull_policy}")

    # -- 3. apply ------------------------------------------------------------------------------

    async def apply(self) -> None:
        cluster = cluster_of(self.hub)
        total = len(self.objects)
        self.begin(Step.APPLY, f"0/{total}")
        for index, obj in enumerate(self.objects):
            ident = ObjectId.of(obj)
            before = self.existing.get(ident)
            if before is not None and ident.kind in WORKLOAD_KINDS:
                self.undo.replicas_before[ident] = _replicas(before)
            if before is None and ident.kind != "Namespace":
                # Absent at the check, but the delivery may have taken minutes: an apply with
                # force would take over an object somebody made meanwhile. Looked at again.
                current = await cluster.get_object(ident)
                if current is not None and not _managed(current):
                    raise CollisionError(f"{ident} was created meanwhile, and not by Ferryman: promotion refused")
            if before is None:
                # Counted as ours before the request: cancelled while it is under way, the
                # object may exist or not, and the undo deletes it if it does.
                self.undo.created.append(ident)
            try:
                applied = await cluster.apply([obj], field_manager=MANAGED_BY)
            except ApplyRejected as exc:
                if exc.by_server:
                    raise ApplyError(f"the API server rejected {ident}: {exc.reason}") from exc
                raise ApplyError(f"applying {ident} failed: {exc.reason}") from exc
            except ActionError as exc:
                raise ApplyError(str(exc)) from exc
            for item in applied:
                if not item.created and item.id in self.undo.created:
                    # Someone else's apply (labelled as ours) got there first: updated, not created.
                    self.undo.created.remove(item.id)
                self.applied.append(item)
            self.report(Step.APPLY, StepState.RUNNING, f"{index + 1}/{total}: {ident}", (index + 1) / total)
        created = sum(1 for a in self.applied if a.created)
        self.report(Step.APPLY, StepState.DONE, f"{created} created, {len(self.applied) - created} updated "
                    f"(server-side apply, field manager {MANAGED_BY})")

    # -- 4. rollout ----------------------------------------------------------------------------

    async def rollout(self, timeout: float) -> None:
        key = self.workload_key
        replicas = _replicas(self.workload)
        if replicas < 1:
            raise PromoteError(f"{self.workload_id} has 0 replicas: nothing would answer in Compose's place")
        image = _main_image(self.workload)
        services = [ObjectId.of(o) for o in self.objects if o.get("kind") == "Service"]
        self.begin(Step.ROLLOUT, f"0/{replicas} ready")
        store = self.hub.store
        last = ""

        def state() -> tuple[int, str]:
            # Pods of this version only: a previous promotion's pods (another image tag)
            # may still be ready during a rolling update and prove nothing.
            pods = [p for p in store.instances_of(key.id)
                    if p.state != RunState.REMOVING and (not image or p.image == image)]
            ready = sum(1 for p in pods if _pod_ready(p))
            detail = f"{min(ready, replicas)}/{replicas} ready"
            trouble = [f"{p.name}: {p.health_reason or p.status_text}" for p in pods
                       if not _pod_ready(p) and p.health not in (Health.STARTING, Health.HEALTHY)]
            if not pods:
                detail += " (no pod yet)"
            elif trouble:
                detail += "; " + "; ".join(trouble[:3])
            missing = [s for s in services if f"k3s/Service/{s.namespace}/{s.name}" not in store.objects]
            if ready >= replicas and missing:
                detail += "; waiting for " + ", ".join(str(s) for s in missing)
            return (ready if not missing else min(ready, replicas - 1)), detail

        def done() -> bool:
            nonlocal last
            ready, detail = state()
            if detail != last:
                last = detail
                self.report(Step.ROLLOUT, StepState.RUNNING, detail, ready / replicas)
            return ready >= replicas

        try:
            await _wait_store(self.hub, done, timeout)
        except TimeoutError:
            raise RolloutTimeout(f"{self.workload_id} was not ready within {timeout:g} s ({last})") from None
        self.report(Step.ROLLOUT, StepState.DONE, f"{replicas}/{replicas} ready")

    # -- 5. stop compose -----------------------------------------------------------------------

    async def stop_compose(self) -> None:
        running = [i for i in self.hub.store.instances_of(self.plan.workload.id) if i.running]
        if not running:
            self.report(Step.STOP_COMPOSE, StepState.SKIPPED, f"no running container of {self.plan.workload}")
            return
        names = ", ".join(i.name for i in running)
        self.begin(Step.STOP_COMPOSE, names)
        # Recorded before the stop: interrupted half-way, every one of them is started again
        # (starting a running container is a no-op).
        self.undo.stopped.extend(running)
        try:
            # A stop runs in a thread that a cancellation would not stop: it is waited for,
            # so that the undo's start does not come before it (and get undone by it).
            await _shielded(self.hub.perform(Action.STOP, running))
        except ActionError as exc:
            raise PromoteError(f"stopping the Compose container failed: {exc}") from exc
        self.report(Step.STOP_COMPOSE, StepState.DONE, f"stopped {names}")

    # -- 6. forward ----------------------------------------------------------------------------

    def _forward_target(self, port: KeepPort) -> tuple[str, str, int]:
        """(kind, name, remote port) that reaches `port.container_port` in the cluster: the
        Service's port whose targetPort is it (or which is it), else the workload's pods."""
        named = {str(p.get("name")): p.get("containerPort") for c in _containers(self.workload)
                 for p in c.get("ports") or [] if p.get("name")}
        for obj in self.objects:
            if obj.get("kind") != "Service":
                continue
            for sp in (obj.get("spec") or {}).get("ports") or []:
                target = sp.get("targetPort", sp.get("port"))
                target = named.get(str(target), target)  # a named targetPort is the container port of that name
                if str(target) == str(port.container_port):
                    return "service", str(obj["metadata"]["name"]), int(sp["port"])
            for sp in (obj.get("spec") or {}).get("ports") or []:
                if sp.get("port") == port.container_port:
                    return "service", str(obj["metadata"]["name"]), int(sp["port"])
        return self.workload["kind"].lower(), self.workload_id.name, port.container_port

    def _spec(self, port: KeepPort) -> ForwardSpec:
        kind, name, remote = self._forward_target(port)
        return ForwardSpec(self.plan.namespace, kind, name, remote, port.host_port, port.address)

    async def forward(self) -> None:
        if not self.ports:
            self.report(Step.FORWARD, StepState.SKIPPED, "no host port to keep")
            return
        self.begin(Step.FORWARD, ", ".join(f"{p.address}:{p.host_port}" for p in self.ports))
        forwards = self.hub.forwards
        for index, port in enumerate(self.ports):
            spec = self._spec(port)
            current = forwards.forwards.get(spec.key)
            if current is not None and current.spec == spec and current.state != ForwardState.STOPPED:
                self.started.append(current)  # a re-promotion's: it stays, and is not ours to undo
                continue
            self.undo.forwards.append(spec.key)  # before: a cancelled start may have listened already
            try:
                self.started.append(await start_forward(self.hub, spec))
            except ActionError as exc:
                raise PromoteError(f"forwarding {port.address}:{port.host_port} failed: {exc}") from exc
            self.report(Step.FORWARD, StepState.RUNNING, f"{spec.url} → {spec.target}", (index + 1) / len(self.ports))
        keys = [self._spec(p).key for p in self.ports]
        try:
            # The pods are ready and the Service is in the store: this takes a moment at most.
            await _wait_store(self.hub, lambda: all(
                (fw := forwards.forwards.get(k)) is not None and fw.state == ForwardState.ACTIVE for k in keys
            ), 5.0)
        except TimeoutError:
            states = ", ".join(f"{k}: {forwards.forwards[k].state}" for k in keys if k in forwards.forwards)
            log.warning("promotion forwards not active yet: %s", states)
        self.started = [forwards.forwards.get(s.spec.key, s) for s in self.started]
        self.report(Step.FORWARD, StepState.DONE, ", ".join(f"{fw.spec.url} → {fw.spec.target}" for fw in self.started))

    # -- 7. record -----------------------------------------------------------------------------

    async def record(self) -> Promotion:
        self.begin(Step.RECORD, f"annotations on {self.workload_id}")
        specs = [self._spec(p) for p in self.ports]
        kind, name = (specs[0].kind, specs[0].name) if specs else (self.workload["kind"].lower(), self.workload_id.name)
        annotations = promoted_annotations(
            self.plan.workload, forward_kind=kind, forward_name=name,
            ports=[KeptPort(s.address, s.local_port, s.remote_port) for s in specs],
            objects=[ObjectId.of(o) for o in self.objects if o.get("kind") != "Namespace"],
            image=_main_image(self.workload),
        )
        before = self.existing.get(self.workload_id)
        if before is not None:
            # A re-promotion: undone, the Deployment must say again what it said before.
            self.undo.state_before = {k: v for k, v in ((before.get("metadata") or {}).get("annotations") or {}).items()
                                      if str(k).startswith(STATE_PREFIX)}
        try:
            await record(self.hub, self.workload_id, annotations)
        except ActionError as exc:
            raise PromoteError(f"recording the promotion on {self.workload_id} failed: {exc}") from exc
        promotion = parse_promotion({**self.workload, "metadata": {
            **self.workload["metadata"], "annotations": annotations}})
        assert promotion is not None
        self.report(Step.RECORD, StepState.DONE, f"{self.plan.workload} → {self.workload_id}")
        return promotion

    # -- undo ----------------------------------------------------------------------------------

    async def rollback(self) -> tuple[str, list[str]]:
        """Undo this run, newest first; returns what was undone and what could not be
        (each in words); ("", []) when there was nothing to undo."""
        problems: list[str] = []
        undo = self.undo
        if not (undo.forwards or undo.stopped or undo.created or undo.replicas_before or undo.state_before):
            return "", problems
        self.report(Step.ROLLBACK, StepState.RUNNING, "undoing what this promotion did")
        for key in reversed(undo.forwards):
            if key not in self.hub.forwards.forwards:
                continue  # its start failed or never happened
            try:
                await self.hub.forwards.remove(key)
            except ActionError as exc:
                problems.append(f"forward {key}: {exc}")
        if undo.stopped:
            problems += await _start_compose(self.hub, undo.stopped, timeout=30.0)
        cluster = cluster_of(self.hub)
        deleted = []
        for ident in reversed(undo.created):
            try:
                if await cluster.delete_object(ident, managed_by=MANAGED_BY):
                    deleted.append(str(ident))
            except ActionError as exc:
                problems.append(f"delete {ident}: {exc}")
        if undo.state_before is not None and self.workload_id not in undo.created:
            try:
                await record(self.hub, self.workload_id, undo.state_before)
            except ActionError as exc:
                problems.append(f"restore the state recorded on {self.workload_id}: {exc}")
        for ident, replicas in undo.replicas_before.items():
            try:
                await self.hub.scale(WorkloadKey(Source.K3S, ident.namespace or "", ident.name), replicas)
            except ActionError as exc:
                problems.append(f"scale {ident} back to {replicas}: {exc}")
        done = [f"deleted {', '.join(deleted)}" if deleted else "",
                f"scaled {', '.join(str(i) for i in undo.replicas_before)} back" if undo.replicas_before else "",
                "Compose started again" if undo.stopped else "",
                f"removed {len(undo.forwards)} forward(s)" if undo.forwards else ""]
        summary = ", ".join(d for d in done if d)
        self.report(Step.ROLLBACK, StepState.FAILED if problems else StepState.DONE,
                    "; ".join(problems) if problems else summary)
        return summary, problems


async def _start_compose(hub: Hub, instances: Sequence[Instance], *, timeout: float) -> list[str]:
    """Start Compose containers and wait until the store sees them running; problems in words."""
    try:
        await _shielded(hub.perform(Action.START, instances))  # see stop_compose
    except ActionError as exc:
        return [f"starting Compose: {exc}"]
    ids = {i.key for i in instances}

    def running() -> bool:
        return all((inst := hub.store.instances.get(k)) is not None and inst.running for k in ids)

    try:
        await _wait_store(hub, running, timeout)
    except TimeoutError:
        return [f"Compose container(s) {', '.join(i.name for i in instances)} not running after {timeout:g} s"]
    return []


async def promote(
    hub: Hub, plan: PromotionPlan, *, timeout: float = 180.0, on_progress: OnProgress | None = None,
) -> PromotionResult:
    """Promote `plan.workload` from Compose to the cluster (see the module docstring).

    Raises PromoteError (CollisionError, ApplyError, RolloutTimeout, …) with the reason,
    after undoing what was done; a cancellation is re-raised after the same undo. If the
    undo itself fails, the error says what is left over."""
    run = _Promotion(hub, plan, on_progress)
    try:
        return await run.run(timeout)
    except BaseException as exc:
        run.report(run.step, StepState.FAILED, "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc))
        summary, problems = await _shielded(run.rollback())
        if not isinstance(exc, PromoteError) or not (summary or problems):
            raise
        # The same kind of error, saying what became of the half-done work.
        if problems:
            outcome = f"the rollback did not finish: {'; '.join(problems)}"
        else:
            outcome = f"rolled back ({summary})" + ("" if run.undo.stopped else ", Compose is still running")
        raise type(exc)(f"{exc}; {outcome}") from exc.__cause__ or exc


# ---- demote ----------------------------------------------------------------------------------------


DEMOTE_MODES = ("scale-to-zero", "delete")


async def demote(
    hub: Hub, workload: WorkloadKey | Promotion, *, mode: str = "scale-to-zero", timeout: float = 60.0,
    on_progress: OnProgress | None = None,
) -> Promotion:
    """Bring a promoted service back to Compose: stop its forwards (Compose's containers
    need those ports), start its Compose containers and wait until they run, remove the
    forwards, then scale the Deployment to zero (`mode="scale-to-zero"`, the state says
    "demoted") or delete every object the promotion applied that is still labelled as
    Ferryman's (`mode="delete"`). `workload` is the Compose service, its Deployment, or
    the Promotion. Until Compose runs, a failure or cancellation puts the forwards back;
    after that, the cluster side is finished even if cancelled."""
    if mode not in DEMOTE_MODES:
        raise PromoteError(f"unknown demote mode {mode!r}: use {' or '.join(DEMOTE_MODES)}")
    report = _Reporter(on_progress)
    steps = (Step.STOP_FORWARDS, Step.START_COMPOSE, Step.REMOVE_FORWARDS,
             Step.SCALE_DOWN if mode == "scale-to-zero" else Step.DELETE, Step.RECORD)
    for step in steps:
        report(step, StepState.PENDING)
    if isinstance(workload, Promotion):
        promotion = workload
    else:
        try:
            found = find_promotion(await read_promotions(hub, include_demoted=mode == "delete"), workload)
        except ActionError as exc:
            raise PromoteError(f"cannot read the promotions: {exc}") from exc
        if found is None:
            raise PromoteError(f"{workload} is not promoted (no Deployment labelled {MANAGED_BY_LABEL}={MANAGED_BY} "
                               f"records it)")
        promotion = found

    forwards = hub.forwards
    specs = promotion.forward_specs()
    stopped: list[ForwardSpec] = []
    started: list[Instance] = []
    step = Step.STOP_FORWARDS

    async def undo() -> None:
        report(Step.ROLLBACK, StepState.RUNNING, "putting the forwards back")
        problems = []
        if started:
            try:
                await hub.perform(Action.STOP, started)
            except ActionError as exc:
                problems.append(f"stopping Compose again: {exc}")
        for spec in stopped:
            try:
                await start_forward(hub, spec)
            except ActionError as exc:
                problems.append(f"forward {spec.key}: {exc}")
        report(Step.ROLLBACK, StepState.FAILED if problems else StepState.DONE,
               "; ".join(problems) or "the forwards are back, Compose is stopped")

    try:
        report(step, StepState.RUNNING)
        for spec in specs:
            current = forwards.forwards.get(spec.key)
            if current is not None and current.spec == spec and current.state != ForwardState.STOPPED:
                stopped.append(spec)  # before: cancelled mid-stop, it is still put back
                await forwards.stop(spec.key)
        report(step, StepState.DONE, ", ".join(s.key for s in stopped) or "none was running")

        step = Step.START_COMPOSE
        instances = hub.store.instances_of(promotion.compose.id)
        if not instances:
            raise PromoteError(f"{promotion.compose} has no Compose container to start (removed?): run "
                               f"`docker compose up -d {promotion.compose.name}` in its project")
        report(step, StepState.RUNNING, ", ".join(i.name for i in instances))
        waiting = [i for i in instances if not i.running]
        started.extend(waiting)
        if waiting:
            problems = await _start_compose(hub, waiting, timeout=timeout)
            if problems:
                raise PromoteError("; ".join(problems))
        report(step, StepState.DONE, ", ".join(i.name for i in instances) + " running")
    except BaseException as exc:
        report(step, StepState.FAILED, "cancelled" if isinstance(exc, asyncio.CancelledError) else str(exc))
        await _shielded(undo())
        raise

    # Compose answers again: what is left is tidying up, finished even if cancelled.
    return await _shielded(_finish_demote(hub, promotion, mode, specs, report))


async def _finish_demote(
    hub: Hub, promotion: Promotion, mode: str, specs: Sequence[ForwardSpec], report: _Reporter,
) -> Promotion:
    report(Step.REMOVE_FORWARDS, StepState.RUNNING)
    for spec in specs:
        if spec.key in hub.forwards.forwards and hub.forwards.forwards[spec.key].spec == spec:
            await hub.forwards.remove(spec.key)
    report(Step.REMOVE_FORWARDS, StepState.DONE, ", ".join(s.key for s in specs) or "none")

    cluster = cluster_of(hub)
    if mode == "scale-to-zero":
        report(Step.SCALE_DOWN, StepState.RUNNING, str(promotion.deployment))
        try:
            await hub.scale(promotion.workload, 0)
        except ActionError as exc:
            report(Step.SCALE_DOWN, StepState.FAILED, str(exc))
            raise PromoteError(f"Compose runs again, but scaling {promotion.deployment} to 0 failed: {exc}") from exc
        report(Step.SCALE_DOWN, StepState.DONE, f"{promotion.deployment} scaled to 0")
        report(Step.RECORD, StepState.RUNNING)
        try:
            await record(hub, promotion.deployment, demoted_annotations(promotion))
        except ActionError as exc:
            report(Step.RECORD, StepState.FAILED, str(exc))
            raise PromoteError(f"Compose runs again, but recording the demotion on {promotion.deployment} "
                               f"failed: {exc}") from exc
        report(Step.RECORD, StepState.DONE, "state: demoted")
        return Promotion(promotion.compose, promotion.deployment, "demoted", promotion.forward_kind,
                         promotion.forward_name, (), promotion.objects, promotion.image, promotion.promoted_at,
                         demoted_annotations(promotion))

    report(Step.DELETE, StepState.RUNNING)
    idents = list(promotion.objects) or [promotion.deployment]
    if promotion.deployment not in idents:
        idents.append(promotion.deployment)
    deleted, refused = [], []
    # The Deployment last: it carries the record of what to delete, until the rest is gone.
    for ident in sorted(idents, key=lambda i: i == promotion.deployment):
        try:
            if await cluster.delete_object(ident, managed_by=MANAGED_BY):
                deleted.append(str(ident))
        except ActionError as exc:
            refused.append(str(exc))
    detail = f"deleted {', '.join(deleted) or 'nothing'}" + (f"; left alone: {'; '.join(refused)}" if refused else "")
    report(Step.DELETE, StepState.DONE, detail)
    report(Step.RECORD, StepState.SKIPPED, "the objects are gone, and the record with them")
    return Promotion(promotion.compose, promotion.deployment, "deleted", promotion.forward_kind,
                     promotion.forward_name, (), promotion.objects, promotion.image, promotion.promoted_at, {})


__all__ = [
    "DEMOTE_MODES", "PROMOTE_STEPS", "ApplyError", "CollisionError", "KeepPort", "OnProgress", "Progress",
    "PromotionPlan", "PromotionResult", "RolloutTimeout", "Step", "StepState", "demote", "kept_ports", "promote",
    "with_delivered_image",
]
