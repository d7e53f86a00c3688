"""kubectl-describe-like text for a Kubernetes object, and the same for a Docker container.

Describe is what a user opens when a row says CrashLoopBackOff: the answer is in a
container's last state, a probe, or an event, and it has to read at a glance. The
functions take the dicts the APIs serve (a Kubernetes object, `docker inspect`) and
return plain text; they are pure, so they are tested densely and any view can show them.

Environment values whose names look secret are masked, as are passwords in URLs: a
describe is often read on a shared screen.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from backends.model import ClusterEvent
from backends.rows import humanize_age, utcnow

SECRET_MASK = "••••••"
NONE = "<none>"

# Substrings that make a name secret wherever they appear (DBPASSWORD, GITHUB_TOKEN)…
_SECRET_SUBSTRINGS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE", "APIKEY")
# …and words that do only as a whole part of the name (API_KEY yes, KEYCLOAK_URL no).
_SECRET_PARTS = frozenset({"KEY", "PASS", "AUTH", "DSN", "SALT", "COOKIE"})
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)([^@/\s]+)(@)")
_DOCKER_FRACTION = re.compile(r"(\.\d{6})\d+")
# Docker keeps up to 4 KiB of each probe's output; the tail says what failed.
_PROBE_OUTPUT_LINES = 5


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says its value is a secret."""
    upper = name.upper()
    if any(word in upper for word in _SECRET_SUBSTRINGS):
        return True
    return not _SECRET_PARTS.isdisjoint(re.split(r"[^A-Z0-9]+", upper))


def mask_env_value(name: str, value: str) -> str:
    """The value to show for `name=value`: masked if the name looks secret, and with
    any `scheme://user:password@` password masked either way."""
    if value and is_secret_name(name):
        return SECRET_MASK
    return _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}\g<3>", value)


# ---- layout: kubectl's tab-aligned "Key:  value" blocks ------------------------------------


class _Lines:
    """Collects `Key: value` rows and free lines; `render` aligns the values of each run
    of consecutive rows, as kubectl's tabwriter does."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, str | None]] = []

    def kv(self, level: int, key: str, value: object) -> None:
        text = str(value) if value is not None and value != "" else ""
        first, *rest = text.split("\n") if text else [""]
        self._rows.append((f"{'  ' * level}{key}:", first))
        self._rows.extend(("", line) for line in rest)

    def values(self, level: int, key: str, values: Iterable[str]) -> None:
        """A key with one value per line (labels, IPs), or `<none>`."""
        items = list(values)
        self.kv(level, key, items[0] if items else NONE)
        self._rows.extend(("", item) for item in items[1:])

    def head(self, level: int, text: str) -> None:
        self._rows.append((f"{'  ' * level}{text}", None))

    def table(self, level: int, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        body = [[" ".join(str(cell).split()) for cell in row] for row in rows]
        grid = [list(headers), ["-" * len(h) for h in headers], *body]
        widths = [max(len(row[i]) for row in grid) for i in range(len(headers))]
        for row in grid:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            self.head(level, "  ".join(cells).rstrip())

    def render(self) -> str:
        out: list[str] = []
        rows, i = self._rows, 0
        while i < len(rows):
            if rows[i][1] is None:
                out.append(rows[i][0])
                i += 1
                continue
            # A run ends at a free line, or where a shallower key closes a nested section
            # (so `QoS Class` does not align with the volume names above it).
            indent = _indent(rows[i][0])
            end = i + 1
            while end < len(rows) and rows[end][1] is not None and (
                not rows[end][0] or _indent(rows[end][0]) >= indent
            ):
                end += 1
            width = max(len(key) for key, _ in rows[i:end]) + 2
            out.extend(f"{key.ljust(width)}{value}".rstrip() for key, value in rows[i:end])
            i = end
        return "\n".join(out) + "\n"


def _indent(key: str) -> int:
    return len(key) - len(key.lstrip(" "))


# ---- small readers ---------------------------------------------------------------------


def _parse_time(value: object) -> datetime | None:
    """A Kubernetes or Docker timestamp (Docker's have nanoseconds; its "never" is year 1)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = _DOCKER_FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _timestamp(value: object) -> str:
    """RFC 1123 with a numeric zone, as kubectl prints times."""
    parsed = _parse_time(value)
    if parsed is None:
        return str(value) if value else NONE
    return parsed.strftime("%a, %d %b %Y %H:%M:%S %z")


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _labels(labels: object) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(_map(labels).items())]


