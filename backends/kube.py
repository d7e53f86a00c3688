"""The k3s adapter: pods, Deployments and StatefulSets of one kubeconfig context, live
from Kubernetes watches. All cluster I/O goes through kr8s (async); the kubeconfig is
read in a thread.

Connecting
----------
The kubeconfig (``--kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``) is read
first, so that a missing file or an unknown context gets its own message rather than
kr8s's "Unable to find valid credentials". Then the kr8s API is built for the chosen
context and asked for its version. `SourceStatus` has no field for the context, so
`endpoint` carries both once known: ``"k3d-dev @ https://0.0.0.0:6443"``; before that it
describes what will be read (``"~/.kube/config"``, ``"k3d-dev in ~/.kube/config"``).

Sessions, and why no row is duplicated or lost
----------------------------------------------
A session is one connection watching one namespace scope (one namespace, or all). The
adapter keeps a *mirror* of everything it has told the store during the session, per
watched kind, and every event it emits is a change of that mirror:

1. Each kind LISTs (its objects and the list's resourceVersion), then WATCHes from exactly
   that resourceVersion, so nothing that changes between the list and the watch is missed.
2. When every kind has listed (or been refused), the whole mirror goes out as one
   `Snapshot`. The store replaces all it held for k3s with it: rows of an earlier
   session, context or namespace go, and nothing is doubled.
3. Watch events then update the mirror by identity (pod uid; namespace/name for
   workloads) and go out only when they change what the mirror holds. A replayed ADDED is
   an update, a DELETED of something unknown is nothing.
4. A watch that ends — the server cut it, its timeoutSeconds ran out, a read broke — is
   resumed from the last resourceVersion seen (events and bookmarks), so the gap is
   replayed by the server.
5. A 410 Gone (ERROR event or HTTP 410: that history is expired) relists that kind only
   and diffs the fresh list against the mirror's part for the kind: `InstanceGone` /
   `SpecGone` for what vanished, `InstanceChanged` / `SpecChanged` for what is new or
   different. (A `Snapshot` replaces every k3s row at once, so it would have to carry the
   whole mirror; the diff costs the store only what changed.)
6. Anything else that breaks the connection ends the session: UNREACHABLE with the
   reason, back-off, reconnect, a new session, a new `Snapshot`. A namespace or context
   switch (`set_namespace`, `set_context`) starts a new session the same way.

What changes with time alone is mapped again by a timer, as no event would say so: a pod
not ready (and without a problem of its own) reads "starting" for `STARTUP_GRACE`, then
"not ready".

kr8s's own ``watch()`` is not used: given a stale ``since`` it re-watches after every 410
forever, with no back-off and no relist, and the caller never hears of it. Lists and
watches are raw ``call_api`` requests instead, each with a timeout.

Permissions: a 403 (or 404) on one kind does not end the session. That kind's rows go, the
status says what cannot be seen, the others keep going, and the kind is tried again every
`denied_retry` seconds.

One kr8s Api per user of it: kr8s answers a 401/403 by re-authenticating and replacing the
Api's HTTP client, which breaks every other request in flight on that Api, and two such
re-authentications at once can leave the Api with a client that has no server URL at all
(every later request fails with "Request URL is missing an 'http://' or 'https://'
protocol"). So each watched kind has its own Api (``kr8s.asyncio.Api(bypass_factory=True)``,
the way kr8s documents for separate clients), and actions, on one more Api, run one
request at a time.

Port-forwards: `open_port(namespace, pod, port)` is one pod port over the API server's
portforward websocket (``GET pods/NAME/portforward?ports=P``, upgraded), on Apis of their
own (one per 80 open streams: each holds one of its client's pooled connections). Only the
stream is here: which pod, and following replaced pods, is backends/forwards.py's (kr8s's
own PortForward picks a pod once and dies with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import httpx_ws
import kr8s
import kr8s.asyncio
import wsproto.events
import yaml

from backends.adapter import Action, ActionError, Adapter, ObjectRef, backoff_delays
from backends.describe import describe_object
from backends.forwards import ApiUnreachable, PodUnavailable, PortForbidden, PortStreamError, RemotePortError
from backends.logs import LogEnded, LogLine, LogOptions, LogTarget
from backends.logtext import LineAssembler, parse_line
from backends.model import (
    HEALTH_SEVERITY,
    PROBE_OUTPUT_CHARS,
    AdapterEvent,
    ClusterEvent,
    Condition,
    ConnState,
    ContainerStatus,
    Health,
    Instance,
    InstanceChanged,
    InstanceGone,
    KubeObject,
    KubeService,
    Namespace,
    ObjectChanged,
    ObjectGone,
    Port,
    ServicePort,
    RunState,
    Snapshot,
    Source,
    SourceStatus,
    SpecChanged,
    SpecGone,
    WorkloadKey,
    WorkloadSpec,
)

log = logging.getLogger(__name__)

DEFAULT_KUBECONFIG = "~/.kube/config"

# A pod not (yet) ready is "starting" for this long after it started, then "not ready".
STARTUP_GRACE = timedelta(minutes=5)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

_LIST_PAGE = 500  # what kubectl asks for
# The server ends each watch after a random 5-10 minutes (as client-go asks), so that a
# connection that died silently is noticed; the client's read timeout is a little longer.
_WATCH_SECONDS = (300, 600)
# A watch that lasted this long was not a failure in a loop, even if nothing arrived.
_WATCH_PROGRESS_SECONDS = 1.0
_SHELL_SCRIPT = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"


# ---- the kinds watched ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchedKind:
    plural: str
    version: str  # as kr8s's call_api wants it: "v1" (core) or "apps/v1"
    kind: str
    namespaced: bool = True


PODS = WatchedKind("pods", "v1", "Pod")
DEPLOYMENTS = WatchedKind("deployments", "apps/v1", "Deployment")
STATEFULSETS = WatchedKind("statefulsets", "apps/v1", "StatefulSet")
SERVICES = WatchedKind("services", "v1", "Service")
EVENTS = WatchedKind("events", "v1", "Event")
# Cluster-wide even when one namespace is watched: it tells when that namespace goes.
NAMESPACES = WatchedKind("namespaces", "v1", "Namespace", namespaced=False)
WATCHED = (PODS, DEPLOYMENTS, STATEFULSETS, SERVICES, EVENTS, NAMESPACES)
# Listing namespaces needs a cluster-wide grant that namespace-scoped users rarely have;
# not seeing them costs only the `:ns` list, so it is not reported as a problem.
_QUIET_DENIALS = frozenset({NAMESPACES})
_WORKLOAD_KINDS = {k.kind: k for k in (DEPLOYMENTS, STATEFULSETS)}


# ---- pod -> Instance (pure) ---------------------------------------------------------------------


def parse_kube_time(value: object) -> datetime | None:
    """RFC 3339 times of the API ("2024-05-01T10:00:00Z", MicroTime too) as aware UTC."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pod_owner(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the workload a pod belongs to, as a user names it: a ReplicaSet made
    by a Deployment is reported as that Deployment (the RS name minus "-<pod-template-hash>").
    None for a bare pod."""
    meta = pod.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref or not ref.get("name"):
        return None
    kind, name = str(ref.get("kind") or ""), str(ref["name"])
    if kind == "ReplicaSet":
        pod_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if pod_hash and name.endswith(f"-{pod_hash}") and len(name) > len(pod_hash) + 1:
            return "Deployment", name[: -len(pod_hash) - 1]
    return kind, name


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or [])


def _states(cs: Mapping[str, Any]) -> tuple[dict, dict | None, dict | None, dict | None]:
    """(state, running, waiting, terminated) of one container status."""
    state = cs.get("state") or {}
    return state, state.get("running"), state.get("waiting"), state.get("terminated")


def _terminated_reason(terminated: Mapping[str, Any]) -> str:
    if terminated.get("reason"):
        return str(terminated["reason"])
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode', 0)}"


def kubectl_status(pod: Mapping[str, Any]) -> str:
    """The STATUS column of `kubectl get pods`, following kubectl's printPod: the phase (or
    the pod's reason), overridden by init-container trouble ("Init:1/2",
    "Init:CrashLoopBackOff"), then by the first container that is waiting or terminated
    ("CrashLoopBackOff", "ImagePullBackOff", "OOMKilled", "Completed", "Error",
    "ExitCode:3"), and "Terminating" once deletion started."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or phase or "Unknown")
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        reason = "SchedulingGated"

    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or []):
        _, _, waiting, terminated = _states(cs)
        if terminated is not None and not terminated.get("exitCode"):
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            continue
        if terminated is not None:
            reason = f"Init:{_terminated_reason(terminated)}"
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        has_running = False
        # Backwards, so that the first container with something to say has the last word.
        for cs in reversed(status.get("containerStatuses") or []):
            _, running, waiting, terminated = _states(cs)
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif cs.get("ready") and running is not None:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason


def _restarting(pod: Mapping[str, Any]) -> bool:
    """A container is in CrashLoopBackOff, or a running pod's container is down and will
    be started again (waiting after restarts, or terminated under a restart policy)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    policy = spec.get("restartPolicy") or "Always"
    statuses = status.get("containerStatuses") or []
    for cs in [*statuses, *(status.get("initContainerStatuses") or [])]:
        _, _, waiting, _ = _states(cs)
        if waiting is not None and waiting.get("reason") == "CrashLoopBackOff":
            return True
    if status.get("phase") != "Running":
        return False
    for cs in statuses:
        _, _, waiting, terminated = _states(cs)
        if waiting is not None and int(cs.get("restartCount") or 0) > 0:
            return True
        if terminated is not None and (
            policy == "Always" or (policy == "OnFailure" and terminated.get("exitCode"))
        ):
            return True
    return False


def pod_run_state(pod: Mapping[str, Any]) -> RunState:
    status = pod.get("status") or {}
    phase = status.get("phase")
    if (pod.get("metadata") or {}).get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        return RunState.REMOVING
    if phase in ("Succeeded", "Failed"):
        return RunState.EXITED
    if _restarting(pod):
        return RunState.RESTARTING
    if phase == "Running":
        return RunState.RUNNING
    if phase == "Pending":
        return RunState.CREATED
    return RunState.UNKNOWN


def _pod_started(pod: Mapping[str, Any]) -> datetime | None:
    status = pod.get("status") or {}
    return parse_kube_time(status.get("startTime")) or parse_kube_time(
        (pod.get("metadata") or {}).get("creationTimestamp")
    )


def _pod_restarts(status: Mapping[str, Any]) -> int:
    statuses = [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
    return sum(int(cs.get("restartCount") or 0) for cs in statuses)


def pod_health(pod: Mapping[str, Any], state: RunState, now: datetime) -> tuple[Health, str]:
    """A pod's health and why, in one line, from everything its status says.

    A problem of any container (init containers first: they hold the rest back) wins, whatever
    the pod's phase: a pod in CrashLoopBackOff is reported "Running" (or "Pending", for an init
    container), one that cannot pull its image "Pending", and neither is merely "not running".
    Without one, Ready → healthy; not ready → starting while young and never restarted
    (`STARTUP_GRACE`), not ready after. A pod that is over (Succeeded, Failed, evicted) or going
    is stopped: such a pod of a Deployment lingers until it is garbage-collected, and must not
    hold its workload's health down once a replacement runs."""
    status = pod.get("status") or {}
    if state == RunState.UNKNOWN:
        return Health.UNKNOWN, _with_message(str(status.get("reason") or "pod phase Unknown"), status.get("message"))
    if state == RunState.REMOVING:
        return Health.STOPPED, "Terminating"
    if state == RunState.EXITED:
        return Health.STOPPED, _ended_reason(pod)
    problem = _pod_problem(pod)
    if problem is not None:
        return problem
    if _condition_true(status, "Ready"):
        return Health.HEALTHY, _restart_note(status)
    reason = _not_ready_reason(pod, state)
    started = _pod_started(pod)
    if _pod_restarts(status) == 0 and (started is None or now - started < STARTUP_GRACE):
        return Health.STARTING, reason
    return Health.NOT_READY, reason


def starting_until(pod: Mapping[str, Any]) -> datetime | None:
    """When a pod that is "starting" now turns "not ready" if nothing else happens."""
    started = _pod_started(pod)
    return started + STARTUP_GRACE if started is not None else None


