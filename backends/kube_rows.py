"""Rows of the Kubernetes tables (`:pods`, `:deploy`, `:svc`, `:events`, `:ns`), with the
columns k9s users know. Pure functions of a domain object and `now`, like backends/rows.py.
"""

from __future__ import annotations

from datetime import datetime

from backends.model import ClusterEvent, Instance, KubeContext, KubeService, Namespace, RunState, WorkloadSpec
from backends.rows import HEALTH_TONE, STATE_TONE, Cell, Column, Tone, humanize_age

POD_COLUMNS: tuple[Column, ...] = (
    Column("namespace", "NAMESPACE"),
    Column("name", "NAME"),
    Column("ready", "READY"),
    Column("status", "STATUS"),
    Column("restarts", "RESTARTS"),
    Column("health", "HEALTH"),
    Column("ip", "IP"),
    Column("node", "NODE"),
    Column("age", "AGE", ticks=True),
)

# kubectl's STATUS words that mean trouble, whatever the phase says.
_BAD_STATUS = ("BackOff", "Err", "Error", "OOMKilled", "Failed", "Invalid", "Unknown", "Evicted")


def _status_tone(i: Instance) -> Tone:
    text = i.status_text
    if any(word in text for word in _BAD_STATUS) or text.startswith(("Init:Error", "ExitCode:", "Signal:")):
        return "error"
    if text == "Completed":
        return "muted"
    return STATE_TONE.get(i.state, "normal")


def pod_row(i: Instance, now: datetime) -> tuple[Cell, ...]:
    ready_tone: Tone = "ok" if i.containers_total and i.containers_ready == i.containers_total else "warn"
    if i.state == RunState.EXITED:
        ready_tone = "muted"
    return (
        Cell(i.workload.group, "info"),
        Cell(i.name),
        Cell(f"{i.containers_ready}/{i.containers_total}", ready_tone),
        Cell(i.status_text or str(i.state), _status_tone(i)),
        Cell(str(i.restarts), "warn" if i.restarts else "normal"),
        Cell(str(i.health), HEALTH_TONE[i.health]),
        Cell(i.ip or "-", "muted"),
        Cell(i.node or "-", "muted"),
        Cell(humanize_age(i.created_at, now)),
    )


SPEC_COLUMNS: tuple[Column, ...] = (
    Column("namespace", "NAMESPACE"),
    Column("name", "NAME"),
    Column("kind", "KIND"),
    Column("ready", "READY"),
    Column("updated", "UP-TO-DATE"),
    Column("available", "AVAILABLE"),
    Column("age", "AGE", ticks=True),
)


def spec_row(s: WorkloadSpec, now: datetime) -> tuple[Cell, ...]:
    settled = s.observed and s.ready == s.desired and s.updated == s.desired
    return (
        Cell(s.key.group, "info"),
        Cell(s.key.name),
        Cell("deploy" if s.kind == "Deployment" else "sts" if s.kind == "StatefulSet" else s.kind, "muted"),
        Cell(f"{s.ready}/{s.desired}", "ok" if settled and s.desired else "muted" if not s.desired else "warn"),
        Cell(str(s.updated)),
        Cell(str(s.available)),
        Cell(humanize_age(s.created_at, now)),
    )


KUBE_SERVICE_COLUMNS: tuple[Column, ...] = (
    Column("namespace", "NAMESPACE"),
    Column("name", "NAME"),
    Column("type", "TYPE"),
    Column("cluster_ip", "CLUSTER-IP"),
    Column("external_ip", "EXTERNAL-IP"),
    Column("ports", "PORTS"),
    Column("age", "AGE", ticks=True),
)


def kube_service_row(s: KubeService, now: datetime) -> tuple[Cell, ...]:
    return (
        Cell(s.namespace, "info"),
        Cell(s.name),
        Cell(s.type, "muted"),
        Cell(s.cluster_ip or "-"),
        Cell(", ".join(s.external_ips) or "-", "muted" if not s.external_ips else "normal"),
        Cell(" ".join(str(p) for p in s.ports) or "-"),
        Cell(humanize_age(s.created_at, now)),
    )


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("namespace", "NAMESPACE"),
    Column("last_seen", "LAST SEEN", ticks=True),
    Column("type", "TYPE"),
    Column("reason", "REASON"),
    Column("object", "OBJECT"),
    Column("count", "COUNT"),
    Column("message", "MESSAGE"),
)


def event_row(e: ClusterEvent, now: datetime) -> tuple[Cell, ...]:
    warning = e.type == "Warning"
    return (
        Cell(e.namespace, "info"),
        Cell(humanize_age(e.last_seen, now)),
        Cell(e.type, "warn" if warning else "muted"),
        Cell(e.reason, "warn" if warning else "normal"),
        Cell(f"{e.object_kind.lower()}/{e.object_name}"),
        Cell(str(e.count)),
        Cell(e.message),
    )


def event_order(e: ClusterEvent) -> tuple[float, str]:
    """Newest first, as k9s and `kubectl get events --sort-by` users read them."""
    stamp = e.last_seen.timestamp() if e.last_seen else 0.0
    return (-stamp, e.name)


NAMESPACE_COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME"),
    Column("status", "STATUS"),
    Column("age", "AGE", ticks=True),
)


def namespace_row(n: Namespace, now: datetime) -> tuple[Cell, ...]:
    return (
        Cell(n.name),
        Cell(n.phase, "ok" if n.phase == "Active" else "warn"),
        Cell(humanize_age(n.created_at, now)),
    )


CONTEXT_COLUMNS: tuple[Column, ...] = (
    Column("current", " "),
    Column("name", "CONTEXT"),
)


def context_row(c: KubeContext, _now: datetime) -> tuple[Cell, ...]:
    return (Cell("*" if c.current else "", "ok"), Cell(c.name, "ok" if c.current else "normal"))