def _annotations(annotations: object) -> list[str]:
    return [f"{k}: {v}" for k, v in sorted(_map(annotations).items())]


def _controller(meta: Mapping[str, Any]) -> str | None:
    for ref in _list(meta.get("ownerReferences")):
        if _map(ref).get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None


def _selector(selector: Mapping[str, Any]) -> str:
    """A label selector as kubectl writes it: `app=web,tier in (a,b)`."""
    parts = [f"{k}={v}" for k, v in sorted(_map(selector.get("matchLabels")).items())]
    for expr in _list(selector.get("matchExpressions")):
        key, op, values = expr.get("key"), str(expr.get("operator", "")), _list(expr.get("values"))
        if op in ("Exists", "DoesNotExist"):
            parts.append(key if op == "Exists" else f"!{key}")
        else:
            parts.append(f"{key} {op.lower()} ({','.join(map(str, values))})")
    return ",".join(parts) or NONE


def _identity(w: _Lines, meta: Mapping[str, Any]) -> None:
    w.kv(0, "Name", meta.get("name", ""))
    if meta.get("namespace"):
        w.kv(0, "Namespace", meta["namespace"])


def _labels_and_annotations(w: _Lines, level: int, meta: Mapping[str, Any]) -> None:
    w.values(level, "Labels", _labels(meta.get("labels")))
    w.values(level, "Annotations", _annotations(meta.get("annotations")))


# ---- containers ---------------------------------------------------------------------------


def _probe(probe: Mapping[str, Any]) -> str:
    if "httpGet" in probe:
        get = _map(probe["httpGet"])
        scheme = str(get.get("scheme") or "HTTP").lower()
        target = f"http-get {scheme}://{get.get('host', '')}:{get.get('port', '')}{get.get('path', '')}"
    elif "tcpSocket" in probe:
        sock = _map(probe["tcpSocket"])
        target = f"tcp-socket {sock.get('host', '')}:{sock.get('port', '')}"
    elif "exec" in probe:
        target = f"exec [{' '.join(map(str, _list(_map(probe['exec']).get('command'))))}]"
    elif "grpc" in probe:
        grpc = _map(probe["grpc"])
        target = f"grpc <pod>:{grpc.get('port', '')} {grpc.get('service', '')}".rstrip()
    else:
        target = "unknown"
    return (
        f"{target} delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s"
        f" period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)}"
        f" #failure={probe.get('failureThreshold', 3)}"
    )


def _env_value(env: Mapping[str, Any]) -> str:
    name = str(env.get("name", ""))
    if "value" in env:
        return mask_env_value(name, str(env.get("value") or ""))
    source = _map(env.get("valueFrom"))
    if "secretKeyRef" in source:
        ref = _map(source["secretKeyRef"])
        return f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>"
    if "configMapKeyRef" in source:
        ref = _map(source["configMapKeyRef"])
        return f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>"
    if "fieldRef" in source:
        ref = _map(source["fieldRef"])
        return f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})"
    if "resourceFieldRef" in source:
        ref = _map(source["resourceFieldRef"])
        return f"{ref.get('resource')} ({ref.get('containerName') or 'this container'})"
    return ""