# Waiting reasons of a container that cannot start, as the kubelet names them (image pulls,
# container creation, hooks, sandboxes). Any other "Err…" or "…Error" reason counts too, so
# that one a newer kubelet adds is not taken for a container on its way up.
_WAITING_FAILURES = frozenset({
    "ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName", "ImageInspectError",
    "RegistryUnavailable", "SignatureValidationFailed", "CreateContainerConfigError", "CreateContainerError",
    "RunContainerError", "PreStartHookError", "PostStartHookError", "CreatePodSandboxError", "ContainerCannotRun",
})
# What a health reason may hold of a message (a termination message can be 4 KiB of anything).
_REASON_CHARS = 300
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(text: object, limit: int = _REASON_CHARS) -> str:
    """A message from the cluster (or written by the container itself, as a termination
    message is) made fit for one line of the screen: control characters and runs of
    whitespace become one space, cut to `limit`."""
    line = " ".join(_UNPRINTABLE.sub(" ", str(text or "")).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _with_message(reason: str, message: object) -> str:
    message = _one_line(message)
    return f"{reason}: {message}" if message else reason


def _exit_text(terminated: Mapping[str, Any]) -> str:
    """How a container's run ended: "OOMKilled (exit 137)", "Error (exit 1)", "Completed"."""
    code = terminated.get("exitCode")
    reason = str(terminated.get("reason") or "")
    if not reason and terminated.get("signal"):
        reason = f"signal {terminated['signal']}"
    if not isinstance(code, int):
        return reason or "terminated"
    if code == 0 and reason:
        return reason
    return f"{reason} (exit {code})" if reason else f"exit {code}"


def _failed(terminated: Mapping[str, Any]) -> bool:
    return terminated.get("reason") == "OOMKilled" or terminated.get("exitCode") not in (0, None)


def _container_problem(cs: Mapping[str, Any]) -> tuple[Health, str] | None:
    """What keeps one container from running: crash-looping, or unable to start, or its run
    ended in failure (it will be restarted, or its pod runs on without it)."""
    _, _, waiting, terminated = _states(cs)
    if waiting is not None:
        reason = str(waiting.get("reason") or "")
        if reason == "CrashLoopBackOff":
            # The back-off says only that it restarts; why it died is in its last run.
            text = _with_message(reason, waiting.get("message"))
            last = (cs.get("lastState") or {}).get("terminated")
            return Health.CRASH_LOOPING, f"{text} — last run: {_exit_text(last)}" if last else text
        if reason in _WAITING_FAILURES or reason.startswith("Err") or reason.endswith("Error"):
            return Health.UNHEALTHY, _with_message(reason, waiting.get("message"))
    if terminated is not None and _failed(terminated):
        return Health.UNHEALTHY, _with_message(_exit_text(terminated), terminated.get("message"))
    return None


def _pod_problem(pod: Mapping[str, Any]) -> tuple[Health, str] | None:
    """The worst problem of a pod that is not over: it cannot be scheduled, or one of its
    containers has one (the first of the worst, init containers first). The container is
    named when the pod has several, or when it is an init container."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == ("PodScheduled", "False", "Unschedulable"):
            return Health.UNHEALTHY, _with_message("Unschedulable", cond.get("message"))
    spec = pod.get("spec") or {}
    several = len(spec.get("containers") or []) > 1
    found: list[tuple[Health, str]] = []
    for cs in status.get("initContainerStatuses") or []:
        if (problem := _container_problem(cs)) is not None:
            found.append((problem[0], f"init container {cs.get('name')}: {problem[1]}"))
    for cs in status.get("containerStatuses") or []:
        if (problem := _container_problem(cs)) is not None:
            found.append((problem[0], f"{cs.get('name')}: {problem[1]}" if several else problem[1]))
    return min(found, key=lambda p: HEALTH_SEVERITY[p[0]]) if found else None


def _ended_reason(pod: Mapping[str, Any]) -> str:
    """Why a pod is over: evicted (with the kubelet's words), else how its containers ended,
    the first failure first (an init container's included)."""
    status = pod.get("status") or {}
    if status.get("reason"):
        return _with_message(str(status["reason"]), status.get("message"))
    ended = [
        terminated
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        if (terminated := _states(cs)[3]) is not None
    ]
    first = next((t for t in ended if _failed(t)), ended[0] if ended else None)
    return _exit_text(first) if first is not None else str(status.get("phase") or "")


def _not_ready_reason(pod: Mapping[str, Any], state: RunState) -> str:
    """Why a pod without a problem is not ready. Not yet running: where it is on its way
    ("ContainerCreating", "Init:0/2", "Pending"). Running: the kubelet's Ready condition
    ("ContainersNotReady: containers with unready status: [web]"), else ContainersReady's."""
    if state == RunState.CREATED:
        return kubectl_status(pod)
    conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    for kind in ("Ready", "ContainersReady"):
        cond = conditions.get(kind) or {}
        if cond.get("status") != "True" and cond.get("reason"):
            return _with_message(str(cond["reason"]), cond.get("message"))
    return "not ready"


def _restart_note(status: Mapping[str, Any]) -> str:
    """A ready pod's past: it was restarted, and how its last run ended ("ready; restarted
    3×, last: OOMKilled (exit 137)"), which a pod that is flaky has to tell."""
    restarts = _pod_restarts(status)
    if not restarts:
        return ""
    last = next(
        (t for cs in status.get("containerStatuses") or [] if (t := (cs.get("lastState") or {}).get("terminated"))),
        None,
    )
    return f"ready; restarted {restarts}×" + (f", last: {_exit_text(last)}" if last else "")


def _condition(raw: Mapping[str, Any]) -> Condition:
    return Condition(
        type=str(raw.get("type") or ""),
        status=str(raw.get("status") or "Unknown"),
        reason=str(raw.get("reason") or ""),
        message=_one_line(raw.get("message"), PROBE_OUTPUT_CHARS),
        changed=parse_kube_time(raw.get("lastTransitionTime")),
    )


def _conditions(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    # lastUpdateTime and lastProbeTime are left out: a Deployment's moves with every step of
    # a rollout, which would make each one a change of the spec for nothing shown.
    return tuple(_condition(c) for c in status.get("conditions") or [] if isinstance(c, Mapping))


def _container_status(cs: Mapping[str, Any]) -> ContainerStatus:
    _, running, waiting, terminated = _states(cs)
    last = (cs.get("lastState") or {}).get("terminated") or {}
    code, last_code = (terminated or {}).get("exitCode"), last.get("exitCode")
    if running is not None:
        name, detail = "running", running
    elif terminated is not None:
        name, detail = "terminated", terminated
    else:
        # The API's rule: a container state that names none of the three is "waiting".
        name, detail = "waiting", waiting or {}
    return ContainerStatus(
        name=str(cs.get("name") or ""),
        ready=bool(cs.get("ready")),
        restarts=int(cs.get("restartCount") or 0),
        state=name,
        reason=str(detail.get("reason") or ""),
        # Kept as much as of a probe's output, and as clean: the container wrote it.
        message=_one_line(detail.get("message"), PROBE_OUTPUT_CHARS),
        exit_code=code if isinstance(code, int) else None,
        started_at=parse_kube_time(detail.get("startedAt")),
        last_reason=str(last.get("reason") or ""),
        last_exit_code=last_code if isinstance(last_code, int) else None,
        last_finished=parse_kube_time(last.get("finishedAt")),
    )


def _container_statuses(status: Mapping[str, Any]) -> tuple[ContainerStatus, ...]:
    """Init containers first, in the order they run, then the pod's containers."""
    return tuple(
        _container_status(cs)
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        if isinstance(cs, Mapping)
    )


def _pod_ports(spec: Mapping[str, Any]) -> tuple[Port, ...]:
    # The name is kept: a Service's targetPort may name a container port ("http").
    found = {
        Port(int(p["containerPort"]), str(p.get("protocol") or "TCP").lower(), name=str(p.get("name") or ""))
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
        if isinstance(p.get("containerPort"), int)
    }
    return tuple(sorted(found, key=lambda p: (p.container_port, p.protocol, p.name)))


def _last_exit(status: Mapping[str, Any], state: RunState) -> tuple[int | None, datetime | None]:
    """(exit code, finished at) of the first terminated container: its current state once
    the pod is over, its last state while it is being restarted."""
    field = "state" if state == RunState.EXITED else "lastState" if state == RunState.RESTARTING else None
    if field is None:
        return None, None
    for cs in status.get("containerStatuses") or []:
        terminated = (cs.get(field) or {}).get("terminated")
        if terminated is None and field == "lastState":
            terminated = (cs.get("state") or {}).get("terminated")
        if terminated is not None:
            code = terminated.get("exitCode")
            return (code if isinstance(code, int) else None), parse_kube_time(terminated.get("finishedAt"))
    return None, None


def _oom_killed(status: Mapping[str, Any]) -> bool:
    statuses = [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
    return any(
        ((cs.get(field) or {}).get("terminated") or {}).get("reason") == "OOMKilled"
        for cs in statuses
        for field in ("state", "lastState")
    )


def instance_from_pod(pod: Mapping[str, Any], now: datetime | None = None) -> Instance:
    """Map a pod (as the API serves it) to an `Instance`; `now` decides "starting"."""
    now = now or datetime.now(UTC)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    namespace = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    owner = pod_owner(pod)
    state = pod_run_state(pod)
    exit_code, finished_at = _last_exit(status, state)
    health, health_reason = pod_health(pod, state, now)
    containers = spec.get("containers") or []
    number = 1
    if owner is not None and owner[0] == "StatefulSet":
        ordinal = name.removeprefix(f"{owner[1]}-")
        number = int(ordinal) if ordinal != name and ordinal.isdigit() else 1
    return Instance(
        source=Source.K3S,
        id=str(meta.get("uid") or f"{namespace}/{name}"),
        name=name,
        workload=WorkloadKey(Source.K3S, namespace, owner[1] if owner else name),
        state=state,
        health=health,
        image=str(containers[0].get("image") or "") if containers else "",
        ports=_pod_ports(spec),
        created_at=parse_kube_time(meta.get("creationTimestamp")),
        started_at=parse_kube_time(status.get("startTime")),
        finished_at=finished_at,
        restarts=_pod_restarts(status),
        exit_code=exit_code,
        oom_killed=_oom_killed(status),
        labels=tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items())),
        number=number,
        status_text=kubectl_status(pod),
        containers_ready=sum(1 for cs in status.get("containerStatuses") or [] if cs.get("ready")),
        containers_total=len(containers),
        container_names=tuple(str(c.get("name") or "") for c in containers),
        ip=str(status.get("podIP") or ""),
        node=str(spec.get("nodeName") or ""),
        health_reason=health_reason,
        container_statuses=_container_statuses(status),
        conditions=_conditions(status),
    )


# ---- Deployment / StatefulSet -> WorkloadSpec (pure) --------------------------------------------


def spec_from_workload(obj: Mapping[str, Any], kind: str) -> WorkloadSpec:
    """What a Deployment or StatefulSet declares (and how far its controller got)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    replicas = spec.get("replicas")
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    return WorkloadSpec(
        key=WorkloadKey(Source.K3S, str(meta.get("namespace") or ""), str(meta.get("name") or "")),
        kind=kind,
        desired=replicas if isinstance(replicas, int) else 1,
        image=str(containers[0].get("image") or "") if containers else "",
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        labels=tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items())),
        created_at=parse_kube_time(meta.get("creationTimestamp")),
        observed=generation is None or (isinstance(observed, int) and observed >= generation),
        available=int(status.get("availableReplicas") or 0),
        # Progressing=False (ProgressDeadlineExceeded) is how a stuck rollout is told.
        conditions=_conditions(status),
    )


# ---- Service / Event / Namespace -> their rows (pure) -----------------------------------------------


def _labels(meta: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items()))


def service_from(obj: Mapping[str, Any]) -> KubeService:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = [str(i.get("ip") or i.get("hostname")) for i in ingress if i.get("ip") or i.get("hostname")]
    external += [str(ip) for ip in spec.get("externalIPs") or []]
    if spec.get("type") == "ExternalName" and spec.get("externalName"):
        external.append(str(spec["externalName"]))
    ports = tuple(
        ServicePort(
            name=str(p.get("name") or ""),
            port=int(p.get("port") or 0),
            target_port=str(p.get("targetPort") if p.get("targetPort") is not None else p.get("port") or ""),
            protocol=str(p.get("protocol") or "TCP"),
            node_port=p.get("nodePort") if isinstance(p.get("nodePort"), int) else None,
        )
        for p in spec.get("ports") or []
    )
    return KubeService(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        type=str(spec.get("type") or "ClusterIP"),
        cluster_ip=str(spec.get("clusterIP") or ""),
        external_ips=tuple(external),
        ports=ports,
        selector=tuple(sorted((str(k), str(v)) for k, v in (spec.get("selector") or {}).items())),
        labels=_labels(meta),
        created_at=parse_kube_time(meta.get("creationTimestamp")),
    )


def event_from(obj: Mapping[str, Any]) -> ClusterEvent:
    """A core/v1 Event; the newer fields (eventTime, series) fill in where the old are empty."""
    meta = obj.get("metadata") or {}
    involved = obj.get("involvedObject") or {}
    series = obj.get("series") or {}
    source = obj.get("source") or {}
    first = parse_kube_time(obj.get("firstTimestamp")) or parse_kube_time(obj.get("eventTime"))
    last = (
        parse_kube_time(series.get("lastObservedTime"))
        or parse_kube_time(obj.get("lastTimestamp"))
        or first
        or parse_kube_time(meta.get("creationTimestamp"))
    )
    count = obj.get("count") or series.get("count") or 1
    return ClusterEvent(
        namespace=str(meta.get("namespace") or involved.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        type=str(obj.get("type") or "Normal"),
        reason=str(obj.get("reason") or ""),
        object_kind=str(involved.get("kind") or ""),
        object_name=str(involved.get("name") or ""),
        message=" ".join(str(obj.get("message") or "").split()),
        count=int(count) if isinstance(count, int) else 1,
        first_seen=first or last,
        last_seen=last,
        component=str(source.get("component") or obj.get("reportingComponent") or ""),
        labels=_labels(meta),
    )


def namespace_from(obj: Mapping[str, Any]) -> Namespace:
    meta = obj.get("metadata") or {}
    return Namespace(
        name=str(meta.get("name") or ""),
        phase=str((obj.get("status") or {}).get("phase") or "Active"),
        labels=_labels(meta),
        created_at=parse_kube_time(meta.get("creationTimestamp")),
    )


_OBJECT_MAPPERS: dict[WatchedKind, Callable[[Mapping[str, Any]], KubeObject]] = {
    SERVICES: service_from,
    EVENTS: event_from,
    NAMESPACES: namespace_from,
}


# ---- kubeconfig (pure, plus a loader for a thread) -----------------------------------------------


class KubeconfigError(Exception):
    """The kubeconfig cannot give a cluster to talk to; the message says why, for the banner."""


class KubeconfigMissing(KubeconfigError):
    """There is no kubeconfig at all: Kubernetes is not configured, which is no fault."""


@dataclass(frozen=True, slots=True)
class KubeTarget:
    context: str
    server: str
    contexts: tuple[str, ...]


def kubeconfig_paths(kubeconfig: str) -> list[str]:
    """KUBECONFIG-style: several files separated by ":" (";" on Windows)."""
    return [p for p in kubeconfig.split(os.pathsep) if p]


def resolve_target(configs: Sequence[Mapping[str, Any]], context: str | None) -> KubeTarget:
    """The context to use and its server, from loaded kubeconfig files merged as kubectl
    does (the first file naming a context, cluster or current-context wins)."""
    contexts: dict[str, Mapping[str, Any]] = {}
    clusters: dict[str, Mapping[str, Any]] = {}
    current = ""
    for config in configs:
        for entry in config.get("contexts") or []:
            contexts.setdefault(str(entry.get("name")), entry.get("context") or {})
        for entry in config.get("clusters") or []:
            clusters.setdefault(str(entry.get("name")), entry.get("cluster") or {})
        current = current or str(config.get("current-context") or "")
    names = tuple(contexts)
    if context is None:
        if not names:
            raise KubeconfigError("k3s: the kubeconfig has no contexts")
        context = current if current in contexts else names[0]
    if context not in contexts:
        known = ", ".join(names) if names else "none"
        raise KubeconfigError(f"k3s: context '{context}' not in kubeconfig (contexts: {known})")
    cluster_name = str(contexts[context].get("cluster") or "")
    server = str((clusters.get(cluster_name) or {}).get("server") or "")
    if not server:
        raise KubeconfigError(f"k3s: context '{context}' names cluster '{cluster_name}', which has no server")
    return KubeTarget(context, server, names)


def load_target(kubeconfig: str, context: str | None) -> KubeTarget:
    """Thread body: read the kubeconfig file(s) and resolve the context."""
    configs = []
    for path in kubeconfig_paths(kubeconfig):
        file = Path(path).expanduser()
        if not file.is_file():
            continue
        try:
            loaded = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"k3s: cannot read kubeconfig {path}: {exc}") from exc
        if isinstance(loaded, dict):
            configs.append(loaded)
    if not configs:
        raise KubeconfigMissing(f"k3s: no kubeconfig ({kubeconfig} not found; set KUBECONFIG or --kubeconfig)")
    return resolve_target(configs, context)


# ---- errors (pure) --------------------------------------------------------------------------------


def http_status(exc: BaseException) -> int | None:
    """The HTTP code of a kr8s.ServerError (its `.status` is a dict for 4xx, a str for 5xx)."""
    response = getattr(exc, "response", None)
    return response.status_code if isinstance(response, httpx.Response) else None


def server_message(exc: BaseException) -> str:
    """The API server's own words for a failed request."""
    status = getattr(exc, "status", None)
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    response = getattr(exc, "response", None)
    if isinstance(response, httpx.Response):
        with contextlib.suppress(ValueError, httpx.ResponseNotRead):
            body = response.json()
            if isinstance(body, dict) and body.get("message"):
                return str(body["message"])
    return str(exc)


def describe_kube_error(server: str, exc: BaseException) -> str:
    """The banner text for a failed connection: where, and the cause in plain words."""
    if isinstance(exc, KubeconfigError):
        return str(exc)
    return f"k3s: unreachable at {server} — {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    code = http_status(exc)
    if code is not None:
        if code == 401:
            return "401 Unauthorized: check the kubeconfig's credentials"
        phrase = _phrase(code)
        message = server_message(exc)
        return f"{code} {phrase}: {message}" if message and message != phrase else f"{code} {phrase}"
    causes = list(_causes(exc))
    for cause in reversed(causes):  # innermost first: the most precise
        match cause:
            case ConnectionRefusedError():
                return "connection refused"
            case socket.gaierror():
                return "host not found"
            case ssl.SSLCertVerificationError():
                return f"TLS certificate not trusted ({cause.verify_message or cause})"
            case TimeoutError() | kr8s.APITimeoutError() | httpx.TimeoutException():
                return "timed out"
            case ConnectionResetError() | httpx.RemoteProtocolError() | httpx.ReadError():
                return "connection lost"
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "error"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps, outermost first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [current.__cause__, current.__context__, *current.args]
        todo.extend(e for e in inner if isinstance(e, BaseException))


# Why a kind is not shown: the verb the server refused (403), or "serve" (404: not served).
DENIED_LIST, DENIED_WATCH, NOT_SERVED = "list", "watch", "serve"


def denial_message(denied: Mapping[WatchedKind, str], namespace: str | None) -> str | None:
    """What the status says about the kinds the cluster will not show us; None when
    everything is visible."""
    scope = f"in namespace {namespace}" if namespace else "in all namespaces"
    parts = []
    shown = [k for k in WATCHED if k not in _QUIET_DENIALS]
    for verb in (DENIED_LIST, DENIED_WATCH):
        kinds = [k.plural for k in shown if denied.get(k) == verb]
        if kinds:
            parts.append(f"no permission to {verb} {', '.join(kinds)} {scope}")
    missing = [k.plural for k in shown if denied.get(k) == NOT_SERVED]
    if missing:
        parts.append(f"{', '.join(missing)} not served by this cluster")
    return "k3s: " + "; ".join(parts) if parts else None


# ---- back-off (pure) -------------------------------------------------------------------------------


# ---- what a session's watch tasks tell the stream --------------------------------------------------


@dataclass(slots=True)
class _Listed:
    kind: WatchedKind
    objects: list[dict]


@dataclass(slots=True)
class _Watched:
    kind: WatchedKind
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict


@dataclass(slots=True)
class _Denied:
    kind: WatchedKind
    why: str  # DENIED_LIST, DENIED_WATCH or NOT_SERVED


@dataclass(slots=True)
class _Failed:
    error: Exception


class _Restart:
    """Asked by set_namespace / set_context: start a new session with the new settings."""


_Message = _Listed | _Watched | _Denied | _Failed | _Restart


# ---- the mirror -------------------------------------------------------------------------------------

_Entry = Instance | WorkloadSpec | KubeObject


class _Mirror:
    """What the adapter has told the store during one session, per kind (see the module
    docstring). Every method returns the events that move the store along with it."""

    def __init__(self) -> None:
        self.entries: dict[WatchedKind, dict[str, _Entry]] = {kind: {} for kind in WATCHED}
        self.unlisted = set(WATCHED)
        self.denied: dict[WatchedKind, str] = {}
        self.synced = False
        # Pods that are "starting": when that turns to "unhealthy", and the pod to map again.
        self.starting: dict[str, tuple[datetime, Mapping[str, Any]]] = {}

    def spec(self, key: WorkloadKey) -> WorkloadSpec | None:
        for kind in (DEPLOYMENTS, STATEFULSETS):
            entry = self.entries[kind].get(f"{key.group}/{key.name}")
            if isinstance(entry, WorkloadSpec):
                return entry
        return None

    def listed(self, kind: WatchedKind, objects: list[dict], now: datetime) -> list[AdapterEvent]:
        fresh = dict(self._map(kind, obj, now) for obj in objects)
        self.denied.pop(kind, None)
        return self._replace(kind, fresh)

    def denied_kind(self, kind: WatchedKind, why: str) -> list[AdapterEvent]:
        self.denied[kind] = why
        return self._replace(kind, {})

    def watched(
        self, kind: WatchedKind, event_type: str, obj: Mapping[str, Any], now: datetime
    ) -> list[AdapterEvent]:
        key = _key_of(kind, obj)
        old = self.entries[kind].get(key)
        if event_type == "DELETED":
            if old is None:
                return []
            del self.entries[kind][key]
            self.starting.pop(key, None)
            return [_gone(old)] if self.synced else []
        key, value = self._map(kind, obj, now)
        if old == value:
            return []
        self.entries[kind][key] = value
        return [_changed(value)] if self.synced else []

    def next_recheck(self) -> datetime | None:
        return min((when for when, _ in self.starting.values()), default=None)

    def recheck(self, now: datetime) -> list[AdapterEvent]:
        """Map again the pods whose "starting" grace is over."""
        events: list[AdapterEvent] = []
        for key, (when, pod) in list(self.starting.items()):
            if when <= now:
                events += self.watched(PODS, "MODIFIED", pod, now)
                self.starting.pop(key, None)  # mapped after its grace: never "starting" again
        return events

    def snapshot(self) -> Snapshot:
        return Snapshot(
            Source.K3S,
            tuple(e for e in self.entries[PODS].values() if isinstance(e, Instance)),
            tuple(
                e for kind in (DEPLOYMENTS, STATEFULSETS)
                for e in self.entries[kind].values() if isinstance(e, WorkloadSpec)
            ),
            tuple(e for kind in _OBJECT_MAPPERS for e in self.entries[kind].values()
                  if not isinstance(e, Instance | WorkloadSpec)),
        )

    def problems(self, namespace: str | None) -> str | None:
        """What the status says is wrong with this session's view, if anything."""
        notes = [denial_message(self.denied, namespace)]
        if namespace and NAMESPACES not in self.denied and NAMESPACES not in self.unlisted:
            if f"/{namespace}" not in self.entries[NAMESPACES]:
                notes.append(f"k3s: namespace {namespace} does not exist (deleted?) — :ns switches")
        text = "; ".join(n.removeprefix("k3s: ") for n in notes if n)
        return f"k3s: {text}" if text else None

    def _map(self, kind: WatchedKind, obj: Mapping[str, Any], now: datetime) -> tuple[str, _Entry]:
        key = _key_of(kind, obj)
        if kind in _OBJECT_MAPPERS:
            return key, _OBJECT_MAPPERS[kind](obj)
        if kind is not PODS:
            return key, spec_from_workload(obj, kind.kind)
        instance = instance_from_pod(obj, now)
        until = starting_until(obj) if instance.health == Health.STARTING else None
        if until is not None:
            self.starting[key] = (until, obj)
        else:
            self.starting.pop(key, None)
        return key, instance

    def _replace(self, kind: WatchedKind, fresh: dict[str, _Entry]) -> list[AdapterEvent]:
        old, self.entries[kind] = self.entries[kind], fresh
        for key in old.keys() - fresh.keys():
            self.starting.pop(key, None)
        if not self.synced:
            self.unlisted.discard(kind)
            if self.unlisted:
                return []
            self.synced = True
            return [self.snapshot()]
        events: list[AdapterEvent] = [_gone(old[key]) for key in old.keys() - fresh.keys()]
        events += [_changed(value) for key, value in fresh.items() if old.get(key) != value]
        return events


def _key_of(kind: WatchedKind, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    if kind is PODS and meta.get("uid"):
        return str(meta["uid"])
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _gone(entry: _Entry) -> AdapterEvent:
    if isinstance(entry, Instance):
        return InstanceGone(Source.K3S, entry.id)
    if isinstance(entry, WorkloadSpec):
        return SpecGone(entry.key)
    return ObjectGone(entry.key)


def _changed(entry: _Entry) -> AdapterEvent:
    if isinstance(entry, Instance):
        return InstanceChanged(entry)
    if isinstance(entry, WorkloadSpec):
        return SpecChanged(entry)
    return ObjectChanged(entry)


# ---- the adapter ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Link:
    """A connection to one context: an Api for the version and actions, one per watched kind."""

    api: kr8s.asyncio.Api
    watch_apis: Mapping[WatchedKind, kr8s.asyncio.Api]
    asked: str | None  # the context asked for (None: the kubeconfig's current one)
    target: KubeTarget
    version: str


# Transport failures that do not mean the server is gone: a read broken mid-request (the
# server ended a stream, or kr8s replaced the client to re-authenticate). The kind retries;
# if the server is really down, connecting fails next and the session ends.
_BROKEN_TRANSPORT = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class KubeAdapter(Adapter):
    """Pods, Deployments and StatefulSets of one kubeconfig context, in one namespace or
    all (None). `endpoint` reads "context @ server" once the kubeconfig was read."""

    source = Source.K3S

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
        *,
        reconnect_min: float = 0.5,
        reconnect_max: float = 10.0,
        api_timeout: float = 10.0,
        denied_retry: float = 60.0,
    ) -> None:
        self._kubeconfig_given = kubeconfig
        self._kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
        self._context = context
        self._namespace = namespace or None
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._api_timeout = api_timeout
        self._denied_retry = denied_retry
        self._target: KubeTarget | None = None
        self._link: _Link | None = None  # the stream's
        self._action_link: _Link | None = None  # for actions while the stream has no link
        self._mirror: _Mirror | None = None
        self._inbox: asyncio.Queue[_Message] = asyncio.Queue()
        self._action_lock = asyncio.Lock()
        self._port_apis: list[_PortApi] = []  # the port-forward streams' (see _port_api)
        self._port_lock = asyncio.Lock()

    # ---- where ---------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        target = self._target
        if target is not None and self._context in (None, target.context):
            return f"{target.context} @ {target.server}"
        return f"{self._context} in {self._kubeconfig}" if self._context else self._kubeconfig

    @property
    def context(self) -> str | None:
        """The context in use: the one asked for, or the kubeconfig's current one once read."""
        if self._context is None and self._target is not None:
            return self._target.context
        return self._context

    @property
    def namespace(self) -> str | None:
        """The namespace watched; None for all namespaces."""
        return self._namespace

    async def set_namespace(self, namespace: str | None) -> None:
        """Watch `namespace` (None: all); the running stream resyncs with a new Snapshot."""
        self._namespace = namespace or None
        self._inbox.put_nowait(_Restart())

    async def set_context(self, name: str) -> None:
        """Switch to kubeconfig context `name`; the running stream reconnects and resyncs."""
        self._context = name
        self._inbox.put_nowait(_Restart())

    async def contexts(self) -> list[str]:
        """The kubeconfig's context names (for a context picker)."""
        try:
            target = await asyncio.to_thread(load_target, self._kubeconfig, None)
        except KubeconfigError as exc:
            raise ActionError(str(exc)) from exc
        return list(target.contexts)

    async def namespaces(self) -> list[str]:
        """The cluster's namespace names (for a namespace picker)."""
        api = await self._api_for_actions()
        listing = await self._request(api, "GET", "v1", "namespaces", what="list namespaces")
        return sorted(str((item.get("metadata") or {}).get("name")) for item in listing.get("items") or [])

    # ---- the stream ------------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[AdapterEvent]:
        yield self._status(ConnState.CONNECTING)
        delays = backoff_delays(self._reconnect_min, self._reconnect_max)
        link: _Link | None = None
        asked = self._context
        while True:
            if asked != self._context:  # set_context: a new connection, announced as such
                asked, link = self._context, None
                self._target = self._link = None
                yield self._status(ConnState.CONNECTING)
            if link is None:
                try:
                    link = await self._connect(watching=True)
                except Exception as exc:  # noqa: BLE001 - every failure is shown, then retried
                    yield self._unreachable(exc)
                    await self._pause(next(delays))
                    continue
                self._link = link
            self._drain()  # what was asked until now, the next session does
            if asked != self._context:
                continue
            # Every session says so: its scope (the namespace) may be new, its problems are.
            yield self._status(ConnState.CONNECTED, version=link.version)
            mirror = self._mirror = _Mirror()
            try:
                async for event in self._session(link, mirror, self._namespace):
                    yield event
            except Exception as exc:  # noqa: BLE001 - the connection broke: report, reconnect, resync
                link = self._link = None
                if mirror.synced:
                    delays = backoff_delays(self._reconnect_min, self._reconnect_max)
                yield self._unreachable(exc)
                await self._pause(next(delays))
            else:
                if mirror.synced:
                    delays = backoff_delays(self._reconnect_min, self._reconnect_max)

    async def _connect(self, *, watching: bool = False) -> _Link:
        asked = self._context
        target = await asyncio.to_thread(load_target, self._kubeconfig, asked)
        self._target = target
        api = await self._new_api(target)
        async with asyncio.timeout(self._api_timeout):
            version = await api.version()
        apis = await asyncio.gather(*(self._new_api(target) for _ in WATCHED)) if watching else []
        return _Link(api, dict(zip(WATCHED, apis)), asked, target, str(version.get("gitVersion") or ""))

    async def _new_api(self, target: KubeTarget) -> kr8s.asyncio.Api:
        """An Api of our own, not the factory's shared one (see the module docstring).
        kr8s reads the credentials (running any exec plugin) and asks for the version."""
        async with asyncio.timeout(self._api_timeout):
            return await kr8s.asyncio.Api(bypass_factory=True, kubeconfig=self._kubeconfig, context=target.context)

    async def _session(self, link: _Link, mirror: _Mirror, namespace: str | None) -> AsyncIterator[AdapterEvent]:
        """One namespace scope on one connection: a Snapshot, then changes, until a restart
        is asked for (returns) or the connection breaks (raises)."""
        tasks = [
            asyncio.create_task(self._follow(link.watch_apis[kind], kind, namespace if kind.namespaced else None),
                                name=f"ferryman-kube-{kind.plural}")
            for kind in WATCHED
        ]
        reported: str | None = None
        try:
            while True:
                message = await self._next_message(mirror.next_recheck())
                now = datetime.now(UTC)
                match message:
                    case _Restart():
                        return
                    case _Failed(error=error):
                        raise error
                    case _Listed(kind=kind, objects=objects):
                        events = mirror.listed(kind, objects, now)
                    case _Watched(kind=kind, type=event_type, obj=obj):
                        events = mirror.watched(kind, event_type, obj, now)
                    case _Denied(kind=kind, why=why):
                        events = mirror.denied_kind(kind, why)
                    case _:
                        events = mirror.recheck(now)
                for event in events:
                    yield event
                if mirror.synced and (problems := mirror.problems(namespace)) != reported:
                    reported = problems
                    yield self._status(ConnState.CONNECTED, version=link.version, message=problems)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _next_message(self, deadline: datetime | None) -> _Message | None:
        """The next message from the watch tasks, or None when `deadline` comes first."""
        if deadline is None:
            return await self._inbox.get()
        delay = (deadline - datetime.now(UTC)).total_seconds()
        if delay <= 0:
            return None
        try:
            async with asyncio.timeout(delay):
                return await self._inbox.get()
        except TimeoutError:
            return None

    async def _pause(self, delay: float) -> None:
        """Wait `delay` seconds before reconnecting, less if a switch is asked for."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                while not isinstance(await self._inbox.get(), _Restart):
                    pass  # left over from a session that ended

    def _drain(self) -> None:
        while not self._inbox.empty():
            self._inbox.get_nowait()

    # ---- one kind: list, then watch -------------------------------------------------------------

    async def _follow(self, api: kr8s.asyncio.Api, kind: WatchedKind, namespace: str | None) -> None:
        """Task body; what ends the session is handed to the stream as `_Failed`."""
        try:
            await self._list_and_watch(api, kind, namespace)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported by the stream
            self._inbox.put_nowait(_Failed(exc))

    async def _list_and_watch(self, api: kr8s.asyncio.Api, kind: WatchedKind, namespace: str | None) -> None:
        since: str | None = None  # None: (re)list first
        delays: Iterator[float] | None = None  # set while attempts make no progress
        while True:
            if delays is not None:
                await asyncio.sleep(next(delays))
            started = time.monotonic()
            progressed = False
            verb = DENIED_LIST
            try:
                if since is None:
                    objects, since = await self._list(api, kind, namespace)
                    self._inbox.put_nowait(_Listed(kind, objects))
                verb = DENIED_WATCH
                since, progressed = await self._watch(api, kind, namespace, since)
            except kr8s.ServerError as exc:
                code = http_status(exc)
                if code == 410:  # expired history (or continue token): list afresh
                    since = None
                elif code in (403, 404):
                    log.info("k3s: %s %s: %s", kind.plural, code, server_message(exc))
                    self._inbox.put_nowait(_Denied(kind, verb if code == 403 else NOT_SERVED))
                    since, delays = None, None
                    await asyncio.sleep(self._denied_retry)
                    continue
                else:
                    raise
            except _BROKEN_TRANSPORT as exc:
                log.debug("k3s: %s request broken (%r); retrying", kind.plural, exc)
            if progressed or time.monotonic() - started >= _WATCH_PROGRESS_SECONDS:
                delays = None
            elif delays is None:
                delays = backoff_delays(self._reconnect_min, self._reconnect_max)

    async def _list(
        self, api: kr8s.asyncio.Api, kind: WatchedKind, namespace: str | None
    ) -> tuple[list[dict], str | None]:
        """All objects of `kind`, page by page, and the list's resourceVersion (that of the
        first page: a paginated list is one consistent snapshot)."""
        objects: list[dict] = []
        params: dict[str, Any] = {"limit": _LIST_PAGE}
        version: str | None = None
        while True:
            async with api.call_api(
                "GET", version=kind.version, url=kind.plural, namespace=namespace, params=params,
                timeout=self._api_timeout,
            ) as response:
                page = response.json()
            objects.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            version = version or (str(meta["resourceVersion"]) if meta.get("resourceVersion") else None)
            if not meta.get("continue"):
                return objects, version
            params = {**params, "continue": meta["continue"]}

    async def _watch(
        self, api: kr8s.asyncio.Api, kind: WatchedKind, namespace: str | None, since: str | None
    ) -> tuple[str | None, bool]:
        """Follow one watch request from `since` until it ends. Returns the resourceVersion to
        resume from (None: the history is gone, relist) and whether anything arrived."""
        seconds = random.randint(*_WATCH_SECONDS)
        params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(seconds)}
        if since:
            params["resourceVersion"] = since
        opened = progressed = False
        try:
            async with api.call_api(
                "GET", version=kind.version, url=kind.plural, namespace=namespace, params=params, stream=True,
                timeout=httpx.Timeout(self._api_timeout, read=seconds + self._api_timeout),
            ) as response:
                opened = True
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    event_type, obj = event.get("type"), event.get("object") or {}
                    if event_type == "ERROR":
                        # 410 Expired is the usual one; after any other, a fresh list is the safe way on.
                        log.info("k3s: watch of %s: %s", kind.plural, obj.get("message") or obj)
                        return None, progressed
                    progressed = True
                    since = str((obj.get("metadata") or {}).get("resourceVersion") or since or "") or None
                    if event_type in ("ADDED", "MODIFIED", "DELETED"):
                        self._inbox.put_nowait(_Watched(kind, event_type, obj))
        except (httpx.TransportError, kr8s.APITimeoutError, ValueError) as exc:
            if not opened:
                raise
            # Cut mid-line, or a read broken or timed out: resume from what was seen.
            log.debug("k3s: watch of %s broken (%r); resuming", kind.plural, exc)
        return since, progressed

    # ---- statuses ----------------------------------------------------------------------------------

    def _status(self, state: ConnState, *, version: str | None = None, message: str | None = None) -> SourceStatus:
        scope = f"namespace {self._namespace}" if self._namespace else "all namespaces"
        return SourceStatus(Source.K3S, state, self.endpoint, version=version, message=message, scope=scope)

    def _server(self) -> str:
        return self._target.server if self._target is not None else self._kubeconfig

    def _unreachable(self, exc: BaseException) -> SourceStatus:
        expected = (
            KubeconfigError, kr8s.ServerError, kr8s.APITimeoutError, httpx.HTTPError, OSError, TimeoutError,
        )
        if not isinstance(exc, expected):
            log.error("unexpected error in the k3s adapter", exc_info=exc)
        state = ConnState.ABSENT if isinstance(exc, KubeconfigMissing) else ConnState.UNREACHABLE
        return self._status(state, message=describe_kube_error(self._server(), exc))

    # ---- actions ------------------------------------------------------------------------------------

    def supports(self, action: Action) -> bool:
        return action in (Action.RESTART, Action.DELETE, Action.SCALE, Action.ROLLOUT_RESTART)

    async def perform(self, action: Action, instances: Sequence[Instance]) -> None:
        if action == Action.DELETE:
            await self.delete_pods(instances)
            return
        if action != Action.RESTART:
            raise ActionError(f"{action} is not available for Kubernetes pods")
        api = await self._api_for_actions()
        await _each(instances, lambda inst: self._restart_pod(api, inst))

    async def _restart_pod(self, api: kr8s.asyncio.Api, instance: Instance) -> None:
        """Delete the pod so that its controller makes a new one; a bare pod would just go."""
        namespace, name = instance.workload.group, instance.name
        pod = await self._request(api, "GET", "v1", f"pods/{name}", namespace, what=f"restart pod {name}")
        if pod_owner(pod) is None:
            raise ActionError(f"pod {name} has no controller to recreate it: it cannot be restarted, only deleted")
        await self._request(api, "DELETE", "v1", f"pods/{name}", namespace, what=f"restart pod {name}")

    async def delete_pods(self, instances: Sequence[Instance]) -> None:
        """Delete pods (their controllers, if any, replace them); already gone is fine."""
        api = await self._api_for_actions()

        async def delete(instance: Instance) -> None:
            name = instance.name
            with contextlib.suppress(_NotFound):
                await self._request(api, "DELETE", "v1", f"pods/{name}", instance.workload.group,
                                    what=f"delete pod {name}")

        await _each(instances, delete)

    async def scale(self, workload: WorkloadKey, replicas: int) -> None:
        """Set a Deployment's or StatefulSet's replicas (through its scale subresource)."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ActionError(f"cannot scale {workload} to {replicas!r}: replicas must be 0 or more")
        api = await self._api_for_actions()
        kind = await self._workload_kind(api, workload)
        await self._request(
            api, "PATCH", kind.version, f"{kind.plural}/{workload.name}/scale", workload.group,
            what=f"scale {kind.kind} {workload.name}",
            headers={"Content-Type": "application/merge-patch+json"},
            content=json.dumps({"spec": {"replicas": replicas}}),
        )

    async def rollout_restart(self, workload: WorkloadKey) -> None:
        """What `kubectl rollout restart` does: stamp the pod template, so that the
        controller replaces every pod."""
        api = await self._api_for_actions()
        kind = await self._workload_kind(api, workload)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        await self._request(
            api, "PATCH", kind.version, f"{kind.plural}/{workload.name}", workload.group,
            what=f"restart {kind.kind} {workload.name}",
            headers={"Content-Type": "application/merge-patch+json"},
            content=json.dumps(patch),
        )

    async def get_yaml(self, kind: str, namespace: str | None, name: str) -> str:
        """An object as YAML, as `kubectl get -o yaml` shows it (without managedFields).
        `kind` is anything kubectl accepts: "pod", "deploy", "StatefulSet", "svc"…"""
        api = await self._api_for_actions()
        try:
            async with self._action_lock:  # discovery is a request too (see _request)
                full_kind, plural, namespaced = await api.lookup_kind(kind)
        except ValueError as exc:
            raise ActionError(f"unknown kind {kind!r}") from exc
        except (kr8s.ServerError, kr8s.APITimeoutError, httpx.HTTPError) as exc:
            raise ActionError(f"get {kind} {name}: {describe_kube_error(self._server(), exc)}") from exc
        if namespaced and not namespace:
            raise ActionError(f"{plural} are namespaced: name the namespace of {name}")
        # kr8s names kinds "pod/v1" or "deployment.apps/v1".
        version = full_kind.split(".", 1)[1] if "." in full_kind.split("/", 1)[0] else full_kind.split("/", 1)[1]
        obj = await self._request(
            api, "GET", version, f"{plural}/{name}", namespace if namespaced else None, what=f"get {kind} {name}"
        )
        (obj.get("metadata") or {}).pop("managedFields", None)
        return yaml.safe_dump(obj, sort_keys=False)

    async def manifest(self, ref: ObjectRef) -> str:
        return await self.get_yaml(ref.kind, ref.namespace, ref.name)

    async def describe(self, ref: ObjectRef) -> str:
        """kubectl-describe-like text; the object's events come from the session's watch."""
        text = await self.get_yaml(ref.kind, ref.namespace, ref.name)
        obj = yaml.safe_load(text)
        mirror = self._mirror
        events = [
            e for e in (mirror.entries[EVENTS].values() if mirror is not None else ())
            if isinstance(e, ClusterEvent) and e.namespace == (ref.namespace or e.namespace)
        ]
        return describe_object(obj, events, now=datetime.now(UTC))

    # ---- objects by manifest: server-side apply, get, delete, list (promotion) -----------------

    async def apply(
        self, objects: Sequence[Mapping[str, Any]], field_manager: str = "ferryman", *, force: bool = True,
    ) -> list[Applied]:
        """Server-side apply each manifest, in order, as `field_manager`: created when
        missing, merged when present, the fields recorded as that manager's. kr8s has no
        apply (its patch() sends JSON or merge patches only), so this is a raw PATCH with
        ``application/apply-patch+yaml``. `force` takes over fields another manager set
        (a `kubectl scale` of the replicas, say): the manifests are what the user asked for.

        Raises ApplyRejected at the first manifest the API server refuses, in its words,
        carrying what was applied before it (so that the caller can undo exactly that)."""
        idents = [ObjectId.of(manifest) for manifest in objects]  # all well-formed before any is applied
        api = await self._api_for_actions()
        applied: list[Applied] = []
        for ident, manifest in zip(idents, objects):
            try:
                info = await self._kind_info(api, ident.api_version, ident.kind)
                if info.namespaced and not ident.namespace:
                    raise ActionError(f"{ident.kind} {ident.name} has no namespace")
                # JSON is YAML: no second serialiser, and no YAML surprises ("no" → false).
                code, obj = await self._call(
                    api, "PATCH", info.version, f"{info.plural}/{ident.name}",
                    ident.namespace if info.namespaced else None, what=f"apply {ident}",
                    params={"fieldManager": field_manager, "force": "true" if force else "false"},
                    headers={"Content-Type": "application/apply-patch+yaml"},
                    content=json.dumps(manifest),
                )
            except ActionError as exc:
                # The server's own words, when it was the server that said no (not a
                # connection that broke on the way).
                by_server = isinstance(exc.__cause__, kr8s.ServerError)
                reason = server_message(exc.__cause__) if by_server and exc.__cause__ else str(exc)
                raise ApplyRejected(str(exc), ident, applied, reason=reason, by_server=by_server) from exc
            applied.append(Applied(ident, code == HTTPStatus.CREATED, obj))
        return applied

    async def get_object(self, ident: ObjectId) -> dict | None:
        """The object as the API server has it; None when it does not exist."""
        api = await self._api_for_actions()
        info = await self._kind_info(api, ident.api_version, ident.kind)
        try:
            _, obj = await self._call(api, "GET", info.version, f"{info.plural}/{ident.name}",
                                      ident.namespace if info.namespaced else None, what=f"get {ident}")
        except _NotFound:
            return None
        obj.setdefault("apiVersion", ident.api_version)
        obj.setdefault("kind", ident.kind)
        return obj

    async def delete_object(self, ident: ObjectId, *, managed_by: str | None = None) -> bool:
        """Delete one object (its dependents go by the garbage collector, in the background).
        False when it was already gone. With `managed_by`, the object is read first and an
        object whose ``app.kubernetes.io/managed-by`` label says otherwise is refused (an
        ActionError), not deleted; the delete then carries that object's uid as a
        precondition, so that an object someone re-created in between is left alone."""
        api = await self._api_for_actions()
        info = await self._kind_info(api, ident.api_version, ident.kind)
        namespace = ident.namespace if info.namespaced else None
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if managed_by is not None:
            current = await self.get_object(ident)
            if current is None:
                return False
            labels = (current.get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) != managed_by:
                raise ActionError(f"{ident} is not managed by {managed_by} (label {MANAGED_BY_LABEL}="
                                  f"{labels.get(MANAGED_BY_LABEL, '<none>')}): not deleted")
            uid = (current.get("metadata") or {}).get("uid")
            if uid:
                body["preconditions"] = {"uid": uid}
        try:
            await self._call(api, "DELETE", info.version, f"{info.plural}/{ident.name}", namespace,
                             what=f"delete {ident}", content=json.dumps(body),
                             headers={"Content-Type": "application/json"})
        except _NotFound:
            return False
        return True

    async def list_managed(
        self, kind: str = "Deployment", api_version: str = "apps/v1", namespace: str | None = None, *,
        managed_by: str = "ferryman",
    ) -> list[dict]:
        """Objects of one kind labelled ``app.kubernetes.io/managed-by=<managed_by>``, in
        `namespace` (None: all namespaces), with their annotations: where promotion state
        lives (the store's specs do not carry annotations)."""
        api = await self._api_for_actions()
        info = await self._kind_info(api, api_version, kind)
        params = {"labelSelector": f"{MANAGED_BY_LABEL}={managed_by}", "limit": str(_LIST_PAGE)}
        found: list[dict] = []
        while True:
            _, page = await self._call(api, "GET", info.version, info.plural,
                                       namespace if info.namespaced else None, what=f"list {info.plural}",
                                       params=params)
            for item in page.get("items") or []:
                # List items omit kind and apiVersion.
                found.append({"apiVersion": api_version, "kind": kind, **item})
            more = (page.get("metadata") or {}).get("continue")
            if not more:
                return found
            params = {**params, "continue": more}

    async def _kind_info(self, api: kr8s.asyncio.Api, api_version: str, kind: str) -> KindInfo:
        """Where a kind is served: the common kinds from a table (no discovery round trip),
        any other one (a CRD a manifest names) by asking the server."""
        known = _KNOWN_KINDS.get((api_version, kind))
        if known is not None:
            return known
        group = api_version.rpartition("/")[0]
        try:
            async with self._action_lock:  # discovery is a request too (see _request)
                _, plural, namespaced = await api.lookup_kind(f"{kind.lower()}.{group}" if group else kind.lower())
        except ValueError as exc:
            raise ActionError(f"the cluster does not serve {api_version} {kind}") from exc
        except (kr8s.ServerError, kr8s.APITimeoutError, httpx.HTTPError) as exc:
            raise ActionError(f"look up {kind}: {describe_kube_error(self._server(), exc)}") from exc
        return KindInfo(api_version, plural, namespaced)

    async def _call(
        self, api: kr8s.asyncio.Api, method: str, version: str, url: str, namespace: str | None = None, *,
        what: str, **kwargs: Any,
    ) -> tuple[int, dict]:
        """`_request`, with the HTTP status too (apply says 201 when it created the object)."""
        try:
            async with self._action_lock, api.call_api(
                method, version=version, url=url, namespace=namespace, timeout=self._api_timeout, **kwargs
            ) as response:
                return response.status_code, (response.json() if response.content else {})
        except kr8s.ServerError as exc:
            error = _NotFound if http_status(exc) == 404 else ActionError
            raise error(f"{what}: {server_message(exc)}") from exc
        except (kr8s.APITimeoutError, httpx.HTTPError, OSError) as exc:
            raise ActionError(f"{what}: {describe_kube_error(self._server(), exc)}") from exc

    async def _workload_kind(self, api: kr8s.asyncio.Api, workload: WorkloadKey) -> WatchedKind:
        mirror = self._mirror
        spec = mirror.spec(workload) if mirror is not None else None
        if spec is not None and spec.kind in _WORKLOAD_KINDS:
            return _WORKLOAD_KINDS[spec.kind]
        for kind in (DEPLOYMENTS, STATEFULSETS):
            with contextlib.suppress(_NotFound):
                await self._request(api, "GET", kind.version, f"{kind.plural}/{workload.name}", workload.group,
                                    what=f"find {workload}")
                return kind
        raise ActionError(f"no Deployment or StatefulSet named {workload.name} in namespace {workload.group}")

    async def _request(
        self, api: kr8s.asyncio.Api, method: str, version: str, url: str, namespace: str | None = None, *,
        what: str, **kwargs: Any,
    ) -> dict:
        """One API call for an action, one at a time (see the module docstring); failures
        become ActionErrors in the server's words."""
        try:
            async with self._action_lock, api.call_api(
                method, version=version, url=url, namespace=namespace, timeout=self._api_timeout, **kwargs
            ) as response:
                return response.json() if response.content else {}
        except kr8s.ServerError as exc:
            error = _NotFound if http_status(exc) == 404 else ActionError
            raise error(f"{what}: {server_message(exc)}") from exc
        except (kr8s.APITimeoutError, httpx.HTTPError, OSError) as exc:
            raise ActionError(f"{what}: {describe_kube_error(self._server(), exc)}") from exc

    async def _api_for_actions(self) -> kr8s.asyncio.Api:
        """The stream's Api if it is connected to the context asked for, else one of our own."""
        for link in (self._link, self._action_link):
            if link is not None and link.asked == self._context:
                return link.api
        try:
            self._action_link = await self._connect()
        except Exception as exc:  # noqa: BLE001 - whatever stops us is the user's to read
            raise ActionError(describe_kube_error(self._server(), exc)) from exc
        return self._action_link.api

    # ---- logs ---------------------------------------------------------------------------------------

    async def logs(self, target: LogTarget, options: LogOptions) -> AsyncIterator[list[LogLine] | LogEnded]:
        """`GET pods/NAME/log`, streamed: a batch of lines per chunk read. Each stream has an Api of its own (see the module
        docstring), closed with the stream. While following there is no read timeout: a
        quiet pod is not a dead stream (whether the stream still stands is the follower's
        question, answered by the watch that says whether the pod still runs)."""
        try:
            api = await self._api_for_logs()
        except Exception as exc:  # noqa: BLE001 - whatever stops us is the user's to read
            yield LogEnded(describe_kube_error(self._server(), exc))
            return
        try:
            async for item in self._read_log(api, target, options):
                yield item
        finally:
            await _close_api(api)

    async def _read_log(
        self, api: kr8s.asyncio.Api, target: LogTarget, options: LogOptions
    ) -> AsyncIterator[list[LogLine] | LogEnded]:
        namespace, pod = target.instance.workload.group, target.instance.name
        params = kube_log_params(target, options)
        follow = "follow" in params
        timeout = httpx.Timeout(self._api_timeout, read=None if follow else self._api_timeout)
        assembler = LineAssembler()
        label = target.label
        opened = False
        try:
            async with api.call_api(
                "GET", version="v1", url=f"pods/{pod}/log", namespace=namespace, params=params, stream=True,
                timeout=timeout,
            ) as response:
                opened = True
                async for chunk in response.aiter_bytes():
                    # One batch per chunk read: whatever lines it completes.
                    if lines := [parse_line(raw, label) for raw in assembler.split(chunk)]:
                        yield lines
        except kr8s.ServerError as exc:
            yield log_refusal(exc)
            return
        except (httpx.HTTPError, kr8s.APITimeoutError, OSError) as exc:
            if not opened:
                yield LogEnded(describe_kube_error(self._server(), exc))
            else:
                # The line cut in half is left out: the reconnect, from its time, sends it whole.
                yield LogEnded(f"stream cut: {_reason(exc)}")
            return
        if lines := [parse_line(raw, label) for raw in assembler.flush()]:
            yield lines
        if follow:
            yield await self._log_end(api, namespace, pod, target.container)

    async def _log_end(self, api: kr8s.asyncio.Api, namespace: str, pod: str, container: str | None) -> LogEnded:
        """Why a followed log ended, from the pod as it is now."""
        try:
            async with api.call_api(
                "GET", version="v1", url=f"pods/{pod}", namespace=namespace, timeout=self._api_timeout
            ) as response:
                obj = response.json()
        except kr8s.ServerError as exc:
            if http_status(exc) == 404:
                return LogEnded("pod deleted", final=True)
            return LogEnded(f"stream ended by the API server ({server_message(exc)})")
        except (httpx.HTTPError, kr8s.APITimeoutError, OSError) as exc:
            return LogEnded(f"stream cut: {_reason(exc)}")
        return pod_log_end(obj, container)

    async def _api_for_logs(self) -> kr8s.asyncio.Api:
        target = self._target
        if target is None or self._context not in (None, target.context):
            target = await asyncio.to_thread(load_target, self._kubeconfig, self._context)
        return await self._new_api(target)

    def shell_command(self, instance: Instance) -> list[str]:
        # A fixed script: nothing from names or labels reaches a shell.
        argv = ["kubectl"]
        if self._kubeconfig_given:
            argv += ["--kubeconfig", self._kubeconfig_given]
        if self.context:
            argv += ["--context", self.context]
        return [*argv, "exec", "-it", "-n", instance.workload.group, instance.name, "--", "sh", "-c", _SHELL_SCRIPT]

    # ---- port-forward streams ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_port(self, namespace: str, pod: str, port: int) -> AsyncIterator[PodPortStream]:
        """A stream to `port` of `pod` (see `PodPortStream`), open for the body.

        Raises, before the body runs: PortForbidden (401/403), PodUnavailable (404: the pod
        is gone; 400: it is not running), ApiUnreachable (no kubeconfig, no server, a 5xx,
        no answer within the API timeout), RemotePortError (the pod's side refused at once).
        Within the body, the stream's own errors come from its methods."""
        held = await self._port_api()
        stack = contextlib.AsyncExitStack()
        stack.push_async_callback(self._port_api_done, held)
        try:
            async with asyncio.timeout(self._api_timeout):
                ws = await stack.enter_async_context(held.api.open_websocket(
                    version="v1", url=f"pods/{pod}/portforward", namespace=namespace, params={"ports": str(port)},
                    subprotocols=[_PORT_PROTOCOL], max_message_size_bytes=_PORT_FRAME_MAX,
                ))
                stream = PodPortStream(ws, pod, port)
                await stream.start()
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            raise self._port_error(exc, held.target.server, namespace, pod, port) from exc
        try:
            async with stack:
                yield stream
        except BaseExceptionGroup as group:
            # httpx_ws's session is an anyio task group, which may wrap what the body raised.
            raise _only(group) from None

    def _port_error(self, exc: BaseException, server: str, namespace: str, pod: str, port: int) -> PortStreamError:
        if isinstance(exc, BaseExceptionGroup):
            exc = _only(exc)
        if isinstance(exc, PortStreamError):
            return exc
        if isinstance(exc, httpx_ws.WebSocketUpgradeError):
            code = exc.response.status_code
            if code == 401:
                return PortForbidden("k3s: 401 Unauthorized opening a port-forward: check the kubeconfig's credentials")
            if code == 403:
                return PortForbidden(f"no permission to port-forward pods in namespace {namespace}")
            if code == 404:
                return PodUnavailable(f"pod {pod} not found in namespace {namespace}")
            if code == 400:
                return PodUnavailable(f"pod {pod} cannot take a port-forward (400 Bad Request: not running?)")
            if code >= 500:
                return ApiUnreachable(f"k3s: {code} {_phrase(code)} from the API server opening a port-forward to {pod}")
            return PortStreamError(f"port-forward to pod {pod} refused: {code} {_phrase(code)}")
        if isinstance(exc, TimeoutError):
            return ApiUnreachable(
                f"k3s: no answer from {server} within {self._api_timeout:g} s opening a port-forward to {pod}"
            )
        return ApiUnreachable(describe_kube_error(server, exc))

    async def _port_api(self) -> _PortApi:
        """An Api for one more port-forward stream. Each stream holds one of its HTTP client's
        connections for as long as it lives, and httpx pools at most 100 (the next one would
        wait for a free one, then time out): beyond _STREAMS_PER_API streams, another Api.
        Made again when the context changes."""
        async with self._port_lock:
            if self._port_apis and self._port_apis[0].asked != self._context:
                stale, self._port_apis = self._port_apis, []
                for held in stale:
                    await _close_api(held.api)
            held = next((h for h in self._port_apis if h.streams < _STREAMS_PER_API), None)
            if held is None:
                try:
                    target = await asyncio.to_thread(load_target, self._kubeconfig, self._context)
                except Exception as exc:  # noqa: BLE001 - no kubeconfig means no stream
                    raise ApiUnreachable(describe_kube_error(self._server(), exc)) from exc
                try:
                    api = await self._new_api(target)
                except Exception as exc:  # noqa: BLE001 - no Api means no stream, for whatever reason
                    raise ApiUnreachable(describe_kube_error(target.server, exc)) from exc
                held = _PortApi(self._context, target, api)
                self._port_apis.append(held)
            held.streams += 1
            return held

    async def _port_api_done(self, held: _PortApi) -> None:
        held.streams -= 1
        # Extra Apis go once idle; the first stays for the next stream.
        if held.streams == 0 and held in self._port_apis[1:]:
            self._port_apis.remove(held)
            await _close_api(held.api)

    async def close(self) -> None:
        # kr8s has no way to close an Api; dropping ours lets their HTTP clients go.
        self._link = self._action_link = None
        held, self._port_apis = self._port_apis, []
        for port_api in held:
            await _close_api(port_api.api)


# ---- port-forward streams ----------------------------------------------------------------------

# Port-forward streams per kr8s Api (whose httpx client pools at most 100 connections).
_STREAMS_PER_API = 80


@dataclass(slots=True, eq=False)
class _PortApi:
    asked: str | None  # the context asked for when it was made
    target: KubeTarget
    api: kr8s.asyncio.Api
    streams: int = 0  # open, or being opened


# The portforward subprotocol with binary frames (channel byte + payload); the API server
# also accepts none (kr8s sends none) and means the same.
_PORT_PROTOCOL = "v4.channel.k8s.io"
# httpx_ws refuses messages over 64 KiB by default; servers send data frames as big as
# they read (the emulator 64 KiB + the channel byte).
_PORT_FRAME_MAX = 16 * 1024 * 1024


class PodPortStream:
    """One port of one pod over the portforward websocket. Every frame is a channel byte
    and a payload: channel 0 is data, 1 errors; each channel's first frame is the port
    number (little-endian uint16), which is skipped. `start()` waits for both (the stream
    stands); `receive()` gives data, b"" at the end, and raises RemotePortError with the
    server's text when the error channel speaks; `send()` writes data."""

    def __init__(self, ws: httpx_ws.AsyncWebSocketSession, pod: str, port: int) -> None:
        self._ws = ws
        self._pod, self._port = pod, port
        self._announced: set[int] = set()  # channels whose port-number frame came
        self._early: list[bytes] = []  # data that came before both announcements
        self._ended = False

    async def start(self) -> None:
        while len(self._announced) < 2:
            frame = await self._frame()
            if frame is None:
                raise PortStreamError(f"the API server closed the port-forward to pod {self._pod} at once")
            channel, payload = frame
            if channel not in self._announced:
                self._announced.add(channel)
            elif channel == 0:
                self._early.append(payload)
            else:
                self._error(channel, payload)

    async def receive(self) -> bytes:
        if self._early:
            return self._early.pop(0)
        while True:
            frame = await self._frame()
            if frame is None:
                return b""
            channel, payload = frame
            if channel not in self._announced:
                self._announced.add(channel)
            elif channel == 0:
                return payload
            else:
                self._error(channel, payload)

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(b"\x00" + data)
        except Exception as exc:  # noqa: BLE001 - wsproto, httpcore and anyio each have their own for "closed"
            raise PortStreamError(f"the port-forward to pod {self._pod} is closed") from exc

    async def _frame(self) -> tuple[int, bytes] | None:
        """The next non-empty frame; None once the websocket is closed."""
        while not self._ended:
            try:
                event = await self._ws.receive()
            except httpx_ws.WebSocketDisconnect:
                self._ended = True
                return None
            except httpx_ws.HTTPXWSException as exc:
                self._ended = True
                raise PortStreamError(f"the port-forward connection to the API server broke (pod {self._pod})") from exc
            if isinstance(event, wsproto.events.BytesMessage) and event.data:
                data = event.data
                return data[0], bytes(memoryview(data)[1:])  # one copy of the payload, not two
        return None

    def _error(self, channel: int, payload: bytes) -> None:
        text = payload.decode(errors="replace").strip()
        if channel == 1 and text:
            raise RemotePortError(self._pod, self._port, text)


def _only(group: BaseExceptionGroup) -> BaseException:
    """The one exception a task group wrapped (the first leaf if there are several)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    return leaf


# ---- logs ------------------------------------------------------------------------------------------


def kube_log_params(target: LogTarget, options: LogOptions) -> dict[str, str]:
    """The query of `GET pods/NAME/log` for `options` (always timestamped). The previous
    container's log is complete: it is never followed."""
    params = {"timestamps": "true"}
    if target.container:
        params["container"] = target.container
    if options.previous:
        params["previous"] = "true"
    elif options.follow:
        params["follow"] = "true"
    if options.tail is not None:
        params["tailLines"] = str(options.tail)
    if options.since is not None:
        params["sinceSeconds"] = str(max(1, math.ceil(options.since.total_seconds())))
    return params


def log_refusal(exc: kr8s.ServerError) -> LogEnded:
    """A refused log request, in the server's words ("container "web" in pod "web-1" is
    waiting to start: ContainerCreating", "previous terminated container … not found")."""
    code = http_status(exc)
    message = server_message(exc)
    if code == 404:
        return LogEnded("pod deleted", final=True)
    if code in (401, 403):
        return LogEnded(f"no permission to read logs: {message}", final=True)
    return LogEnded(message)


def pod_log_end(pod: Mapping[str, Any], container: str | None) -> LogEnded:
    """Why a followed container's log ended, from its pod right after the end."""
    status = pod.get("status") or {}
    statuses = [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
    cs = next((c for c in statuses if container is None or c.get("name") == container), None)
    if cs is not None:
        _, running, waiting, terminated = _states(cs)
        last = (cs.get("lastState") or {}).get("terminated")
        if terminated is not None:
            return LogEnded(f"container exited ({_exit_detail(terminated)})")
        if waiting is not None and last is not None:
            return LogEnded(f"container exited ({_exit_detail(last)}); {waiting.get('reason') or 'waiting'}")
        if waiting is not None:
            return LogEnded(f"container waiting ({waiting.get('reason') or 'unknown reason'})")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return LogEnded("pod terminating")
    return LogEnded("stream ended by the API server")


def _exit_detail(terminated: Mapping[str, Any]) -> str:
    code = terminated.get("exitCode")
    parts = [str(code)] if isinstance(code, int) else []
    if terminated.get("reason"):
        parts.append(str(terminated["reason"]))
    return ", ".join(parts) or "unknown"


async def _close_api(api: kr8s.asyncio.Api) -> None:
    """End a log stream's Api. kr8s has no close; its HTTP client is `_session`, and
    closing it closes the connections it pooled, so that none outlives the stream."""
    session = getattr(api, "_session", None)
    if session is not None:
        with contextlib.suppress(Exception):
            await session.aclose()


# ---- objects by manifest (promotion) -----------------------------------------------------------

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


@dataclass(frozen=True, slots=True)
class KindInfo:
    version: str  # as call_api wants it: "v1" (core) or "apps/v1"
    plural: str
    namespaced: bool = True


_KNOWN_KINDS: dict[tuple[str, str], KindInfo] = {
    (version, kind): KindInfo(version, plural, namespaced)
    for version, kind, plural, namespaced in (
        ("v1", "Pod", "pods", True),
        ("v1", "Service", "services", True),
        ("v1", "ConfigMap", "configmaps", True),
        ("v1", "Secret", "secrets", True),
        ("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
        ("v1", "ServiceAccount", "serviceaccounts", True),
        ("v1", "Namespace", "namespaces", False),
        ("apps/v1", "Deployment", "deployments", True),
        ("apps/v1", "StatefulSet", "statefulsets", True),
        ("apps/v1", "DaemonSet", "daemonsets", True),
        ("apps/v1", "ReplicaSet", "replicasets", True),
        ("batch/v1", "Job", "jobs", True),
        ("batch/v1", "CronJob", "cronjobs", True),
        ("networking.k8s.io/v1", "Ingress", "ingresses", True),
        ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
        ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    )
}
_CLUSTER_SCOPED = frozenset(kind for (_, kind), info in _KNOWN_KINDS.items() if not info.namespaced)


@dataclass(frozen=True, slots=True, order=True)
class ObjectId:
    """Names one Kubernetes object by what a manifest says: apiVersion, kind, namespace, name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectId:
        meta = manifest.get("metadata") or {}
        kind = str(manifest.get("kind") or "")
        name = str(meta.get("name") or "")
        if not kind or not name or not manifest.get("apiVersion"):
            raise ActionError(f"a manifest needs apiVersion, kind and metadata.name (got {kind or '?'} {name or '?'})")
        namespace = None if kind in _CLUSTER_SCOPED else (str(meta["namespace"]) if meta.get("namespace") else None)
        return cls(str(manifest["apiVersion"]), kind, namespace, name)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Applied:
    """One object after a server-side apply: whether that apply created it, and the
    object as the server answered (managedFields included)."""

    id: ObjectId
    created: bool
    object: dict


class ApplyRejected(ActionError):
    """Applying `failed` did not work: the API server refused it (`by_server`, and
    `reason` is its message) or it could not be asked. `applied` are the objects applied
    before it, in order."""

    def __init__(self, message: str, failed: ObjectId, applied: list[Applied], *, reason: str = "",
                 by_server: bool = False) -> None:
        super().__init__(message)
        self.failed = failed
        self.applied = applied
        self.reason = reason or message
        self.by_server = by_server


class _NotFound(ActionError):
    """The object an action named is not there (404)."""


async def _each(instances: Sequence[Instance], act: Callable[[Instance], Awaitable[None]]) -> None:
    """Act on every instance, one after the other; then one ActionError naming every failure."""
    failures = []
    for instance in instances:
        try:
            await act(instance)
        except ActionError as exc:
            failures.append(str(exc))
    if failures:
        raise ActionError("; ".join(failures))
