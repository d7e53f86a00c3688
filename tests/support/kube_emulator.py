"""An emulated Kubernetes API server for tests, spoken to over real HTTP by real kr8s.

No k3s/kind/kube-apiserver can run on these machines (see ../shared/TESTING.md), so the
Kubernetes adapter is tested against this in-memory API server instead. It listens on
``http://127.0.0.1:<random port>``; point kr8s at it exactly as a user would::

    async def test_something(kube):                    # the `kube` fixture below
        kube.add_deployment("default", "web", replicas=2)
        api = await kr8s.asyncio.api(kubeconfig=kube.kubeconfig)   # or url=kube.url
        pods = [p async for p in api.get("pods", namespace="default")]

The fixture also sets ``KUBECONFIG`` to a kubeconfig file pointing at the emulator, so a
bare ``kr8s.asyncio.api()`` talks to it too (and never to a developer's real cluster).

Built on kmock 0.8
------------------
``KubeEmulator`` subclasses ``kmock.KubernetesEmulator`` and keeps what helps from it:
the kmock request parsing and request log (``list(kube)``, ``kube.requests_to(...)``,
kmock's DSL filters), kmock's DSL reactions (``kube['get /api/v1/pods'] << 418`` still
overrides anything below), kmock's ``ObjectsArray`` as the object store (so
``kube.objects['v1/pods', 'default', 'web'].history`` shows every stored version),
kmock's ``Server`` for listening, and kmock's error accumulation (an unexpected exception
inside the emulator is rendered as a 500 ``Status`` *and* fails the test at teardown).
kmock's built-in fallback reactions are not registered: one router serves every request
that no user-defined kmock reaction took.

kmock 0.8 gaps closed here (all seen with kr8s 0.20.15):

* Trailing slashes: kr8s asks for ``/version/``, ``/api/``, ``/apis/``; the router splits
  paths on ``/`` and ignores empty segments, so both forms are served.
* Discovery: the core group is reported as ``v1`` (``/api`` -> APIVersions, ``/api/v1``
  -> ``groupVersion: v1``), never ``/v1``; the resource table is this module's own
  (``BUILTIN_RESOURCES``: pods, services, namespaces, events, configmaps, secrets, pvcs,
  deployments, statefulsets, replicasets, ...), subresources (``pods/log``,
  ``pods/portforward``, ``deployments/scale``, ...) carry their real kinds, and kmock's
  bundled discovery (with ``metrics.k8s.io`` pods) is never loaded. ``/version`` reports a
  k3s 1.31 that kr8s supports (kmock's 1.26 makes kr8s warn).
* Metadata: every object gets ``uid``, ``creationTimestamp`` (RFC3339 ``Z``), ``namespace``
  (namespaced kinds), ``resourceVersion`` from one global counter (strings), ``generation``
  for workloads (bumped when ``spec`` changes); no-op writes keep the resourceVersion.
* Selectors: ``labelSelector`` (``=``, ``==``, ``!=``, ``key``, ``!key``, ``in``, ``notin``,
  ``<``/``>``) and ``fieldSelector`` (``=``, ``==``, ``!=``; ``metadata.name``,
  ``metadata.namespace`` everywhere, ``status.phase``/``spec.nodeName``/... on pods,
  ``involvedObject.*``/``reason``/``type`` on events; an unsupported field is a 400 like
  the real server) on list, watch and deletecollection. Lists paginate (``limit`` and
  ``continue``) and carry ``metadata.resourceVersion``; list items omit kind/apiVersion
  like the real server.
* Watch: newline-delimited JSON events after a ``resourceVersion`` replayed from retained
  history (or synthetic ADDED events for all objects when none is given), filtered by
  namespace and selectors with the real server's transitions (an object leaving a
  selector is reported as DELETED, entering it as ADDED); ``timeoutSeconds``,
  ``allowWatchBookmarks`` (``kube.send_bookmarks()``), ``sendInitialEvents``;
  ``expire_history()`` makes older versions answer ``ERROR``/410 ``Expired`` (or an HTTP
  410); ``cut_watches()`` ends open streams server-side.
* Writes: PUT (replace, optimistic concurrency 409), PATCH by content type
  (merge-patch, strategic-merge-patch with merge keys and ``$patch`` directives, RFC 6902
  JSON patch, server-side apply with ``fieldManager``/``force``, ``managedFields``,
  conflicts and field removal), ``/status`` and ``/scale`` subresources, finalizers,
  ``dryRun=All``, deletecollection, owner-reference cascade, namespace deletion cascade.
* ``pods/NAME/log`` serves what the test set (``tailLines``, ``previous``, ``timestamps``,
  ``sinceSeconds``, ``limitBytes``, ``follow``) with the real 400 errors (container
  required, waiting to start, no previous container).
* Port-forward websocket (see TESTING.md) relayed to a TCP target the test registers,
  errors on the error channel.
* kmock's request parser raises on ``GET /api/v1/namespaces`` (listing namespaces) before
  any handler runs; ``__call__`` falls back to this module's path parser for such requests.
* kmock's ``Response(headers=...)`` stickiness is avoided: every answer here is a fresh
  raw ``aiohttp.web`` response.
* Test controls: ``fail()``, ``delay()``, ``stop()``/``start()`` on the same port,
  ``require_token``, ``cut_logs()``, ``break_portforwards()``, ``wait_for_watches()``.
* Health as the kubelet and controllers report it: ``set_container_state()`` (waiting,
  terminated, running; lastState; pod conditions following), ``set_pod_conditions()``,
  ``set_workload_conditions()`` (a Deployment's Progressing/Available).

Deliberate simplifications: no controllers (a Deployment makes no pods; tests add pods
with ``add_pod(owner=...)`` and set their status), deletion is immediate unless the object
has finalizers, strategic merge knows the common merge keys only, exec/attach are not
emulated, events.k8s.io/v1 events are a separate store from core/v1 events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import re
import secrets
import struct
import traceback
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import kmock
import pytest
import pytest_asyncio
import yaml
from kmock._internal.rendering import StreamingError as _KmockStreamingError  # kmock's own unwrapping

__all__ = [
    "BUILTIN_RESOURCES",
    "Fault",
    "KubeEmulator",
    "ResourceType",
    "kube",
]

# --------------------------------------------------------------------------------------
# Resource table (discovery + storage keys)
# --------------------------------------------------------------------------------------

VERBS_ALL = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_generation: bool = False
    verbs: tuple[str, ...] = VERBS_ALL

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def ref(self) -> kmock.resource:
        """The key used in kmock's ``objects`` array."""
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool = True,
        short: tuple[str, ...] = (), cats: tuple[str, ...] = (), subs: tuple[str, ...] = (),
        gen: bool = False) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, short, cats, subs, gen)


BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _rt("", "v1", "pods", "Pod", True, ("po",), ("all",),
        ("status", "log", "exec", "portforward", "attach", "binding", "eviction",
         "ephemeralcontainers", "proxy")),
    _rt("", "v1", "services", "Service", True, ("svc",), ("all",), ("status", "proxy")),
    _rt("", "v1", "namespaces", "Namespace", False, ("ns",), (), ("status", "finalize")),
    _rt("", "v1", "events", "Event", True, ("ev",)),
    _rt("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _rt("", "v1", "secrets", "Secret", True),
    _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), (), ("status",)),
    _rt("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), (), ("status",)),
    _rt("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _rt("", "v1", "nodes", "Node", False, ("no",), (), ("status", "proxy")),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _rt("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("all",), ("scale", "status"), True),
    _rt("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("all",), ("scale", "status"), True),
    _rt("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("all",), ("scale", "status"), True),
    _rt("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("all",), ("status",), True),
    _rt("batch", "v1", "jobs", "Job", True, (), ("all",), ("status",), True),
    _rt("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
)

# Subresource -> (group, version, kind or None for the parent's kind, verbs)
_SUBRESOURCE_INFO: dict[str, tuple[str | None, str | None, str | None, tuple[str, ...]]] = {
    "status": (None, None, None, ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "log": (None, None, None, ("get",)),
    "exec": (None, None, "PodExecOptions", ("create", "get")),
    "attach": (None, None, "PodAttachOptions", ("create", "get")),
    "portforward": (None, None, "PodPortForwardOptions", ("create", "get")),
    "proxy": (None, None, None, ("create", "delete", "get", "patch", "update")),
    "binding": (None, None, "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "ephemeralcontainers": (None, None, None, ("get", "patch", "update")),
    "finalize": (None, None, None, ("update",)),
}

# Field selectors the real server accepts, beyond metadata.name / metadata.namespace.
_FIELD_LABELS: dict[str, set[str]] = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "namespaces": {"status.phase"},
    "secrets": {"type"},
    "nodes": {"spec.unschedulable"},
    "replicasets": {"status.replicas"},
}
_FIELD_ALIASES = {"source": "source.component"}

_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
    422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
    504: "Timeout",
}

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_END = object()  # stream terminator put into subscriber queues


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_nano() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _parse_time(value: str) -> dt.datetime:
    value = value.strip().replace("Z", "+00:00")
    if "." in value:  # trim nanoseconds to microseconds
        head, _, tail = value.partition(".")
        digits = re.match(r"\d+", tail)
        rest = tail[digits.end():] if digits else tail
        value = f"{head}.{(digits.group(0) if digits else '0')[:6]}{rest}"
    return dt.datetime.fromisoformat(value)


def _truthy(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes") if value is not None else False


class ApiError(Exception):
    """An expected API failure, answered as a Kubernetes ``Status`` (never logged as a bug)."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" not found',
                    details={"name": name, "group": rt.group, "kind": rt.plural} if rt.group
                    else {"name": name, "kind": rt.plural})


def _no_such_path() -> ApiError:
    return ApiError(404, "the server could not find the requested resource",
                    details={"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


# --------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------

_LABEL_TERM = re.compile(
    r"""^\s*(?:
        !\s*(?P<notkey>[A-Za-z0-9_./-]+)
      | (?P<key>[A-Za-z0-9_./-]+)\s*(?:
            (?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)
          | (?P<setop>in|notin)\s*\(\s*(?P<values>[^()]*)\)
          | (?P<cmp>[<>])\s*(?P<number>-?\d+)
        )?
    )\s*$""",
    re.VERBOSE,
)


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> list[tuple[str, str, Any]]:
    """``"app=web,tier in (a,b),!legacy"`` -> ``[(key, op, value), ...]``; ApiError 400 if bad."""
    requirements: list[tuple[str, str, Any]] = []
    for term in _split_terms(selector or ""):
        match = _LABEL_TERM.match(term)
        if not match:
            raise ApiError(400, f"unable to parse requirement: {term!r}: invalid label selector")
        if match["notkey"]:
            requirements.append((match["notkey"], "!", None))
        elif match["op"]:
            requirements.append((match["key"], "!=" if match["op"] == "!=" else "=", match["value"]))
        elif match["setop"]:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            requirements.append((match["key"], match["setop"], values))
        elif match["cmp"]:
            requirements.append((match["key"], match["cmp"], int(match["number"])))
        else:
            requirements.append((match["key"], "exists", None))
    return requirements


def match_labels(requirements: list[tuple[str, str, Any]], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, value in requirements:
        present = key in labels
        actual = labels.get(key)
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op == "=" and (not present or actual != value):
            return False
        if op == "!=" and present and actual == value:
            return False
        if op == "in" and (not present or actual not in value):
            return False
        if op == "notin" and present and actual in value:
            return False
        if op in ("<", ">"):
            try:
                number = int(actual) if actual is not None else None
            except ValueError:
                return False
            if number is None or (op == "<" and not number < value) or (op == ">" and not number > value):
                return False
    return True


def parse_field_selector(selector: str | None, rt: ResourceType) -> list[tuple[str, str, str]]:
    requirements: list[tuple[str, str, str]] = []
    allowed = {"metadata.name", "metadata.namespace"} | _FIELD_LABELS.get(rt.plural, set())
    for term in _split_terms(selector or ""):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not match:
            raise ApiError(400, f"invalid selector: '{selector}'; can't understand '{term}'")
        field, op, value = match.groups()
        if field not in allowed:
            raise ApiError(400, f'field label not supported: {field}')
        requirements.append((field, "!=" if op == "!=" else "=", value))
    return requirements


def _field_value(obj: Mapping[str, Any], field: str) -> str:
    value: Any = obj
    for part in _FIELD_ALIASES.get(field, field).split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def match_fields(requirements: list[tuple[str, str, str]], obj: Mapping[str, Any]) -> bool:
    for field, op, value in requirements:
        actual = _field_value(obj, field)
        if (op == "=") != (actual == value):
            return False
    return True


# --------------------------------------------------------------------------------------
# Patching: merge, strategic merge, JSON patch
# --------------------------------------------------------------------------------------

_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "conditions": "type", "hostAliases": "ip",
    "ownerReferences": "uid", "topologySpreadConstraints": "topologyKey",
    "containerStatuses": "name", "initContainerStatuses": "name",
}
_PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _merge_key(field: str | None, items: list[Any]) -> str | None:
    dicts = [i for i in items if isinstance(i, dict) and "$patch" not in i]
    if not dicts or len(dicts) != len([i for i in items if not (isinstance(i, dict) and "$patch" in i)]):
        return None
    if field == "ports":
        for key in ("containerPort", "port"):
            if all(key in i for i in dicts):
                return key
        return None
    key = _MERGE_KEYS.get(field or "")
    return key if key and all(key in i for i in dicts) else None


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge for the usual built-in fields: lists merged by merge key, $patch directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field, []) if x not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key)
        else:
            result[key] = value
    return result


def _merge_list(current: Any, items: list[Any], field: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in items):
        return [copy.deepcopy(i) for i in items if not (isinstance(i, dict) and "$patch" in i)]
    if field in _PRIMITIVE_MERGE_LISTS and isinstance(current, list):
        return list(current) + [i for i in items if i not in current]
    key = _merge_key(field, items + (current if isinstance(current, list) else []))
    if key is None or not isinstance(current, list):
        return [_strip_directives(i) for i in items if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    result = copy.deepcopy(current)
    for item in items:
        index = next((n for n, c in enumerate(result) if isinstance(c, dict) and c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return copy.deepcopy(value)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve_parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ApiError(422, f"the server rejected our request: path /{'/'.join(parts)} does not exist",
                           reason="Invalid")
    return node, parts[-1]


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise ApiError(400, "json patch must be a list of operations")
    doc = copy.deepcopy(doc)

    def get(path: str) -> Any:
        parts = _pointer(path)
        if not parts:
            return doc
        parent, last = _resolve_parent(doc, parts)
        if isinstance(parent, dict) and last in parent:
            return parent[last]
        if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            return parent[int(last)]
        raise ApiError(422, f"the server rejected our request: path {path} does not exist")

    def remove(path: str) -> Any:
        parent, last = _resolve_parent(doc, _pointer(path))
        if isinstance(parent, dict) and last in parent:
            return parent.pop(last)
        if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            return parent.pop(int(last))
        raise ApiError(422, f"the server rejected our request: unable to remove nonexistent key {path}")

    def add(path: str, value: Any, replace: bool = False) -> None:
        nonlocal doc
        parts = _pointer(path)
        if not parts:
            doc = copy.deepcopy(value)
            return
        parent, last = _resolve_parent(doc, parts)
        if isinstance(parent, dict):
            if replace and last not in parent:
                raise ApiError(422, f"the server rejected our request: replace operation does not apply: "
                                    f"doc is missing key: {path}")
            parent[last] = copy.deepcopy(value)
        elif isinstance(parent, list):
            if last == "-":
                parent.append(copy.deepcopy(value))
            elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
                if replace:
                    parent[int(last)] = copy.deepcopy(value)
                else:
                    parent.insert(int(last), copy.deepcopy(value))
            else:
                raise ApiError(422, f"the server rejected our request: index out of range: {path}")
        else:
            raise ApiError(422, f"the server rejected our request: path {path} does not exist")

    for op in operations:
        kind = op.get("op")
        if kind == "add":
            add(op["path"], op.get("value"))
        elif kind == "replace":
            add(op["path"], op.get("value"), replace=True)
        elif kind == "remove":
            remove(op["path"])
        elif kind == "move":
            add(op["path"], remove(op["from"]))
        elif kind == "copy":
            add(op["path"], copy.deepcopy(get(op["from"])))
        elif kind == "test":
            if get(op["path"]) != op.get("value"):
                raise ApiError(422, f"the server rejected our request: testing value {op['path']} failed")
        else:
            raise ApiError(400, f"unexpected json patch operation: {kind!r}")
    return doc


# --------------------------------------------------------------------------------------
# Managed fields (server-side apply bookkeeping)
# --------------------------------------------------------------------------------------

FieldPath = tuple[tuple[str, ...], ...]
_VOLATILE_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation",
                  "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")


def _tracked(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object whose fields have managers."""
    tracked = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
    meta = tracked.get("metadata")
    if isinstance(meta, dict):
        for key in _VOLATILE_META:
            meta.pop(key, None)
        if not meta:
            tracked.pop("metadata")
    return tracked


def _field_set(value: Any, field: str | None = None, prefix: FieldPath = ()) -> set[FieldPath]:
    paths: set[FieldPath] = set()
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            paths |= _field_set(sub, key, prefix + (("f", key),))
    elif isinstance(value, list) and value and (key := _merge_key(field, value)):
        for item in value:
            ident = ("k", json.dumps({key: item[key]}, sort_keys=True, separators=(",", ":")))
            paths.add(prefix + (ident, (".",)))
            for sub_key, sub in item.items():
                paths |= _field_set(sub, sub_key, prefix + (ident, ("f", sub_key)))
    elif prefix:
        paths.add(prefix)
    return paths


def _get_at(obj: Any, path: FieldPath) -> tuple[bool, Any]:
    node = obj
    for element in path:
        if element[0] == "f":
            if not isinstance(node, dict) or element[1] not in node:
                return False, None
            node = node[element[1]]
        elif element[0] == "k":
            wanted = json.loads(element[1])
            if not isinstance(node, list):
                return False, None
            node = next((i for i in node if isinstance(i, dict)
                         and all(i.get(k) == v for k, v in wanted.items())), None)
            if node is None:
                return False, None
        else:  # (".",): the keyed item itself
            return True, None
    return True, node


def _remove_at(obj: Any, path: FieldPath) -> None:
    chain: list[Any] = [obj]
    node = obj
    for element in path[:-1]:
        found, node = _get_at(node, (element,))
        if not found:
            return
        chain.append(node)
    last = path[-1]
    if last[0] == "f" and isinstance(node, dict):
        node.pop(last[1], None)
    elif last[0] == "." and len(chain) >= 2 and isinstance(chain[-2], list):
        chain[-2].remove(node)
    # prune maps emptied by the removal (never the object itself)
    for depth in range(len(path) - 1, 0, -1):
        parent, element = chain[depth - 1], path[depth - 1]
        child = chain[depth]
        if element[0] == "f" and isinstance(child, dict) and not child and isinstance(parent, dict):
            parent.pop(element[1], None)


def _format_path(path: FieldPath) -> str:
    out = ""
    for element in path:
        if element[0] == "f":
            out += f".{element[1]}"
        elif element[0] == "k":
            out += "[" + ",".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}"
                                  for k, v in json.loads(element[1]).items()) + "]"
    return out


def _fields_v1(paths: Iterable[FieldPath]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            key = f"f:{element[1]}" if element[0] == "f" else f"k:{element[1]}" if element[0] == "k" else "."
            node = node.setdefault(key, {})
    return tree


@dataclasses.dataclass
class _Manager:
    paths: set[FieldPath]
    api_version: str
    time: str


# --------------------------------------------------------------------------------------
# Streams: watchers, log followers, port-forward sessions
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Event:
    rv: int
    rt: ResourceType
    namespace: str | None
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclasses.dataclass(eq=False)
class _Watcher:
    rt: ResourceType
    namespace: str | None
    labels: list[tuple[str, str, Any]]
    fields: list[tuple[str, str, str]]
    bookmarks: bool
    queue: asyncio.Queue[Any] = dataclasses.field(default_factory=asyncio.Queue)

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        return match_labels(self.labels, meta.get("labels")) and match_fields(self.fields, obj)

    def translate(self, event: _Event) -> tuple[str, dict[str, Any]] | None:
        if event.rt != self.rt or (self.namespace and event.namespace != self.namespace):
            return None
        now = self.matches(event.obj)
        if event.type == "MODIFIED":
            before = self.matches(event.old)
            if now and before:
                return "MODIFIED", event.obj
            if now:
                return "ADDED", event.obj
            if before:
                return "DELETED", event.obj
            return None
        return (event.type, event.obj) if now else None


@dataclasses.dataclass(eq=False)
class _LogFollower:
    namespace: str
    pod: str
    container: str
    queue: asyncio.Queue[Any] = dataclasses.field(default_factory=asyncio.Queue)


@dataclasses.dataclass(eq=False)
class _PortForwardSession:
    namespace: str
    pod: str
    ports: list[int]
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    error: str | None = None


@dataclasses.dataclass(eq=False)
class Fault:
    """An injected failure (see ``KubeEmulator.fail``). ``hits`` counts the answered requests."""

    method: str | None
    pattern: re.Pattern[str]
    status: int
    times: int | None
    reason: str | None
    message: str | None
    query: dict[str, str] | None
    hits: int = 0
    active: bool = True

    def cancel(self) -> None:
        self.active = False


@dataclasses.dataclass(eq=False)
class _Delay:
    method: str | None
    pattern: re.Pattern[str]
    seconds: float
    times: int | None
    hits: int = 0
    active: bool = True

    def cancel(self) -> None:
        self.active = False


@dataclasses.dataclass
class _Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    legacy_watch: bool


# --------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------

class KubeEmulator(kmock.KubernetesEmulator):
    """An in-memory Kubernetes API server on a real port; see the module docstring."""

    VERSION_INFO = {
        "major": "1", "minor": "31", "gitVersion": "v1.31.4+k3s1",
        "gitCommit": "a1c6a3ff9fb4f4e0bd5e7d2bb5e0c4bc3ad1e1f5", "gitTreeState": "clean",
        "buildDate": "2024-12-16T00:00:00Z", "goVersion": "go1.22.9", "compiler": "gc",
        "platform": "linux/amd64",
    }

    def __init__(self, *, history_limit: int = 10_000, require_token: str | None = None,
                 port: int | None = None, seed: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history_limit = history_limit
        #: When set, requests must carry ``Authorization: Bearer <token>`` or get a 401.
        self.require_token = require_token
        #: Error messages sent on port-forward error channels (for assertions).
        self.portforward_errors: list[str] = []
        self._port = port
        self._server: kmock.Server | None = None
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._rv = 0
        self._history: deque[_Event] = deque()
        self._floor = 0  # watches from a resourceVersion below this get 410 Expired
        self._expired_as_http = False
        self._managed: dict[tuple[Any, str | None, str], dict[tuple[str, str, str | None], _Manager]] = {}
        self._watchers: set[_Watcher] = set()
        self._followers: set[_LogFollower] = set()
        self._logs: dict[tuple[str, str, str, bool], list[tuple[str, str]]] = {}
        self._pf_targets: dict[tuple[str, str, int], tuple[str, int]] = {}
        self._pf_sessions: set[_PortForwardSession] = set()
        self._faults: list[Fault] = []
        self._delays: list[_Delay] = []
        self.kubeconfig: Path | None = None
        for rt in BUILTIN_RESOURCES:
            self.add_resource(rt)
        if seed:
            self._seed()

    def __attrs_post_init__(self) -> None:
        # kmock's own fallback reactions (discovery, list, watch, ...) are NOT registered:
        # everything no user-defined kmock reaction takes is served by `_route` below.
        pass

    def __hash__(self) -> int:  # attrs makes the parent unhashable
        return id(self)

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> KubeEmulator:
        await super().__aenter__()
        try:
            await self.start()
        except BaseException:
            await super().__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self.stop()
        finally:
            await super().__aexit__(exc_type, exc, tb)

    async def start(self) -> None:
        """Listen (again) — on the same port as before, if the server ran before."""
        if self._server is not None:
            return
        server = kmock.Server(self, port=self._port)
        await server.__aenter__()
        self._server = server
        self._port = server.port

    async def stop(self) -> None:
        """Take the server down: open streams end, connections close, the port is freed.

        A stream that starts while the server shuts down (a client re-watching at once on a
        kept-alive connection) ends at once too: see `_stopping`. Otherwise aiohttp would
        wait its 60 s shutdown timeout for it."""
        self._end_streams()
        server, self._server = self._server, None
        if server is not None:
            await asyncio.sleep(0)  # let the streams see their end markers
            await server.__aexit__(None, None, None)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def url(self) -> str:  # type: ignore[override]
        """``http://127.0.0.1:PORT`` — stays the same across stop()/start()."""
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: str | Path, context: str = "emulated", namespace: str = "default",
                         token: str | None = None) -> Path:
        """Write a kubeconfig whose current context points at this emulator."""
        path = Path(path)
        user: dict[str, Any] = {"token": token} if token else {}
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user", "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-user",
                                                      "namespace": namespace}}],
            "current-context": context,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ---------------------------------------------------------------- test controls

    def fail(self, method: str | None, path_regex: str, status: int, times: int | None = None,
             reason: str | None = None, message: str | None = None,
             query: Mapping[str, str] | None = None) -> Fault:
        """Answer matching requests with a Kubernetes ``Status`` of ``status``.

        ``method`` is an HTTP method or None/"*" for any; ``path_regex`` is searched in the
        path (no query); ``query`` items must all be present in the query; ``times`` limits
        how many requests fail (None: until ``.cancel()``/``clear_faults()``).
        """
        fault = Fault(None if method in (None, "*") else method.upper(), re.compile(path_regex),
                      status, times, reason, message, dict(query) if query else None)
        self._faults.append(fault)
        return fault

    def delay(self, path_regex: str, seconds: float, method: str | None = None,
              times: int | None = None) -> _Delay:
        """Make matching requests wait ``seconds`` before being answered."""
        delay = _Delay(None if method in (None, "*") else method.upper(), re.compile(path_regex), seconds, times)
        self._delays.append(delay)
        return delay

    def clear_faults(self) -> None:
        self._faults.clear()
        self._delays.clear()

    def expire_history(self, as_http_error: bool = False, close_watches: bool = False) -> int:
        """Forget the change history: watches from an older resourceVersion get 410 Expired.

        By default the 410 comes as an ``ERROR`` event on a 200 stream (what a real API
        server's watch cache does); ``as_http_error=True`` answers an HTTP 410 instead.
        ``close_watches=True`` also sends that ERROR event to every open watch and ends it.
        Returns the resourceVersion below which watches now expire.
        """
        self._history.clear()
        self._floor = self._rv
        self._expired_as_http = as_http_error
        if close_watches:
            status = ApiError(410, f"too old resource version: {self._rv} ({self._floor})", reason="Expired").status()
            for watcher in self._watchers:
                watcher.queue.put_nowait(("ERROR", status))
                watcher.queue.put_nowait(_END)
        return self._floor

    def cut_watches(self, resource: str | None = None) -> int:
        """End open watch streams server-side (clean end of stream). Returns how many."""
        rt = self.resource_type(resource) if resource else None
        cut = [w for w in self._watchers if rt is None or w.rt == rt]
        for watcher in cut:
            watcher.queue.put_nowait(_END)
        return len(cut)

    def send_bookmarks(self) -> None:
        """Send a BOOKMARK to every open watch that asked for ``allowWatchBookmarks``."""
        for watcher in self._watchers:
            if watcher.bookmarks:
                watcher.queue.put_nowait(("BOOKMARK", self._bookmark(watcher.rt)))

    def cut_logs(self, namespace: str | None = None, pod: str | None = None) -> int:
        """End following log streams (all, or of one namespace/pod). Returns how many."""
        cut = [f for f in self._followers if namespace in (None, f.namespace) and pod in (None, f.pod)]
        for follower in cut:
            follower.queue.put_nowait(_END)
        return len(cut)

    def break_portforwards(self, message: str | None = None) -> int:
        """Close open port-forward sessions, optionally sending ``message`` on the error channel."""
        sessions = list(self._pf_sessions)
        for session in sessions:
            session.error = message
            session.stop.set()
        return len(sessions)

    @property
    def watch_count(self) -> int:
        return len(self._watchers)

    @property
    def log_follower_count(self) -> int:
        return len(self._followers)

    @property
    def portforward_count(self) -> int:
        return len(self._pf_sessions)

    @property
    def resource_version(self) -> str:
        """The current (latest) resourceVersion."""
        return str(self._rv)

    async def wait_for_watches(self, count: int = 1, resource: str | None = None, timeout: float = 5) -> None:
        rt = self.resource_type(resource) if resource else None
        await self._wait(lambda: len([w for w in self._watchers if rt is None or w.rt == rt]) >= count,
                         timeout, f"{count} open watch(es)")

    async def wait_for_log_followers(self, count: int = 1, timeout: float = 5) -> None:
        await self._wait(lambda: len(self._followers) >= count, timeout, f"{count} log follower(s)")

    async def _wait(self, condition: Any, timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    def requests_to(self, path_regex: str, method: str | None = None) -> list[kmock.Request]:
        """Requests received so far whose path matches (``re.search``), oldest first."""
        pattern = re.compile(path_regex)
        return [r for r in self if pattern.search(r.url.path)
                and (method is None or str(r.method.value if hasattr(r.method, "value") else r.method).upper()
                     == method.upper())]

    # ---------------------------------------------------------------- resource table

    def add_resource(self, rt: ResourceType) -> ResourceType:
        """Serve another resource type (e.g. a CRD's)."""
        self._types[(rt.group, rt.version, rt.plural)] = rt
        return rt

    def resource_type(self, ref: str | ResourceType) -> ResourceType:
        """``"pods"``, ``"Pod"``, ``"po"``, ``"deployments.apps"``, ``"apps/v1/deployments"``..."""
        if isinstance(ref, ResourceType):
            return ref
        text = ref.strip()
        group = None
        if "/" in text:
            parts = text.split("/")
            if len(parts) == 3:
                group, _version, text = parts
            elif len(parts) == 2 and parts[0] == "v1":
                group, text = "", parts[1]
            else:
                group, text = parts[0], parts[1]
        elif "." in text:
            text, group = text.split(".", 1)
        candidates = [rt for rt in self._types.values() if group is None or rt.group == group]
        for rt in candidates:  # core group comes first, as in kr8s' lookup
            if text in (rt.plural, rt.singular) or text in rt.short_names or text == rt.kind:
                return rt
        for rt in candidates:
            if text.lower() == rt.kind.lower():
                return rt
        raise KeyError(f"unknown resource {ref!r}")

    # ---------------------------------------------------------------- store primitives

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[Any, str | None, str]:
        return (rt.ref, namespace if rt.namespaced else None, name)

    def _peek(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (do not mutate!) or None."""
        key = self._key(rt, namespace, name)
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else obj.last.raw

    def _items(self, rt: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        ref = rt.ref
        items = [obj.last.raw for (res, ns, _), obj in self._objects.items()
                 if res == ref and not obj.deleted and (namespace is None or ns == namespace)]
        items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return items

    def _commit(self, rt: ResourceType, namespace: str | None, name: str, etype: str,
                new: dict[str, Any] | None, old: dict[str, Any] | None) -> dict[str, Any]:
        """Store a change under a new resourceVersion and tell the watchers. Synchronous!"""
        self._rv += 1
        key = self._key(rt, namespace, name)
        if etype == "DELETED":
            assert old is not None
            final = copy.deepcopy(old)
            final["metadata"]["resourceVersion"] = str(self._rv)
            self._objects[key].delete()
            self._managed.pop(key, None)
            event_obj = final
        else:
            assert new is not None
            stored = copy.deepcopy(new)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            managers = self._managed.get(key)
            if managers:
                stored["metadata"]["managedFields"] = [
                    {"manager": mgr, "operation": op, "apiVersion": m.api_version, "time": m.time,
                     "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(m.paths),
                     **({"subresource": sub} if sub else {})}
                    for (mgr, op, sub), m in sorted(managers.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
                ]
            else:
                stored["metadata"].pop("managedFields", None)
            if key in self._objects:
                self._objects[key].history.append(stored)
            else:
                self._objects[key] = stored
            event_obj = self._objects[key].last.raw
        event = _Event(self._rv, rt, key[1], etype, event_obj, old)
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self._floor = self._history.popleft().rv
        for watcher in list(self._watchers):
            translated = watcher.translate(event)
            if translated:
                watcher.queue.put_nowait(translated)
        if etype == "DELETED" and rt.plural == "pods" and rt.group == "":
            for follower in [f for f in self._followers if (f.namespace, f.pod) == (namespace, name)]:
                follower.queue.put_nowait(_END)
        return copy.deepcopy(event_obj)

    def _record_update(self, key: Any, manager: str, operation: str, subresource: str | None,
                       api_version: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
        """Field ownership after a non-apply write: changed fields move to ``manager``."""
        old_t, new_t = _tracked(old or {}), _tracked(new)
        new_set = _field_set(new_t)
        changed = {p for p in new_set if _get_at(old_t, p) != _get_at(new_t, p)}
        managers = self._managed.setdefault(key, {})
        for entry in managers.values():
            entry.paths = (entry.paths & new_set) - changed
        if changed:
            mine = managers.setdefault((manager, operation, subresource), _Manager(set(), api_version, _now()))
            mine.paths |= changed
            mine.time = _now()
        for ident in [k for k, m in managers.items() if not m.paths]:
            del managers[ident]

    # ---------------------------------------------------------------- write operations

    def _check_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        ns_type = self.resource_type("namespaces")
        ns_obj = self._peek(ns_type, None, namespace or "")
        if ns_obj is None:
            raise ApiError(404, f'namespaces "{namespace}" not found',
                           details={"name": namespace, "kind": "namespaces"})
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, f"{rt.plural} \"...\" is forbidden: unable to create new content in namespace "
                                f"{namespace} because it is being terminated", reason="Forbidden")

    def _create(self, rt: ResourceType, namespace: str | None, body: Any, *, manager: str,
                operation: str = "Update", apply_paths: set[FieldPath] | None = None,
                dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, rt.kind):
            raise ApiError(400, f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                                f"expected API version ({rt.api_version}) or kind {obj.get('kind')} is not {rt.kind}")
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            namespace = namespace or body_ns
            if not namespace:
                raise ApiError(400, "a namespace must be specified for a namespaced resource")
        else:
            namespace = None
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        if not name:
            raise ApiError(422, f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is '
                                f'required', details={"kind": rt.kind})
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise ApiError(422, f'{rt.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a '
                                f'lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '
                                f"'-' or '.'", details={"name": name, "kind": rt.kind})
        self._check_namespace(rt, namespace)
        if self._peek(rt, namespace, name) is not None:
            raise ApiError(409, f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" already exists',
                           reason="AlreadyExists", details={"name": name, "kind": rt.plural})
        obj = {"apiVersion": rt.api_version, "kind": rt.kind, **{k: v for k, v in obj.items()
                                                                  if k not in ("apiVersion", "kind")}}
        meta = obj["metadata"]
        for key in ("resourceVersion", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "selfLink"):
            meta.pop(key, None)
        meta["name"] = name
        if namespace:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if rt.has_generation:
            meta["generation"] = 1
        self._defaults(rt, obj)
        if dry_run:
            meta["resourceVersion"] = str(self._rv)
            return obj
        key = self._key(rt, namespace, name)
        self._managed.pop(key, None)
        if apply_paths is not None:
            self._managed[key] = {(manager, operation, None): _Manager(set(apply_paths), rt.api_version, _now())}
        else:
            self._record_update(key, manager, operation, None, rt.api_version, None, obj)
        return self._commit(rt, namespace, name, "ADDED", obj, None)

    def _defaults(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """A few of the defaults a real API server fills in."""
        if rt.has_status:
            obj.pop("status", None)  # status belongs to the /status subresource
        plural = rt.plural if rt.group in ("", "apps") else None
        if plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("serviceAccountName", "default")
        elif plural == "namespaces":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif plural == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") is None:
                digest = hashlib.sha1(obj["metadata"]["uid"].encode()).digest()
                spec["clusterIP"] = f"10.43.{digest[0]}.{max(digest[1], 1)}"
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports", []) or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            obj["status"] = {"loadBalancer": {}}
        elif plural in ("deployments", "statefulsets", "replicasets"):
            obj.setdefault("spec", {}).setdefault("replicas", 1)
            obj["status"] = {}
        elif rt.has_status:
            obj["status"] = {}

    def _update(self, rt: ResourceType, namespace: str | None, name: str, candidate: Any, *, manager: str,
                subresource: str | None = None, expected_rv: str | None = None,
                dry_run: bool = False) -> dict[str, Any]:
        """Replace an object (PUT semantics) after server-side normalisation."""
        old = self._peek(rt, namespace, name)
        if old is None:
            raise _not_found(rt, name)
        if not isinstance(candidate, dict):
            raise ApiError(400, "the body of the request must be a JSON object")
        if expected_rv and expected_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, f'Operation cannot be fulfilled on {rt.plural}{"." + rt.group if rt.group else ""} '
                                f'"{name}": the object has been modified; please apply your changes to the latest '
                                f'version and try again', reason="Conflict",
                           details={"name": name, "kind": rt.plural})
        body_name = (candidate.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise ApiError(400, f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        new = self._normalise(rt, old, candidate, subresource)
        return self._store_update(rt, namespace, name, old, new, manager=manager, operation="Update",
                                  subresource=subresource, dry_run=dry_run)

    def _normalise(self, rt: ResourceType, old: Mapping[str, Any], candidate: Mapping[str, Any],
                   subresource: str | None) -> dict[str, Any]:
        if subresource == "status":
            new = copy.deepcopy(dict(old))
            if "status" in candidate:
                new["status"] = copy.deepcopy(candidate["status"])
            else:
                new.pop("status", None)
            return new
        new = copy.deepcopy(dict(candidate))
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        for key in _VOLATILE_META:
            if key in old["metadata"]:
                meta[key] = copy.deepcopy(old["metadata"][key])
            else:
                meta.pop(key, None)
        if rt.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if rt.has_generation and new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return new

    def _store_update(self, rt: ResourceType, namespace: str | None, name: str, old: dict[str, Any],
                      new: dict[str, Any], *, manager: str, operation: str, subresource: str | None,
                      dry_run: bool, managers_changed: bool = False) -> dict[str, Any]:
        if _strip_rv(new) == _strip_rv(old) and not managers_changed:
            return copy.deepcopy(old)  # a no-op write keeps the resourceVersion
        if dry_run:
            result = copy.deepcopy(new)
            result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return result
        key = self._key(rt, namespace, name)
        if operation != "Apply":
            self._record_update(key, manager, operation, subresource, rt.api_version, old, new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._commit(rt, namespace, name, "MODIFIED", new, old)
            return self._remove(rt, namespace, name)
        return self._commit(rt, namespace, name, "MODIFIED", new, old)

    def _patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str, body: bytes,
               *, manager: str, subresource: str | None, dry_run: bool) -> dict[str, Any]:
        old = self._peek(rt, namespace, name)
        if old is None:
            raise _not_found(rt, name)
        patch = _load_json(body)
        base = copy.deepcopy(old)
        if content_type == "application/json-patch+json":
            candidate = json_patch(base, patch)
        elif content_type == "application/merge-patch+json":
            candidate = json_merge_patch(base, patch)
        elif content_type == "application/strategic-merge-patch+json":
            if rt not in BUILTIN_RESOURCES:
                raise ApiError(415, "strategic merge patch is not supported for custom resources",
                               reason="UnsupportedMediaType")
            candidate = strategic_merge_patch(base, patch)
        else:
            raise ApiError(415, "the body of the request was in an unknown format - accepted media types "
                                "include: application/json-patch+json, application/merge-patch+json, "
                                "application/apply-patch+yaml", reason="UnsupportedMediaType")
        if not isinstance(candidate, dict):
            raise ApiError(422, "the patched object is not a JSON object")
        wanted_rv = (candidate.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(409, f'Operation cannot be fulfilled on {rt.plural} "{name}": the object has been '
                                f'modified; please apply your changes to the latest version and try again',
                           details={"name": name, "kind": rt.plural})
        new = self._normalise(rt, old, candidate, subresource)
        return self._store_update(rt, namespace, name, old, new, manager=manager, operation="Update",
                                  subresource=subresource, dry_run=dry_run)

    def _apply(self, rt: ResourceType, namespace: str | None, name: str, body: bytes, *, manager: str | None,
               force: bool, dry_run: bool) -> tuple[dict[str, Any], int]:
        if not manager:
            raise ApiError(400, "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
                           reason="BadRequest")
        try:
            applied = yaml.safe_load(body.decode() or "{}")
        except yaml.YAMLError as exc:
            raise ApiError(400, f"error decoding YAML: {exc}") from exc
        if not isinstance(applied, dict):
            raise ApiError(400, "the applied configuration must be an object")
        if applied.get("apiVersion") not in (None, rt.api_version) or applied.get("kind") not in (None, rt.kind):
            raise ApiError(400, f"apply configuration {applied.get('apiVersion')}/{applied.get('kind')} does not "
                                f"match {rt.api_version}/{rt.kind}")
        meta = applied.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise ApiError(400, f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                                f"({name})")
        meta["name"] = name
        if rt.has_status:
            applied.pop("status", None)
        applied_t = _tracked(applied)
        applied_paths = _field_set(applied_t)
        old = self._peek(rt, namespace, name)
        if old is None:
            created = self._create(rt, namespace, applied, manager=manager, operation="Apply",
                                   apply_paths=applied_paths, dry_run=dry_run)
            return created, 201
        key = self._key(rt, namespace, name)
        managers = {k: _Manager(set(m.paths), m.api_version, m.time) for k, m in self._managed.get(key, {}).items()}
        old_t = _tracked(old)
        conflicts: list[tuple[str, str, FieldPath]] = []
        for path in sorted(applied_paths):
            if path[-1] == (".",):
                continue
            if _get_at(old_t, path) == _get_at(applied_t, path):
                continue
            for (mgr, op, _sub), entry in managers.items():
                if (mgr, op) != (manager, "Apply") and path in entry.paths:
                    conflicts.append((mgr, entry.api_version, path))
        if conflicts and not force:
            lines = [f'conflict with "{mgr}" using {api}: {_format_path(path)}' for mgr, api, path in conflicts]
            plural = "conflict" if len(conflicts) == 1 else "conflicts"
            raise ApiError(409, f"Apply failed with {len(conflicts)} {plural}: " + "\n".join(lines),
                           reason="Conflict", details={
                               "name": name, "kind": rt.plural,
                               "causes": [{"reason": "FieldManagerConflict", "message": line,
                                           "field": _format_path(path)}
                                          for line, (_, _, path) in zip(lines, conflicts)]})
        merged = strategic_merge_patch(copy.deepcopy(old), applied)
        mine = managers.get((manager, "Apply", None))
        previous = mine.paths if mine else set()
        others: set[FieldPath] = set()
        for ident, entry in managers.items():
            if ident != (manager, "Apply", None):
                others |= entry.paths
        for path in sorted(previous - applied_paths, key=len, reverse=True):
            if path not in others:
                _remove_at(merged, path)
        new = self._normalise(rt, old, merged, None)
        conflicting = {path for _, _, path in conflicts}
        for ident, entry in managers.items():
            if ident != (manager, "Apply", None):
                entry.paths -= conflicting
        managers[(manager, "Apply", None)] = _Manager(set(applied_paths), rt.api_version, _now())
        new_set = _field_set(_tracked(new))
        for entry in managers.values():
            entry.paths &= new_set
        managers = {k: m for k, m in managers.items() if m.paths}
        before = {k: m.paths for k, m in self._managed.get(key, {}).items()}
        changed_managers = before != {k: m.paths for k, m in managers.items()}
        if not dry_run:
            self._managed[key] = managers
        result = self._store_update(rt, namespace, name, old, new, manager=manager, operation="Apply",
                                    subresource=None, dry_run=dry_run, managers_changed=changed_managers)
        return result, 200

    def _delete(self, rt: ResourceType, namespace: str | None, name: str, options: Mapping[str, Any],
                dry_run: bool = False) -> dict[str, Any]:
        old = self._peek(rt, namespace, name)
        if old is None:
            raise _not_found(rt, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
            raise ApiError(409, f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object "
                                f"meta: {old['metadata']['uid']}", reason="Conflict")
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != \
                old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Precondition failed: resourceVersion mismatch", reason="Conflict")
        if dry_run:
            return copy.deepcopy(old)
        if rt.group == "" and rt.plural == "namespaces":
            return self._delete_namespace(name)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if rt.has_generation:
                new["metadata"]["generation"] = int(new["metadata"].get("generation", 1)) + 1
            return self._commit(rt, namespace, name, "MODIFIED", new, old)
        orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
        return self._remove(rt, namespace, name, orphan=orphan)

    def _remove(self, rt: ResourceType, namespace: str | None, name: str, orphan: bool = False) -> dict[str, Any]:
        """Really remove an object (DELETED), then its dependents (garbage collection)."""
        old = self._peek(rt, namespace, name)
        if old is None:
            raise _not_found(rt, name)
        final = self._commit(rt, namespace, name, "DELETED", None, old)
        uid = old["metadata"]["uid"]
        dependents = []
        for (ref, ns, dep_name), obj in list(self._objects.items()):
            if obj.deleted or (rt.namespaced and ns != namespace):
                continue
            refs = obj.last.raw["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                dependents.append((self._types[(ref.group, ref.version, ref.plural)], ns, dep_name, refs))
        for dep_rt, ns, dep_name, refs in dependents:
            current = self._peek(dep_rt, ns, dep_name)
            if current is None:
                continue
            if orphan:
                new = copy.deepcopy(current)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit(dep_rt, ns, dep_name, "MODIFIED", new, current)
            else:
                self._delete(dep_rt, ns, dep_name, {})
        if namespace:
            self._maybe_finalize_namespace(namespace)
        return final

    def _delete_namespace(self, name: str) -> dict[str, Any]:
        ns_rt = self.resource_type("namespaces")
        old = self._peek(ns_rt, None, name)
        assert old is not None
        if not old["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["status"] = {"phase": "Terminating"}
            result = self._commit(ns_rt, None, name, "MODIFIED", new, old)
        else:
            result = copy.deepcopy(old)
        for (ref, ns, obj_name), obj in list(self._objects.items()):
            if ns == name and not obj.deleted:
                rt = self._types[(ref.group, ref.version, ref.plural)]
                current = self._peek(rt, ns, obj_name)
                if current is not None and not current["metadata"].get("deletionTimestamp"):
                    self._delete(rt, ns, obj_name, {})
        final = self._maybe_finalize_namespace(name)
        return final or result

    def _maybe_finalize_namespace(self, name: str) -> dict[str, Any] | None:
        ns_rt = self.resource_type("namespaces")
        ns_obj = self._peek(ns_rt, None, name)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return None
        if any(ns == name and not obj.deleted for (_, ns, _), obj in self._objects.items()):
            return None
        return self._commit(ns_rt, None, name, "DELETED", None, ns_obj)

    def _seed(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.add_namespace(ns)
        self.add_object({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "emulated-node", "labels": {
                "kubernetes.io/hostname": "emulated-node", "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": "true"}},
            "spec": {"podCIDR": "10.42.0.0/24"},
        }, manager="k3s")
        self.set_status("nodes", None, "emulated-node", {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": self.VERSION_INFO["gitVersion"], "osImage": "emulated",
                         "containerRuntimeVersion": "containerd://1.7.23-k3s2"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": "emulated-node"}],
        })
        self.add_object({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
        }, manager="k3s")

    # ---------------------------------------------------------------- helpers for tests

    def add_object(self, manifest: Mapping[str, Any], manager: str = "emulator") -> dict[str, Any]:
        """Create any object as if POSTed (namespace taken from its metadata; created if missing)."""
        api_version, kind = manifest.get("apiVersion", "v1"), manifest["kind"]
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        rt = next((t for t in self._types.values() if t.kind == kind and t.group == group), None)
        if rt is None:
            raise KeyError(f"unknown kind {api_version}/{kind}")
        namespace = (manifest.get("metadata") or {}).get("namespace") if rt.namespaced else None
        if rt.namespaced:
            namespace = namespace or "default"
            self.add_namespace(namespace)
        return self._create(rt, namespace, dict(manifest), manager=manager)

    def get_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self._peek(self.resource_type(resource), namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return copy.deepcopy(self._items(self.resource_type(resource), namespace))

    def patch_object(self, resource: str, namespace: str | None, name: str, patch: Mapping[str, Any],
                     manager: str = "emulator") -> dict[str, Any]:
        """Merge-patch an object (status included, unlike the API) as a controller would."""
        rt = self.resource_type(resource)
        old = self._peek(rt, namespace, name)
        if old is None:
            raise _not_found(rt, name)
        status = patch.get("status")
        main = {k: v for k, v in patch.items() if k != "status"}
        result = old
        if main:
            result = self._store_update(rt, namespace, name, old,
                                        self._normalise(rt, old, json_merge_patch(old, main), None),
                                        manager=manager, operation="Update", subresource=None, dry_run=False)
        if status is not None:
            result = self.set_status(rt, namespace, name, status, manager=manager)
        return result

    def set_status(self, resource: str | ResourceType, namespace: str | None, name: str,
                   status: Mapping[str, Any], replace: bool = False, manager: str = "emulator") -> dict[str, Any]:
        """Merge (or replace) an object's ``status`` — what a controller/kubelet would do."""
        rt = self.resource_type(resource)
        old = self._peek(rt, namespace, name)
        if old is None:
            raise _not_found(rt, name)
        new = copy.deepcopy(old)
        new["status"] = copy.deepcopy(dict(status)) if replace else json_merge_patch(old.get("status") or {}, status)
        return self._store_update(rt, namespace, name, old, new, manager=manager, operation="Update",
                                  subresource="status", dry_run=False)

    def delete_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self._delete(self.resource_type(resource), namespace, name, {})

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        rt = self.resource_type("namespaces")
        existing = self._peek(rt, None, name)
        if existing is not None:
            return copy.deepcopy(existing)
        return self._create(rt, None, {"metadata": {"name": name, "labels": dict(labels or {})}}, manager="emulator")

    def add_deployment(self, namespace: str, name: str, replicas: int = 1, labels: Mapping[str, str] | None = None,
                       image: str = "busybox:1.36", ports: Iterable[int] = (), ready_replicas: int | None = None,
                       containers: list[dict[str, Any]] | None = None,
                       annotations: Mapping[str, str] | None = None, kind: str = "Deployment") -> dict[str, Any]:
        """A Deployment (or ``kind="StatefulSet"``) with a consistent status (all replicas ready by default)."""
        labels = dict(labels or {"app": name})
        containers = containers or [{"name": name, "image": image,
                                     "ports": [{"containerPort": p, "protocol": "TCP"} for p in ports]}]
        for container in containers:
            if not container.get("ports"):
                container.pop("ports", None)
        spec: dict[str, Any] = {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": containers}},
        }
        if kind == "StatefulSet":
            spec["serviceName"] = name
        obj = self.add_object({"apiVersion": "apps/v1", "kind": kind,
                               "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                                            "annotations": dict(annotations or {})},
                               "spec": spec})
        ready = replicas if ready_replicas is None else ready_replicas
        return self.set_workload_status(namespace, name, ready_replicas=ready, kind=kind) or obj

    def add_statefulset(self, namespace: str, name: str, replicas: int = 1, **kwargs: Any) -> dict[str, Any]:
        return self.add_deployment(namespace, name, replicas=replicas, kind="StatefulSet", **kwargs)

    def set_workload_status(self, namespace: str, name: str, ready_replicas: int | None = None,
                            kind: str = "Deployment", **extra: Any) -> dict[str, Any]:
        """Make a Deployment/StatefulSet status consistent with its spec (as the controller would)."""
        rt = self.resource_type(kind)
        obj = self._peek(rt, namespace, name)
        if obj is None:
            raise _not_found(rt, name)
        replicas = int(obj["spec"].get("replicas", 1))
        ready = replicas if ready_replicas is None else ready_replicas
        status: dict[str, Any] = {
            "observedGeneration": obj["metadata"].get("generation", 1), "replicas": replicas,
            "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": replicas,
        }
        if kind == "Deployment":
            status["conditions"] = [
                {"type": "Available", "status": "True" if ready >= replicas else "False",
                 "reason": "MinimumReplicasAvailable" if ready >= replicas else "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ]
        else:
            status["currentReplicas"] = replicas
        status.update(extra)
        return self.set_status(rt, namespace, name, status, replace=True)

    def _replicaset_for(self, namespace: str, deployment: str) -> dict[str, Any]:
        deploy_rt, rs_rt = self.resource_type("deployments"), self.resource_type("replicasets")
        deploy = self._peek(deploy_rt, namespace, deployment)
        if deploy is None:
            raise _not_found(deploy_rt, deployment)
        template = deploy["spec"].get("template", {})
        pod_hash = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        rs_name = f"{deployment}-{pod_hash}"
        existing = self._peek(rs_rt, namespace, rs_name)
        if existing is not None:
            return copy.deepcopy(existing)
        labels = dict(template.get("metadata", {}).get("labels", {}), **{"pod-template-hash": pod_hash})
        rs = self._create(rs_rt, namespace, {
            "metadata": {"name": rs_name, "namespace": namespace, "labels": labels,
                         "ownerReferences": [_owner_ref(deploy)]},
            "spec": {"replicas": deploy["spec"].get("replicas", 1),
                     "selector": {"matchLabels": labels},
                     "template": {**copy.deepcopy(template),
                                  "metadata": {**template.get("metadata", {}), "labels": labels}}},
        }, manager="kube-controller-manager")
        return rs

    def add_pod(self, namespace: str, name: str, labels: Mapping[str, str] | None = None, owner: str | None = None,
                owner_kind: str = "Deployment", phase: str = "Running", ready: bool = True,
                containers: Iterable[str | Mapping[str, Any]] | None = None,
                container_statuses: list[dict[str, Any]] | None = None, node: str = "emulated-node",
                image: str = "busybox:1.36", restarts: int = 0, pod_ip: str | None = None,
                annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A pod with a kubelet-like status. ``owner`` names its Deployment (via a ReplicaSet, as in a
        real cluster) or, with ``owner_kind="StatefulSet"``/``"ReplicaSet"``/``"Job"``, a direct owner."""
        pod_labels: dict[str, str] = {}
        owner_refs: list[dict[str, Any]] = []
        if owner:
            if owner_kind == "Deployment":
                rs = self._replicaset_for(namespace, owner)
                pod_labels.update(rs["spec"]["template"]["metadata"]["labels"])
                owner_refs = [_owner_ref(rs)]
                template_containers = rs["spec"]["template"].get("spec", {}).get("containers")
            else:
                owner_rt = self.resource_type(owner_kind)
                owner_obj = self._peek(owner_rt, namespace, owner)
                if owner_obj is None:
                    raise _not_found(owner_rt, owner)
                owner_refs = [_owner_ref(owner_obj)]
                template = owner_obj.get("spec", {}).get("template", {})
                pod_labels.update(template.get("metadata", {}).get("labels", {}))
                template_containers = template.get("spec", {}).get("containers")
            if containers is None and template_containers:
                containers = [copy.deepcopy(c) for c in template_containers]
        pod_labels.update(labels or {})
        if containers is None:
            containers = [name.rsplit("-", 2)[0] if owner else "main"]
        specs = [{"name": c, "image": image} if isinstance(c, str) else dict(c) for c in containers]
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": pod_labels}
        if owner_refs:
            meta["ownerReferences"] = owner_refs
        if annotations:
            meta["annotations"] = dict(annotations)
        self.add_namespace(namespace)
        pod = self._create(self.resource_type("pods"), namespace,
                           {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                            "spec": {"containers": specs, "nodeName": node}}, manager="emulator")
        if phase == "Pending" and container_statuses is None:
            container_statuses = [{"name": c["name"], "ready": False, "restartCount": 0, "image": c.get("image", ""),
                                   "state": {"waiting": {"reason": "ContainerCreating"}}} for c in specs]
        return self.set_pod_status(namespace, name, phase=phase, ready=ready, container_statuses=container_statuses,
                                   restarts=restarts, pod_ip=pod_ip) or pod

    def set_pod_status(self, namespace: str, name: str, phase: str | None = None, ready: bool | None = None,
                       container_statuses: list[dict[str, Any]] | None = None, restarts: int | None = None,
                       pod_ip: str | None = None, **status_fields: Any) -> dict[str, Any]:
        """Set a pod's phase/readiness/container statuses like the kubelet would (one MODIFIED event)."""
        rt = self.resource_type("pods")
        pod = self._peek(rt, namespace, name)
        if pod is None:
            raise _not_found(rt, name)
        status = copy.deepcopy(pod.get("status") or {})
        explicit = phase is not None or ready is not None
        if phase is not None:
            status["phase"] = phase
        phase = status.get("phase", "Pending")
        if ready is None:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        ready = bool(ready and phase == "Running")
        if container_statuses is None:
            container_statuses = copy.deepcopy(status.get("containerStatuses") or [])
            if explicit or not container_statuses:
                container_statuses = [_container_status(c, phase, ready) for c in pod["spec"].get("containers", [])]
        if restarts is not None:
            for cs in container_statuses:
                cs["restartCount"] = restarts
        status["containerStatuses"] = container_statuses
        now = _now()
        status.setdefault("startTime", now)
        status.setdefault("hostIP", "127.0.0.1")
        if phase in ("Running", "Succeeded", "Failed") or pod_ip:
            ip = pod_ip or status.get("podIP") or "10.42.0.%d" % (int(hashlib.sha1(name.encode()).hexdigest(), 16) % 250 + 2)
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        truth = "True" if ready else "False"
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": truth, "lastTransitionTime": now},
            {"type": "Ready", "status": truth, "lastTransitionTime": now},
        ]
        status.update(status_fields)
        return self.set_status(rt, namespace, name, status, replace=True, manager="k3s")

    # ---- health: what the kubelet and the controllers say about containers and rollouts

    def set_container_state(self, namespace: str, pod: str, container: str | None = None, state: str = "running", *,
                            reason: str | None = None, message: str | None = None, exit_code: int | None = None,
                            ready: bool | None = None, restarts: int | None = None, last_reason: str | None = None,
                            last_exit_code: int | None = None, init: bool = False,
                            phase: str | None = None) -> dict[str, Any]:
        """One container's status as the kubelet reports it, in one MODIFIED event.

        ``state`` is "running", "waiting" (``reason``: CrashLoopBackOff, ImagePullBackOff,
        CreateContainerConfigError…, with ``message``) or "terminated" (``reason``: OOMKilled,
        Error, Completed; ``exit_code`` defaults to 137 for OOMKilled, 0 for Completed, else 1).
        ``last_reason``/``last_exit_code`` set ``lastState.terminated`` (the run before);
        ``restarts`` the restartCount; ``init=True`` names an init container (the first by
        default). ``ready`` defaults to "running". The pod's Initialized, ContainersReady and
        Ready conditions follow with the kubelet's reasons and messages ("ContainersNotReady",
        "containers with unready status: [web]"); ``phase`` sets the pod's phase too."""
        rt = self.resource_type("pods")
        obj = self._peek(rt, namespace, pod)
        if obj is None:
            raise _not_found(rt, pod)
        specs = obj["spec"].get("initContainers" if init else "containers") or []
        container = container or (specs[0]["name"] if specs else None)
        if container is None:
            raise ValueError(f"pod {namespace}/{pod} has no {'init ' if init else ''}containers: name one")
        status = copy.deepcopy(obj.get("status") or {})
        if phase is not None:
            status["phase"] = phase
        statuses = status.setdefault("initContainerStatuses" if init else "containerStatuses", [])
        current = next((cs for cs in statuses if cs.get("name") == container), None)
        if current is None:
            image = next((c.get("image", "") for c in specs if c.get("name") == container), "")
            current = {"name": container, "image": image, "imageID": "", "restartCount": 0}
            statuses.append(current)
        now = _now()
        if state == "running":
            detail: dict[str, Any] = {"startedAt": now}
        elif state == "waiting":
            detail = {"reason": reason or "ContainerCreating"}
        elif state == "terminated":
            default_code = 137 if reason == "OOMKilled" else 0 if reason == "Completed" else 1
            detail = {"exitCode": default_code if exit_code is None else exit_code, "reason": reason or "Error",
                      "startedAt": now, "finishedAt": now}
        else:
            raise ValueError(f"container state {state!r}: running, waiting or terminated")
        if message is not None:
            detail["message"] = message
        current["state"] = {state: detail}
        current["ready"] = state == "running" if ready is None else ready
        current["started"] = state == "running"
        if restarts is not None:
            current["restartCount"] = restarts
        if last_reason is not None or last_exit_code is not None:
            last_code = last_exit_code if last_exit_code is not None else 137 if last_reason == "OOMKilled" else 1
            current["lastState"] = {"terminated": {"exitCode": last_code, "reason": last_reason or "Error",
                                                   "startedAt": now, "finishedAt": now}}
        status["conditions"] = _kubelet_conditions(obj["spec"], status, now)
        return self.set_status(rt, namespace, pod, status, replace=True, manager="k3s")

    def set_pod_conditions(self, namespace: str, pod: str, *conditions: Mapping[str, Any],
                           **status_fields: Any) -> dict[str, Any]:
        """Set pod conditions by type (``{"type": "PodScheduled", "status": "False", "reason":
        "Unschedulable", "message": ...}``), keeping the others, plus any other status fields
        (``phase="Pending"``, ``containerStatuses=[]``), in one MODIFIED event."""
        return self._set_conditions("pods", namespace, pod, conditions, status_fields)

    def set_workload_conditions(self, namespace: str, name: str, *conditions: Mapping[str, Any],
                                kind: str = "Deployment", **status_fields: Any) -> dict[str, Any]:
        """Set a Deployment's (or StatefulSet's) status conditions by type, keeping the others, in
        one MODIFIED event — as the controller does when a rollout passes its progress deadline::

            kube.set_workload_conditions("default", "web", {"type": "Progressing", "status": "False",
                                         "reason": "ProgressDeadlineExceeded", "message": "..."})
        """
        return self._set_conditions(kind, namespace, name, conditions, status_fields)

    def _set_conditions(self, resource: str, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]],
                        status_fields: Mapping[str, Any]) -> dict[str, Any]:
        rt = self.resource_type(resource)
        obj = self._peek(rt, namespace, name)
        if obj is None:
            raise _not_found(rt, name)
        status = copy.deepcopy(obj.get("status") or {})
        status["conditions"] = _merge_conditions(status.get("conditions") or [], conditions, _now(),
                                                 updates=rt.group == "apps")
        status.update(copy.deepcopy(dict(status_fields)))
        return self.set_status(rt, namespace, name, status, replace=True, manager="emulator")

    def add_service(self, namespace: str, name: str, selector: Mapping[str, str] | None = None,
                    ports: Iterable[int | tuple[int, int] | Mapping[str, Any]] = (80,), type: str = "ClusterIP",
                    labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A Service; ``ports`` items are ``port``, ``(port, targetPort)`` or full port dicts."""
        port_specs = []
        for port in ports:
            if isinstance(port, Mapping):
                port_specs.append(dict(port))
            elif isinstance(port, tuple):
                port_specs.append({"name": f"p{port[0]}", "port": port[0], "targetPort": port[1]})
            else:
                port_specs.append({"name": f"p{port}", "port": port, "targetPort": port})
        return self.add_object({"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
                                "spec": {"type": type, "selector": dict(selector or {"app": name}),
                                         "ports": port_specs}})

    def add_event(self, namespace: str, involved: Mapping[str, Any] | tuple[str, str], reason: str, message: str,
                  type: str = "Normal", count: int = 1, component: str = "emulator",
                  name: str | None = None) -> dict[str, Any]:
        """A core/v1 Event about ``involved`` — ``("Pod", "web-1")`` or a full involvedObject dict."""
        if isinstance(involved, tuple):
            kind, obj_name = involved
            rt = self.resource_type(kind)
            target = self._peek(rt, namespace if rt.namespaced else None, obj_name)
            involved = {"kind": rt.kind, "namespace": namespace, "name": obj_name, "apiVersion": rt.api_version}
            if target is not None:
                involved = {**involved, "uid": target["metadata"]["uid"],
                            "resourceVersion": target["metadata"]["resourceVersion"]}
        now = _now()
        return self.add_object({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name or f"{involved.get('name', 'object')}.{secrets.token_hex(8)}",
                         "namespace": namespace},
            "involvedObject": dict(involved), "reason": reason, "message": message, "type": type,
            "count": count, "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": component}, "reportingComponent": component, "reportingInstance": "",
        })

    # ---- logs

    def set_pod_log(self, namespace: str, pod: str, container: str | None, text: str,
                    previous: bool = False) -> None:
        """Replace a container's log (``previous=True``: the previous, terminated instance's)."""
        container = self._default_container_for_helpers(namespace, pod, container)
        self._logs[(namespace, pod, container, previous)] = [(_now_nano(), line) for line in _lines(text)]

    def append_pod_log(self, namespace: str, pod: str, container: str | None, text: str) -> None:
        """Append lines; followers (``follow=true``) receive them at once."""
        container = self._default_container_for_helpers(namespace, pod, container)
        entries = [(_now_nano(), line) for line in _lines(text)]
        self._logs.setdefault((namespace, pod, container, False), []).extend(entries)
        for follower in self._followers:
            if (follower.namespace, follower.pod, follower.container) == (namespace, pod, container):
                for entry in entries:
                    follower.queue.put_nowait(entry)

    def _default_container_for_helpers(self, namespace: str, pod: str, container: str | None) -> str:
        if container:
            return container
        obj = self._peek(self.resource_type("pods"), namespace, pod)
        names = [c["name"] for c in (obj or {}).get("spec", {}).get("containers", [])]
        if not names:
            raise ValueError(f"pod {namespace}/{pod} unknown: name the container")
        return names[0]

    # ---- port-forward

    def set_portforward_target(self, namespace: str, pod: str, port: int, host: str, target_port: int) -> None:
        """Relay port-forwards to ``pod:port`` to the TCP endpoint ``host:target_port``."""
        self._pf_targets[(namespace, pod, int(port))] = (host, int(target_port))

    # ---------------------------------------------------------------- HTTP entry point

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's entry point, except that requests kmock cannot parse are still served.

        (kmock 0.8 crashes parsing ``/api/v1/namespaces`` — listing namespaces — before any
        handler runs.) Unexpected exceptions are recorded in ``errors`` as kmock does.
        """
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await self._make_request(raw_request)
            self._requests.append(request)
            try:
                return await self._handle(request)
            except _KmockStreamingError as exc:  # a kmock reaction failed mid-stream
                raw_response = exc.args[0]
                raise exc.__cause__ or exc
        except Exception as exc:
            if not self._errors:
                raise
            self._errors[-1].append(exc)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(exc)
            await self._stream_error(exc, raw_response)
            await raw_response.write_eof()
            return raw_response

    async def _make_request(self, raw: aiohttp.web.BaseRequest) -> kmock.Request:
        try:
            return await kmock.Request._parse(raw, id=len(self._requests))
        except ValueError:
            pass
        body = await raw.read()
        text = body.decode(errors="replace")
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        target = self._parse(raw.path)
        fields: dict[str, Any] = {}
        if isinstance(target, _Target):
            watch = target.legacy_watch or _truthy(raw.query.get("watch"))
            action = {"GET": kmock.action.WATCH if watch else
                      kmock.action.FETCH if target.name else kmock.action.LIST,
                      "POST": kmock.action.CREATE, "PATCH": kmock.action.UPDATE,
                      "DELETE": kmock.action.DELETE}.get(raw.method.upper())
            fields = dict(action=action, resource=kmock.resource(target.rt.group, target.rt.version, target.rt.plural),
                          namespace=target.namespace, name=target.name, subresource=target.subresource)
        return kmock.Request(id=len(self._requests), raw_request=raw, url=raw.url, method=raw.method,
                             params=dict(raw.query), headers=dict(raw.headers), cookies=dict(raw.cookies),
                             body=body, text=text, data=data, **fields)


    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        path, method = raw.path, raw.method.upper()
        try:
            for delay in self._delays:
                if delay.active and delay.method in (None, method) and delay.pattern.search(path):
                    delay.hits += 1
                    if delay.times is not None and delay.hits >= delay.times:
                        delay.active = False
                    await asyncio.sleep(delay.seconds)
            for fault in self._faults:
                if fault.active and fault.method in (None, method) and fault.pattern.search(path) and \
                        all(raw.query.get(k) == v for k, v in (fault.query or {}).items()):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        fault.active = False
                    raise self._fault_error(fault, method, path, raw.query)
            if self.require_token is not None:
                if raw.headers.get("Authorization", "") != f"Bearer {self.require_token}":
                    raise ApiError(401, "Unauthorized")
            if self._payloads:  # user-defined kmock reactions come first
                try:
                    return await kmock.RawHandler._handle(self, request)
                except NotImplementedError:
                    pass
            return await self._route(request, raw, method, path)
        except ApiError as exc:
            return _status_response(exc)

    def _fault_error(self, fault: Fault, method: str, path: str, query: Mapping[str, str]) -> ApiError:
        target = self._parse(path)
        plural = target.rt.plural if isinstance(target, _Target) else "resource"
        group = target.rt.group if isinstance(target, _Target) else ""
        namespace = target.namespace if isinstance(target, _Target) else None
        name = target.name if isinstance(target, _Target) else None
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(
            method, ("watch" if _truthy(query.get("watch")) else "get" if name else "list"))
        defaults = {
            401: "Unauthorized",
            403: (f'{plural} "{name}" is forbidden' if name else f"{plural} is forbidden")
                 + f': User "system:serviceaccount:default:ferryman" cannot {verb} resource "{plural}" in API group '
                 f'"{group}"' + (f' in the namespace "{namespace}"' if namespace else " at the cluster scope"),
            404: f'{plural} "{name}" not found' if name else "the server could not find the requested resource",
            409: f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; please apply '
                 f'your changes to the latest version and try again',
            410: "too old resource version",
            429: "Too many requests, please try again later.",
            500: "Internal error occurred: injected failure",
            503: "the server is currently unable to handle the request",
        }
        headers = {"Retry-After": "1"} if fault.status in (429, 503) else {}
        details = {"kind": plural, **({"name": name} if name else {}), **({"group": group} if group else {})}
        return ApiError(fault.status, fault.message or defaults.get(fault.status, "injected failure"),
                        reason=fault.reason, details=details, headers=headers)

    def _parse(self, path: str) -> _Target | str | None:
        """A resource target, a discovery marker string, or None for unknown paths."""
        segs = [s for s in path.split("/") if s]
        if not segs:
            return "root"
        if segs[0] in ("version", "healthz", "livez", "readyz") and len(segs) == 1:
            return segs[0]
        if segs[0] == "api":
            if len(segs) == 1:
                return "api"
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis":
            if len(segs) == 1:
                return "apis"
            if len(segs) == 2:
                return "group"
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None
        legacy_watch = bool(rest) and rest[0] == "watch"
        if legacy_watch:
            rest = rest[1:]
        if not rest:
            return None if legacy_watch else "groupversion"
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = self._types.get((group, version, rest[2]))
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = self._types.get((group, version, rest[0]))
        if rt is None:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) or None
        if name is not None and rt.namespaced and namespace is None:
            return None
        return _Target(rt, namespace, name, sub, legacy_watch)

    async def _route(self, request: kmock.Request, raw: aiohttp.web.BaseRequest, method: str,
                     path: str) -> aiohttp.web.StreamResponse:
        target = self._parse(path)
        query = raw.query
        if isinstance(target, str):
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return self._discovery(target, path)
        if target is None:
            raise _no_such_path()
        rt, namespace, name, sub = target.rt, target.namespace, target.name, target.subresource
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager") or _manager_from_agent(raw.headers.get("User-Agent", ""))
        if name is None:
            if method == "GET":
                if target.legacy_watch or _truthy(query.get("watch")):
                    return await self._watch(raw, rt, namespace, None)
                return _json(self._list(rt, namespace, query))
            if method == "POST":
                if rt.namespaced and namespace is None:
                    raise _no_such_path()
                return _json(self._create(rt, namespace, _load_json(request.body), manager=manager,
                                          dry_run=dry_run), 201)
            if method == "DELETE":
                return _json(self._delete_collection(rt, namespace, query, dry_run))
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if sub is None:
            if method == "GET":
                if target.legacy_watch or _truthy(query.get("watch")):
                    return await self._watch(raw, rt, namespace, name)
                obj = self._peek(rt, namespace, name)
                if obj is None:
                    raise _not_found(rt, name)
                return _json(obj)
            if method == "PUT":
                body = _load_json(request.body)
                expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                return _json(self._update(rt, namespace, name, body, manager=manager, expected_rv=expected,
                                          dry_run=dry_run))
            if method == "PATCH":
                return await self._patch_request(raw, request, rt, namespace, name, None, manager, dry_run)
            if method == "DELETE":
                options = _load_json(request.body) if request.body.strip() else {}
                if not isinstance(options, dict):
                    options = {}
                if "propagationPolicy" in query:
                    options["propagationPolicy"] = query["propagationPolicy"]
                return _json(self._delete(rt, namespace, name, options, dry_run=dry_run))
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if sub not in rt.subresources:
            raise _no_such_path()
        if sub == "status":
            if method == "GET":
                obj = self._peek(rt, namespace, name)
                if obj is None:
                    raise _not_found(rt, name)
                return _json(obj)
            if method == "PUT":
                body = _load_json(request.body)
                expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                return _json(self._update(rt, namespace, name, body, manager=manager, subresource="status",
                                          expected_rv=expected, dry_run=dry_run))
            if method == "PATCH":
                return await self._patch_request(raw, request, rt, namespace, name, "status", manager, dry_run)
        elif sub == "scale":
            return self._scale(raw, request, rt, namespace, name, method, manager, dry_run)
        elif sub == "log" and method == "GET":
            return await self._logs_request(raw, namespace or "", name)
        elif sub == "portforward":
            return await self._portforward(raw, namespace or "", name)
        elif sub in ("exec", "attach"):
            raise ApiError(400, f"{sub} is not emulated by the test API server")
        raise ApiError(405, "the server does not allow this method on the requested resource")

    async def _patch_request(self, raw: aiohttp.web.BaseRequest, request: kmock.Request, rt: ResourceType,
                             namespace: str | None, name: str, sub: str | None, manager: str,
                             dry_run: bool) -> aiohttp.web.Response:
        content_type = raw.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/apply-patch+yaml":
            if sub is not None:
                raise ApiError(400, "server-side apply to subresources is not emulated")
            result, code = self._apply(rt, namespace, name, request.body, manager=raw.query.get("fieldManager"),
                                       force=_truthy(raw.query.get("force")), dry_run=dry_run)
            return _json(result, code)
        return _json(self._patch(rt, namespace, name, content_type, request.body, manager=manager,
                                 subresource=sub, dry_run=dry_run))

    # ---------------------------------------------------------------- discovery

    def _discovery(self, what: str, path: str) -> aiohttp.web.Response:
        if what in ("healthz", "livez", "readyz"):
            return aiohttp.web.Response(text="ok", content_type="text/plain")
        if what == "version":
            return _json(self.VERSION_INFO)
        groups = self._groups()
        if what == "root":
            paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz"}
            for group, versions in groups.items():
                paths.add(f"/apis/{group}")
                paths.update(f"/apis/{group}/{v}" for v in versions)
            return _json({"paths": sorted(paths)})
        if what == "api":
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]})
        if what == "apis":
            return _json({"kind": "APIGroupList", "apiVersion": "v1",
                          "groups": [_group_doc(g, vs) for g, vs in sorted(groups.items())]})
        segs = [s for s in path.split("/") if s]
        if what == "group":
            group = segs[1]
            if group not in groups:
                raise _no_such_path()
            return _json({"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, groups[group])})
        group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
        types = [rt for rt in self._types.values() if (rt.group, rt.version) == (group, version)]
        if not types:
            raise _no_such_path()
        resources = []
        for rt in types:
            resources.append({"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                              "kind": rt.kind, "verbs": list(rt.verbs), "shortNames": list(rt.short_names),
                              "categories": list(rt.categories)})
            for sub in rt.subresources:
                sub_group, sub_version, sub_kind, verbs = _SUBRESOURCE_INFO.get(sub, (None, None, None, ("get",)))
                entry = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                         "kind": sub_kind or rt.kind, "verbs": list(verbs)}
                if sub_group:
                    entry.update(group=sub_group, version=sub_version)
                resources.append(entry)
        return _json({"kind": "APIResourceList", "apiVersion": "v1",
                      "groupVersion": f"{group}/{version}" if group else version, "resources": resources})

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rt in self._types.values():
            if rt.group and rt.version not in groups.setdefault(rt.group, []):
                groups[rt.group].append(rt.version)
        return groups

    # ---------------------------------------------------------------- list / watch

    def _list(self, rt: ResourceType, namespace: str | None, query: Mapping[str, str]) -> dict[str, Any]:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), rt)
        items = [o for o in self._items(rt, namespace)
                 if match_labels(labels, o["metadata"].get("labels")) and match_fields(fields, o)]
        start = query.get("continue")
        if start:
            try:
                token = json.loads(base64.urlsafe_b64decode(start.encode()).decode())
                after = (token["ns"], token["name"])
            except (ValueError, KeyError) as exc:
                raise ApiError(400, "continue key is not valid: illegal base64 data") from exc
            items = [o for o in items if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > after]
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"ns": last.get("namespace") or "", "name": last["name"], "rv": self._rv}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta,
                "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]}

    def _delete_collection(self, rt: ResourceType, namespace: str | None, query: Mapping[str, str],
                           dry_run: bool) -> dict[str, Any]:
        listing = self._list(rt, namespace, {k: v for k, v in query.items() if k not in ("limit", "continue")})
        deleted = []
        for item in listing["items"]:
            meta = item["metadata"]
            deleted.append(self._delete(rt, meta.get("namespace"), meta["name"], {}, dry_run=dry_run))
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": deleted}

    def _bookmark(self, rt: ResourceType, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if annotations:
            meta["annotations"] = dict(annotations)
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

    async def _watch(self, raw: aiohttp.web.BaseRequest, rt: ResourceType, namespace: str | None,
                     name: str | None) -> aiohttp.web.StreamResponse:
        query = raw.query
        fields = parse_field_selector(query.get("fieldSelector"), rt)
        if name:
            fields.append(("metadata.name", "=", name))
        watcher = _Watcher(rt, namespace, parse_label_selector(query.get("labelSelector")), fields,
                           _truthy(query.get("allowWatchBookmarks")))
        since = query.get("resourceVersion") or ""
        initial: list[tuple[str, dict[str, Any]]] = []
        expired: dict[str, Any] | None = None
        if since in ("", "0") or _truthy(query.get("sendInitialEvents")):
            initial = [("ADDED", o) for o in self._items(rt, namespace) if watcher.matches(o)]
            if _truthy(query.get("sendInitialEvents")):
                initial.append(("BOOKMARK", self._bookmark(rt, {"k8s.io/initial-events-end": "true"})))
        else:
            try:
                since_rv = int(since)
            except ValueError as exc:
                raise ApiError(400, f'invalid resource version "{since}"') from exc
            if since_rv < self._floor:
                message = f"too old resource version: {since_rv} ({self._floor})"
                if self._expired_as_http:
                    raise ApiError(410, message, reason="Expired")
                expired = ApiError(410, message, reason="Expired").status()
            else:
                for event in self._history:
                    if event.rv > since_rv and (translated := watcher.translate(event)):
                        initial.append(translated)
        # Subscribing happens in the same synchronous step as the snapshot: no change is lost.
        if expired is None:
            self._watchers.add(watcher)
            if self._stopping:
                watcher.queue.put_nowait(_END)
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(raw)
            if expired is not None:
                await response.write(_line({"type": "ERROR", "object": expired}))
                await response.write_eof()
                return response
            for etype, obj in initial:
                await response.write(_line({"type": etype, "object": obj}))
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while True:
                remaining = None if deadline is None else max(deadline - loop.time(), 0)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if item is _END:
                    break
                etype, obj = item
                await response.write(_line({"type": etype, "object": obj}))
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self._watchers.discard(watcher)
        return response

    # ---------------------------------------------------------------- scale

    def _scale(self, raw: aiohttp.web.BaseRequest, request: kmock.Request, rt: ResourceType,
               namespace: str | None, name: str, method: str, manager: str, dry_run: bool) -> aiohttp.web.Response:
        obj = self._peek(rt, namespace, name)
        if obj is None:
            raise _not_found(rt, name)
        scale = _scale_of(obj)
        if method == "GET":
            return _json(scale)
        if method == "PUT":
            body = _load_json(request.body)
            expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if expected and expected != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, f'Operation cannot be fulfilled on {rt.plural}.{rt.group} "{name}": the object '
                                    f'has been modified; please apply your changes to the latest version and try '
                                    f'again', details={"name": name, "kind": rt.plural})
            wanted = body
        elif method == "PATCH":
            content_type = raw.headers.get("Content-Type", "").split(";")[0].strip().lower()
            patch = _load_json(request.body)
            if content_type == "application/json-patch+json":
                wanted = json_patch(scale, patch)
            elif content_type == "application/strategic-merge-patch+json":
                wanted = strategic_merge_patch(scale, patch)
            elif content_type == "application/merge-patch+json":
                wanted = json_merge_patch(scale, patch)
            else:
                raise ApiError(415, "the body of the request was in an unknown format", reason="UnsupportedMediaType")
        else:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        replicas = ((wanted or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                                f'must be greater than or equal to 0')
        candidate = copy.deepcopy(obj)
        candidate["spec"]["replicas"] = replicas
        new = self._normalise(rt, obj, candidate, None)
        result = self._store_update(rt, namespace, name, obj, new, manager=manager, operation="Update",
                                    subresource="scale", dry_run=dry_run)
        return _json(_scale_of(result))

    # ---------------------------------------------------------------- logs

    async def _logs_request(self, raw: aiohttp.web.BaseRequest, namespace: str, name: str) -> aiohttp.web.StreamResponse:
        query = raw.query
        rt = self.resource_type("pods")
        pod = self._peek(rt, namespace, name)
        if pod is None:
            raise _not_found(rt, name)
        spec = pod.get("spec", {})
        names = [c["name"] for c in spec.get("containers", [])]
        init_names = [c["name"] for c in spec.get("initContainers", [])]
        container = query.get("container")
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            if default:
                container = default
            elif len(names) == 1:
                container = names[0]
            elif not names:
                logged = sorted({c for (ns, p, c, _) in self._logs if (ns, p) == (namespace, name)})
                container = logged[0] if len(logged) == 1 else "main"
            else:
                message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
                if init_names:
                    message += f" or one of the init containers: [{' '.join(init_names)}]"
                raise ApiError(400, message)
        if names and container not in names + init_names:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        previous = _truthy(query.get("previous"))
        key = (namespace, name, container, previous)
        if previous and key not in self._logs:
            raise ApiError(400, f'previous terminated container "{container}" in pod "{name}" not found')
        if not previous:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting")
                if cs.get("name") == container and waiting is not None:
                    raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: '
                                        f'{waiting.get("reason") or "ContainerCreating"}')
        entries = list(self._logs.get(key, []))
        if query.get("sinceSeconds") or query.get("sinceTime"):
            if query.get("sinceTime"):
                since = _parse_time(query["sinceTime"])
            else:
                since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=int(query["sinceSeconds"]))
            entries = [e for e in entries if _parse_time(e[0]) >= since]
        if query.get("tailLines") is not None:
            tail = int(query["tailLines"])
            entries = entries[-tail:] if tail > 0 else []
        timestamps = _truthy(query.get("timestamps"))
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None

        def render(entry: tuple[str, str]) -> bytes:
            return (f"{entry[0]} {entry[1]}\n" if timestamps else f"{entry[1]}\n").encode()

        body = b"".join(render(e) for e in entries)
        follow = _truthy(query.get("follow")) and not previous
        if not follow:
            return aiohttp.web.Response(body=body[:limit] if limit is not None else body,
                                        content_type="text/plain", charset="utf-8")
        follower = _LogFollower(namespace, name, container)
        self._followers.add(follower)
        if self._stopping:
            follower.queue.put_nowait(_END)
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        sent = 0
        try:
            await response.prepare(raw)
            if body:
                chunk = body[:limit] if limit is not None else body
                await response.write(chunk)
                sent += len(chunk)
            while limit is None or sent < limit:
                item = await follower.queue.get()
                if item is _END:
                    break
                chunk = render(item)
                if limit is not None:
                    chunk = chunk[:limit - sent]
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._followers.discard(follower)
        return response

    # ---------------------------------------------------------------- port-forward

    async def _portforward(self, raw: aiohttp.web.BaseRequest, namespace: str, name: str) -> aiohttp.web.StreamResponse:
        rt = self.resource_type("pods")
        pod = self._peek(rt, namespace, name)
        if pod is None:
            raise _not_found(rt, name)
        if (pod.get("status") or {}).get("phase") != "Running":
            raise ApiError(400, f"unable to upgrade connection: pod {name} is not running")
        try:
            ports = [int(p) for p in raw.query.get("ports", "").split(",") if p.strip()]
        except ValueError as exc:
            raise ApiError(400, "invalid port in ports parameter") from exc
        if not ports:
            raise ApiError(400, "at least one port must be specified")
        ws = aiohttp.web.WebSocketResponse(protocols=("v4.channel.k8s.io", "portforward.k8s.io"))
        if not ws.can_prepare(raw).ok:
            raise ApiError(400, "Upgrade request required (port-forward needs a websocket)")
        session = _PortForwardSession(namespace, name, ports)
        self._pf_sessions.add(session)
        if self._stopping:
            session.stop.set()
        writers: list[asyncio.StreamWriter | None] = []
        tasks: list[asyncio.Task[None]] = []
        try:
            await ws.prepare(raw)
            for index, port in enumerate(ports):
                header = struct.pack("<H", port)
                await ws.send_bytes(bytes([2 * index]) + header)
                await ws.send_bytes(bytes([2 * index + 1]) + header)
            failed = False
            for index, port in enumerate(ports):
                target = self._pf_targets.get((namespace, name, port))
                error = None
                writer = None
                if target is None:
                    error = "connect: connection refused (no target registered with the emulator)"
                else:
                    try:
                        reader, writer = await asyncio.open_connection(*target)
                        tasks.append(asyncio.create_task(self._pf_tcp_to_ws(reader, ws, 2 * index)))
                    except OSError as exc:
                        error = f"connect: {exc.strerror or exc}"
                writers.append(writer)
                if error:
                    message = (f"error forwarding port {port} to pod {pod['metadata']['uid']}, uid : failed to "
                               f"connect to localhost:{port} inside namespace \"{name}\", IPv4: dial tcp4 "
                               f"127.0.0.1:{port}: {error}")
                    self.portforward_errors.append(message)
                    await ws.send_bytes(bytes([2 * index + 1]) + message.encode())
                    failed = True
            if not failed:
                tasks.append(asyncio.create_task(self._pf_ws_to_tcp(ws, writers)))
                stopper = asyncio.create_task(session.stop.wait())
                await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if session.error:
                    self.portforward_errors.append(session.error)
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_bytes(b"\x01" + session.error.encode())
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._pf_sessions.discard(session)
            for task in tasks:
                task.cancel()
            for writer in writers:
                if writer is not None:
                    writer.close()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _pf_tcp_to_ws(self, reader: asyncio.StreamReader, ws: aiohttp.web.WebSocketResponse,
                            channel: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while data := await reader.read(65536):
                await ws.send_bytes(bytes([channel]) + data)

    async def _pf_ws_to_tcp(self, ws: aiohttp.web.WebSocketResponse,
                            writers: list[asyncio.StreamWriter | None]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        return
                    continue
                channel, payload = message.data[0], message.data[1:]
                index = channel // 2
                if channel % 2 == 0 and index < len(writers) and (writer := writers[index]) is not None:
                    writer.write(payload)
                    await writer.drain()

    # ---------------------------------------------------------------- internals

    @property
    def _stopping(self) -> bool:
        """A request is being served while `stop()` takes the server down (or after)."""
        return self._server is None

    def _end_streams(self) -> None:
        for watcher in self._watchers:
            watcher.queue.put_nowait(_END)
        for follower in self._followers:
            follower.queue.put_nowait(_END)
        for session in self._pf_sessions:
            session.stop.set()


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------

def _json(data: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _status_response(exc: ApiError) -> aiohttp.web.Response:
    response = _json(exc.status(), exc.code)
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


def _line(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode() or "null")
    except ValueError as exc:
        raise ApiError(400, f"error decoding request body: {exc}") from exc


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _strip_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def _manager_from_agent(agent: str) -> str:
    return (agent.split("/", 1)[0].strip() or "unknown") if agent else "unknown"


def _owner_ref(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    match_labels_ = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in match_labels_.items())},
    }


def _merge_conditions(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]], now: str,
                      updates: bool = False) -> list[dict[str, Any]]:
    """Conditions replaced by type, the others kept in place. lastTransitionTime moves only
    when the status does, as the API's controllers keep it; workloads' lastUpdateTime always."""
    merged = [dict(c) for c in old]
    for cond in new:
        cond = dict(cond)
        index = next((i for i, c in enumerate(merged) if c.get("type") == cond["type"]), None)
        before = merged[index] if index is not None else {}
        if "lastTransitionTime" not in cond:
            same = before.get("status") == cond.get("status") and before.get("lastTransitionTime")
            cond["lastTransitionTime"] = before["lastTransitionTime"] if same else now
        if updates:
            cond.setdefault("lastUpdateTime", now)
        if index is None:
            merged.append(cond)
        else:
            merged[index] = cond
    return merged