def _state(w: _Lines, level: int, key: str, state: Mapping[str, Any]) -> None:
    """One of a container's `state`/`lastState` (running, waiting or terminated)."""
    if "running" in state:
        w.kv(level, key, "Running")
        w.kv(level + 1, "Started", _timestamp(_map(state["running"]).get("startedAt")))
    elif "terminated" in state:
        term = _map(state["terminated"])
        w.kv(level, key, "Terminated")
        w.kv(level + 1, "Reason", term.get("reason", ""))
        if term.get("message"):
            w.kv(level + 1, "Message", term["message"])
        w.kv(level + 1, "Exit Code", term.get("exitCode", ""))
        if term.get("signal"):
            w.kv(level + 1, "Signal", term["signal"])
        w.kv(level + 1, "Started", _timestamp(term.get("startedAt")))
        w.kv(level + 1, "Finished", _timestamp(term.get("finishedAt")))
    else:
        waiting = _map(state.get("waiting"))
        w.kv(level, key, "Waiting")
        if waiting.get("reason"):
            w.kv(level + 1, "Reason", waiting["reason"])
        if waiting.get("message"):
            w.kv(level + 1, "Message", waiting["message"])


def _containers(
    w: _Lines, level: int, specs: Iterable[Mapping[str, Any]], statuses: Iterable[Mapping[str, Any]] | None
) -> None:
    """Containers of a pod (with their statuses) or of a pod template (`statuses` None)."""
    by_name = {s.get("name"): s for s in statuses or ()}
    inner = level + 1
    for spec in specs:
        status = by_name.get(spec.get("name"))
        w.head(level, f"{spec.get('name')}:")
        if status and status.get("containerID"):
            w.kv(inner, "Container ID", status["containerID"])
        w.kv(inner, "Image", spec.get("image") or NONE)
        if status and status.get("imageID"):
            w.kv(inner, "Image ID", status["imageID"])
        ports = [
            f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" + (f" ({p['name']})" if p.get("name") else "")
            for p in _list(spec.get("ports"))
        ]
        w.kv(inner, "Ports" if len(ports) > 1 else "Port", ", ".join(ports) or NONE)
        for key, title in (("command", "Command"), ("args", "Args")):
            if spec.get(key):
                w.values(inner, title, map(str, _list(spec[key])))
        if status is not None:
            _state(w, inner, "State", _map(status.get("state")))
            if _map(status.get("lastState")):
                _state(w, inner, "Last State", _map(status["lastState"]))
            w.kv(inner, "Ready", "True" if status.get("ready") else "False")
            w.kv(inner, "Restart Count", status.get("restartCount", 0))
        resources = _map(spec.get("resources"))
        for key, title in (("limits", "Limits"), ("requests", "Requests")):
            if _map(resources.get(key)):
                w.head(inner, f"{title}:")
                for name, amount in sorted(_map(resources[key]).items()):
                    w.kv(inner + 1, name, amount)
        for key, title in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"), ("startupProbe", "Startup")):
            if _map(spec.get(key)):
                w.kv(inner, title, _probe(_map(spec[key])))
        env_from = _list(spec.get("envFrom"))
        if env_from:
            w.head(inner, "Environment Variables from:")
            for source in env_from:
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                ref = _map(source.get("configMapRef") or source.get("secretRef"))
                prefix = f" (prefix {source['prefix']})" if source.get("prefix") else ""
                optional = "true" if ref.get("optional") else "false"
                w.kv(inner + 1, ref.get("name", ""), f"{kind}{prefix}  Optional: {optional}")
        env = _list(spec.get("env"))
        if env:
            w.head(inner, "Environment:")
            for var in env:
                w.kv(inner + 1, var.get("name", ""), _env_value(_map(var)))
        else:
            w.kv(inner, "Environment", NONE)
        mounts = _list(spec.get("volumeMounts"))
        if mounts:
            w.head(inner, "Mounts:")
        else:
            w.kv(inner, "Mounts", NONE)
        for mount in mounts:
            sub_path = f" [subPath {mount['subPath']}]" if mount.get("subPath") else ""
            mode = "ro" if mount.get("readOnly") else "rw"
            w.head(inner + 1, f"{mount.get('mountPath')} from {mount.get('name')} ({mode}){sub_path}")


def _volumes(w: _Lines, level: int, volumes: Iterable[Mapping[str, Any]]) -> None:
    items = list(volumes)
    if not items:
        w.kv(level, "Volumes", NONE)
        return
    w.head(level, "Volumes:")
    for volume in items:
        kind, detail = next(((k, v) for k, v in volume.items() if k != "name"), ("", None))
        extra = ""
        if isinstance(detail, Mapping):
            name = detail.get("claimName") or detail.get("secretName") or detail.get("name") or detail.get("path")
            extra = f" ({name})" if name else ""
        w.kv(level + 1, volume.get("name", ""), f"{kind[:1].upper()}{kind[1:]}{extra}")


def _conditions(w: _Lines, conditions: Iterable[Mapping[str, Any]], with_reason: bool) -> None:
    items = list(conditions)
    if not items:
        w.kv(0, "Conditions", NONE)
        return
    w.head(0, "Conditions:")
    headers = ("Type", "Status", "Reason") if with_reason else ("Type", "Status")
    rows = [
        (str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason", "")))[: len(headers)]
        for c in items
    ]
    w.table(1, headers, rows)


# ---- events -------------------------------------------------------------------------------


def _event_age(event: ClusterEvent, now: datetime) -> str:
    last = event.last_seen or event.first_seen
    if event.count > 1 and event.first_seen is not None:
        return f"{humanize_age(last, now)} (x{event.count} over {humanize_age(event.first_seen, now)})"
    return humanize_age(last, now)


def _seen_at(event: ClusterEvent) -> float:
    seen = event.last_seen or event.first_seen
    return seen.timestamp() if seen else 0.0


def _events(w: _Lines, meta: Mapping[str, Any], kind: str, events: Iterable[ClusterEvent], now: datetime) -> None:
    """Only the object's own events, oldest first, as kubectl lists them."""
    name, namespace = meta.get("name"), meta.get("namespace")
    mine = [
        e for e in events
        if e.object_kind == kind and e.object_name == name
        and (not namespace or not e.namespace or e.namespace == namespace)
    ]
    if not mine:
        w.kv(0, "Events", NONE)
        return
    mine.sort(key=_seen_at)
    w.head(0, "Events:")
    w.table(1, ("Type", "Reason", "Age", "From", "Message"),
            [(e.type, e.reason, _event_age(e, now), e.component, e.message) for e in mine])


# ---- kinds --------------------------------------------------------------------------------


def _describe_pod(w: _Lines, obj: Mapping[str, Any]) -> None:
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    _identity(w, meta)
    if "priority" in spec:
        w.kv(0, "Priority", spec["priority"])
    if spec.get("serviceAccountName"):
        w.kv(0, "Service Account", spec["serviceAccountName"])
    node, host_ip = spec.get("nodeName"), status.get("hostIP")
    w.kv(0, "Node", f"{node}/{host_ip}" if node and host_ip else node or NONE)
    w.kv(0, "Start Time", _timestamp(status.get("startTime")))
    _labels_and_annotations(w, 0, meta)
    phase = str(status.get("phase") or "Unknown")
    w.kv(0, "Status", "Terminating" if meta.get("deletionTimestamp") else phase)
    for key in ("reason", "message"):
        if status.get(key):
            w.kv(0, key.capitalize(), status[key])
    w.kv(0, "IP", status.get("podIP") or NONE)
    if (controller := _controller(meta)) is not None:
        w.kv(0, "Controlled By", controller)
    if _list(spec.get("initContainers")):
        w.head(0, "Init Containers:")
        _containers(w, 1, _list(spec["initContainers"]), _list(status.get("initContainerStatuses")))
    w.head(0, "Containers:")
    _containers(w, 1, _list(spec.get("containers")), _list(status.get("containerStatuses")))
    _conditions(w, _list(status.get("conditions")), with_reason=False)
    _volumes(w, 0, _list(spec.get("volumes")))
    if status.get("qosClass"):
        w.kv(0, "QoS Class", status["qosClass"])
    w.values(0, "Node-Selectors", _labels(spec.get("nodeSelector")))


def _pod_template(w: _Lines, template: Mapping[str, Any]) -> None:
    meta, spec = _map(template.get("metadata")), _map(template.get("spec"))
    w.head(0, "Pod Template:")
    _labels_and_annotations(w, 1, meta)
    if spec.get("serviceAccountName"):
        w.kv(1, "Service Account", spec["serviceAccountName"])
    if _list(spec.get("initContainers")):
        w.head(1, "Init Containers:")
        _containers(w, 2, _list(spec["initContainers"]), None)
    w.head(1, "Containers:")
    _containers(w, 2, _list(spec.get("containers")), None)
    _volumes(w, 1, _list(spec.get("volumes")))


def _describe_workload(w: _Lines, obj: Mapping[str, Any]) -> None:
    """Deployment and StatefulSet: what is wanted, what is there, and why not."""
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    kind = obj.get("kind")
    _identity(w, meta)
    w.kv(0, "CreationTimestamp", _timestamp(meta.get("creationTimestamp")))
    _labels_and_annotations(w, 0, meta)
    w.kv(0, "Selector", _selector(_map(spec.get("selector"))))
    desired = spec.get("replicas", 1)
    counts = [
        f"{desired} desired",
        f"{status.get('updatedReplicas', 0)} updated",
        f"{status.get('replicas', 0)} total",
        f"{status.get('readyReplicas', 0)} ready",
        f"{status.get('availableReplicas', 0)} available",
    ]
    if kind == "Deployment":
        counts.append(f"{status.get('unavailableReplicas', 0)} unavailable")
    w.kv(0, "Replicas", " | ".join(counts))
    if kind == "Deployment":
        strategy = _map(spec.get("strategy"))
        w.kv(0, "StrategyType", strategy.get("type", "RollingUpdate"))
        w.kv(0, "MinReadySeconds", spec.get("minReadySeconds", 0))
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = _map(strategy.get("rollingUpdate"))
            w.kv(0, "RollingUpdateStrategy", f"{rolling.get('maxUnavailable', '25%')} max unavailable, "
                                             f"{rolling.get('maxSurge', '25%')} max surge")
        if spec.get("paused"):
            w.kv(0, "Paused", "true")
    else:
        strategy = _map(spec.get("updateStrategy"))
        w.kv(0, "Update Strategy", strategy.get("type", "RollingUpdate"))
        if "partition" in _map(strategy.get("rollingUpdate")):
            w.kv(1, "Partition", strategy["rollingUpdate"]["partition"])
        w.kv(0, "Pod Management Policy", spec.get("podManagementPolicy", "OrderedReady"))
        if spec.get("serviceName"):
            w.kv(0, "Service Name", spec["serviceName"])
    _pod_template(w, _map(spec.get("template")))
    if kind == "StatefulSet":
        claims = _list(spec.get("volumeClaimTemplates"))
        if claims:
            w.head(0, "Volume Claims:")
        for claim in claims:
            claim_spec = _map(claim.get("spec"))
            w.kv(1, "Name", _map(claim.get("metadata")).get("name", ""))
            w.kv(1, "StorageClass", claim_spec.get("storageClassName") or NONE)
            w.kv(1, "Capacity", _map(_map(claim_spec.get("resources")).get("requests")).get("storage", NONE))
            w.kv(1, "Access Modes", ", ".join(_list(claim_spec.get("accessModes"))) or NONE)
    _conditions(w, _list(status.get("conditions")), with_reason=True)


def _describe_service(w: _Lines, obj: Mapping[str, Any]) -> None:
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    _identity(w, meta)
    _labels_and_annotations(w, 0, meta)
    w.values(0, "Selector", [",".join(_labels(spec.get("selector")))] if spec.get("selector") else [])
    service_type = spec.get("type", "ClusterIP")
    w.kv(0, "Type", service_type)
    if service_type == "ExternalName":
        w.kv(0, "External Name", spec.get("externalName", ""))
    if spec.get("ipFamilyPolicy"):
        w.kv(0, "IP Family Policy", spec["ipFamilyPolicy"])
    if spec.get("ipFamilies"):
        w.kv(0, "IP Families", ",".join(spec["ipFamilies"]))
    w.kv(0, "IP", spec.get("clusterIP") or NONE)
    if spec.get("clusterIPs"):
        w.kv(0, "IPs", ",".join(spec["clusterIPs"]))
    if spec.get("externalIPs"):
        w.kv(0, "External IPs", ",".join(spec["externalIPs"]))
    ingress = [i.get("ip") or i.get("hostname") for i in _list(_map(status.get("loadBalancer")).get("ingress"))]
    if ingress:
        w.kv(0, "LoadBalancer Ingress", ", ".join(map(str, ingress)))
    for port in _list(spec.get("ports")):
        name, protocol = port.get("name") or "<unset>", port.get("protocol", "TCP")
        w.kv(0, "Port", f"{name}  {port.get('port')}/{protocol}")
        w.kv(0, "TargetPort", f"{port.get('targetPort', port.get('port'))}/{protocol}")
        if port.get("nodePort"):
            w.kv(0, "NodePort", f"{name}  {port['nodePort']}/{protocol}")
    w.kv(0, "Session Affinity", spec.get("sessionAffinity", "None"))
    if service_type in ("NodePort", "LoadBalancer"):
        w.kv(0, "External Traffic Policy", spec.get("externalTrafficPolicy", "Cluster"))


def _secret_sizes(data: Mapping[str, Any], encoded: bool) -> dict[str, str]:
    """A Secret's keys with their sizes only, as kubectl describe shows them."""
    sizes: dict[str, str] = {}
    for key, value in data.items():
        raw = str(value or "").encode()
        if encoded:
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                pass
        sizes[key] = f"{len(raw)} bytes"
    return sizes


def _describe_generic(w: _Lines, obj: Mapping[str, Any]) -> None:
    meta = _map(obj.get("metadata"))
    _identity(w, meta)
    _labels_and_annotations(w, 0, meta)
    w.kv(0, "API Version", obj.get("apiVersion", ""))
    w.kv(0, "Kind", obj.get("kind", ""))
    w.kv(0, "CreationTimestamp", _timestamp(meta.get("creationTimestamp")))
    if (controller := _controller(meta)) is not None:
        w.kv(0, "Controlled By", controller)
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if obj.get("kind") == "Secret" and key in ("data", "stringData") and isinstance(value, Mapping):
            value = _secret_sizes(value, encoded=key == "data")
        title = key[:1].upper() + key[1:]
        if not isinstance(value, Mapping | list):
            w.kv(0, title, value)
        elif not value:
            w.kv(0, title, NONE)
        else:
            w.head(0, f"{title}:")
            dump = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10**6)
            for line in dump.rstrip("\n").split("\n"):
                w.head(1, line)