def _kubelet_conditions(spec: Mapping[str, Any], status: Mapping[str, Any], now: str) -> list[dict[str, Any]]:
    """Initialized, ContainersReady and Ready as the kubelet derives them from the container
    statuses (reasons and messages in its words); other conditions are kept."""
    init_names = [c["name"] for c in spec.get("initContainers") or []]
    sidecars = {c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    # An init container is done once it exited 0; a sidecar (restartPolicy Always) once started.
    init_done = {cs["name"] for cs in status.get("initContainerStatuses") or []
                 if ((cs.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
                 or (cs["name"] in sidecars and cs.get("started"))}
    incomplete = [n for n in init_names if n not in init_done]
    ready = {cs["name"] for cs in status.get("containerStatuses") or [] if cs.get("ready")}
    unready = [c["name"] for c in spec.get("containers") or [] if c["name"] not in ready]
    initialized: dict[str, Any] = {"type": "Initialized", "status": "False" if incomplete else "True"}
    if incomplete:
        initialized.update(reason="ContainersNotInitialized",
                           message=f"containers with incomplete status: [{' '.join(incomplete)}]")
    containers_ready: dict[str, Any] = {"type": "ContainersReady", "status": "False" if unready else "True"}
    if unready:
        containers_ready.update(reason="ContainersNotReady",
                                message=f"containers with unready status: [{' '.join(unready)}]")
    pod_ready = dict(containers_ready, type="Ready")  # no readiness gates here
    return _merge_conditions(status.get("conditions") or [], [initialized, containers_ready, pod_ready], now)


def _container_status(container: Mapping[str, Any], phase: str, ready: bool) -> dict[str, Any]:
    status: dict[str, Any] = {"name": container["name"], "image": container.get("image", ""),
                              "imageID": "", "restartCount": 0, "started": phase == "Running",
                              "ready": bool(ready and phase == "Running")}
    if phase == "Running":
        status["state"] = {"running": {"startedAt": _now()}}
        status["containerID"] = f"containerd://{hashlib.sha256(container['name'].encode()).hexdigest()}"
    elif phase in ("Succeeded", "Failed"):
        status["state"] = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                          "reason": "Completed" if phase == "Succeeded" else "Error",
                                          "finishedAt": _now()}}
    else:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
    return status


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    preferred = versions[0]
    return {"name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred}}


# --------------------------------------------------------------------------------------
# pytest fixture
# --------------------------------------------------------------------------------------

@pytest_asyncio.fixture
async def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KubeEmulator]:
    """A running emulator; ``KUBECONFIG`` points at it for the duration of the test.

    Use it from a test module with ``from tests.support.kube_emulator import kube  # noqa: F401``
    (or list the module in ``pytest_plugins``). Unexpected exceptions inside the emulator fail
    the test at teardown.
    """
    async with KubeEmulator() as emulator:
        emulator.kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig))
        yield emulator
        problems = list(emulator.errors)
    if problems:
        pytest.fail("the Kubernetes emulator failed internally:\n" + "\n".join(
            "".join(traceback.format_exception(p)) for p in problems), pytrace=False)