def describe_object(
    obj: Mapping[str, Any], events: Sequence[ClusterEvent] = (), *, now: datetime | None = None
) -> str:
    """kubectl-describe-like text for a Kubernetes object as the API serves it.

    `events` may hold every event of the namespace: only the object's own are listed,
    their ages relative to `now` (the current time if None)."""
    w = _Lines()
    kind = str(obj.get("kind") or "")
    if kind == "Pod":
        _describe_pod(w, obj)
    elif kind in ("Deployment", "StatefulSet"):
        _describe_workload(w, obj)
    elif kind == "Service":
        _describe_service(w, obj)
    else:
        _describe_generic(w, obj)
    _events(w, _map(obj.get("metadata")), kind, events, now or utcnow())
    return w.render()


# ---- Docker -------------------------------------------------------------------------------


def _docker_ports(ports: Mapping[str, Any]) -> list[str]:
    """`0.0.0.0:8080->80/tcp` for published ports, `443/tcp` for exposed ones."""
    out: list[str] = []
    for container_port, bindings in sorted(ports.items()):
        published = [
            f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{container_port}" for b in _list(bindings)
        ]
        out.extend(published or [container_port])
    return out


def describe_container(inspect: Mapping[str, Any]) -> str:
    """Describe-like text for a `docker inspect` dict of a container."""
    w = _Lines()
    config, state = _map(inspect.get("Config")), _map(inspect.get("State"))
    host, network = _map(inspect.get("HostConfig")), _map(inspect.get("NetworkSettings"))
    w.kv(0, "Name", str(inspect.get("Name", "")).lstrip("/"))
    w.kv(0, "ID", str(inspect.get("Id", ""))[:12])
    w.kv(0, "Image", config.get("Image") or NONE)
    if inspect.get("Image"):
        w.kv(0, "Image ID", inspect["Image"])
    w.kv(0, "Created", _timestamp(inspect.get("Created")))
    command = [str(inspect.get("Path") or ""), *map(str, _list(inspect.get("Args")))]
    if command[0]:
        w.kv(0, "Command", " ".join(command))
    w.kv(0, "State", state.get("Status", "unknown"))
    w.kv(1, "Exit Code", state.get("ExitCode", 0))
    w.kv(1, "OOMKilled", "true" if state.get("OOMKilled") else "false")
    if state.get("Error"):
        w.kv(1, "Error", state["Error"])
    w.kv(1, "Started", _timestamp(state.get("StartedAt")))
    if _parse_time(state.get("FinishedAt")) is not None:
        w.kv(1, "Finished", _timestamp(state["FinishedAt"]))
    health = _map(state.get("Health"))
    if health:
        w.kv(0, "Health", health.get("Status", "unknown"))
        w.kv(1, "Failing Streak", health.get("FailingStreak", 0))
        probes = _list(health.get("Log"))[-3:]
        if probes:
            w.head(1, "Last Probes:")
        for probe in probes:
            w.head(2, f"{_timestamp(probe.get('Start'))}  exit {probe.get('ExitCode')}")
            output = [line.rstrip() for line in str(probe.get("Output") or "").strip().splitlines()]
            for line in output[-_PROBE_OUTPUT_LINES:] or ["(no output)"]:
                w.head(3, line)
    w.kv(0, "Restart Count", inspect.get("RestartCount", 0))
    policy = _map(host.get("RestartPolicy"))
    if policy.get("Name"):
        retries = f" (max {policy['MaximumRetryCount']})" if policy.get("MaximumRetryCount") else ""
        w.kv(0, "Restart Policy", f"{policy['Name']}{retries}")
    w.values(0, "Ports", _docker_ports(_map(network.get("Ports"))))
    mounts = [
        f"{m.get('Destination')} from {m.get('Type', 'volume')} {m.get('Name') or m.get('Source')}"
        f" ({'rw' if m.get('RW', True) else 'ro'})"
        for m in _list(inspect.get("Mounts"))
    ]
    w.values(0, "Mounts", mounts)
    networks = _map(network.get("Networks"))
    if networks:
        w.head(0, "Networks:")
        for name, net in sorted(networks.items()):
            aliases = [a for a in _list(_map(net).get("Aliases")) if a]
            ip = _map(net).get("IPAddress") or NONE
            w.kv(1, name, ip + (f" (aliases: {', '.join(aliases)})" if aliases else ""))
    else:
        w.kv(0, "Networks", NONE)
    w.values(0, "Labels", _labels(config.get("Labels")))
    env = [str(item).partition("=") for item in _list(config.get("Env"))]
    if env:
        w.head(0, "Environment:")
        for name, _, value in env:
            w.kv(1, name, mask_env_value(name, value))
    else:
        w.kv(0, "Environment", NONE)
    return w.render()
