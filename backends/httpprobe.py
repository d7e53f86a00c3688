"""HTTP health URLs (config `health.urls`): probed on an interval, results in the store.

The engines' own health view (Compose healthchecks, Kubernetes readiness) says what the
engine believes; these checks say what a client gets. Each configured URL is matched
against the running workloads of both sides, and each match becomes a target:

- Compose: `http://127.0.0.1:<host port><path>` of a running container's published port
  (a binding on every address is reached on loopback);
- k3s: `http://<ClusterIP>:<port><path>` of the Service named like the workload in its
  namespace, else of a Service selecting its pods;
- either side: whatever `extra_targets(workload)` answers first (a port-forward's
  `http://127.0.0.1:<local port>`), since a forward is reachable where a ClusterIP
  usually is not.

Results are `HttpCheck` objects applied to the store (`ObjectChanged`, `ObjectGone`), one
per workload and path. Probing on an interval is what a health URL is; everything else is
driven by the store's changes: targets start, move and stop as workloads appear, change
ports or go, with no polling of the store.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from backends.config import HealthConfig, HealthUrlConfig
from backends.model import (
    HTTP_CHECK_RECENT,
    AdapterEvent,
    HttpCheck,
    KubeService,
    ObjectChanged,
    ObjectGone,
    Port,
    Source,
    Workload,
    WorkloadKey,
)
from backends.store import Change, Store

log = logging.getLogger(__name__)

Apply = Callable[[AdapterEvent], object]
# workload -> a base URL ("http://127.0.0.1:40123") to probe instead, or None.
ExtraTargets = Callable[[Workload], "str | None"]


def _binding_order(port: Port) -> int:
    """IPv4 bindings first. Docker 20.10 may publish a container port on 0.0.0.0 and on
    :: with two *different* host ports (seen with random ports), and its :: listener is
    IPv6-only: 127.0.0.1 at the :: binding's port is refused."""
    ip = port.host_ip
    if ip in (None, "", "0.0.0.0"):
        return 0
    return 1 if ":" not in ip else 2 if ip == "::" else 3


def _loopback(host_ip: str | None) -> str:
    """Where a binding is reached from this machine: a binding on every address on
    loopback (of its own family), a specific address at itself."""
    if host_ip in (None, "", "0.0.0.0"):
        return "127.0.0.1"
    return "::1" if host_ip == "::" else host_ip


# The store keys of Kubernetes Services, the only objects that can move a k3s target.
_FORWARD_PREFIX = "forward/"  # PortForward.key
_SERVICE_PREFIX = f"{Source.K3S}/{KubeService.kind}/"


@dataclass(frozen=True, slots=True)
class Target:
    """What one check probes: `url`, or, when nothing can be probed, why (`problem`)."""

    workload: WorkloadKey
    path: str
    url: str
    problem: str
    expect: tuple[tuple[int, int], ...]

    @property
    def key(self) -> str:
        # Must equal HttpCheck.key: the store holds the results under it.
        return f"probe/{self.workload.id}{self.path}"


def describe_statuses(expect: Iterable[tuple[int, int]]) -> str:
    """((200, 399), (404, 404)) -> "200-399, 404"."""
    return ", ".join(f"{low}" if low == high else f"{low}-{high}" for low, high in expect)


def describe_error(exc: BaseException, timeout: float) -> str:
    """A failed request in the words a user debugging a service needs."""
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"timed out after {timeout:g} s"
    # httpx wraps the socket error (sometimes twice, through "All connection attempts
    # failed"): the cause at the bottom is what tells refused from unresolvable.
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host: {cause.strerror or cause}"
        if isinstance(cause, ConnectionResetError):
            return "connection reset without an answer"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "no route to host" if cause.errno == errno.EHOSTUNREACH else "network unreachable"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending a response" in str(exc):
            # What Docker's proxy does when nothing listens in the container: it accepts
            # on the host port, fails to reach the container and hangs up.
            return "connection closed without an answer"
        return f"bad HTTP answer: {exc}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _http_url(host: str, port: int, path: str) -> str:
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal
    return f"http://{host}:{port}{path}"


def _pinned_first(urls: Iterable[HealthUrlConfig]) -> list[HealthUrlConfig]:
    # "shop/web" is more specific than "web": when both name a workload with the same
    # path, the pinned entry's port and statuses win (the check key holds one of them).
    return sorted(urls, key=lambda u: "/" not in u.service)


def _matches(ref: str, key: WorkloadKey) -> bool:
    group, _, name = ref.rpartition("/")
    return name == key.name and (not group or group == key.group)


class HttpProber:
    """Probes `settings.urls` for the workloads in `store`; see the module docstring.

    `run(apply)` runs until cancelled (or `close()`); results go through `apply`
    (`store.apply` in the hub). `extra_targets` may be set at any time; call `refresh()`
    when what it would answer changes, since the store does not know of it."""

    def __init__(self, settings: HealthConfig, store: Store, *, extra_targets: ExtraTargets | None = None) -> None:
        self.settings = settings
        self.store = store
        self.extra_targets = extra_targets
        self._urls = _pinned_first(settings.urls)
        self._apply: Apply | None = None
        self._client: httpx.AsyncClient | None = None
        self._targets: dict[str, Target] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._recent: dict[str, deque[bool]] = {}
        self._dirty = asyncio.Event()
        self._closed = False

    @property
    def targets(self) -> dict[str, Target]:
        """Check key -> what it probes now (or why it cannot)."""
        return dict(self._targets)

    def refresh(self) -> None:
        """Resolve every target again (after `extra_targets` would answer differently)."""
        self._dirty.set()

    async def run(self, apply: Apply) -> None:
        self._apply = apply
        self._closed = False
        timeout = self.settings.timeout_seconds
        # No keep-alive: each probe opens its own connection, so its latency is what a new
        # client sees, and no idle socket is held to every service between probes. No
        # proxy from the environment: these are loopback and cluster addresses.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            trust_env=False,
        )
        unsubscribe = self.store.subscribe(self._store_changed)
        self._dirty.set()  # the workloads already in the store
        try:
            while True:
                await self._dirty.wait()
                if self._closed:  # close() from elsewhere ends the run too
                    return
                # Cleared before reconciling: a change arriving meanwhile is seen next
                # turn. A burst of changes becomes one reconcile.
                self._dirty.clear()
                self._reconcile()
        finally:
            unsubscribe()
            await self.close()

    async def close(self) -> None:
        """Stop every probe and close the HTTP client; the last results stay in the store."""
        self._closed = True
        self._dirty.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        # Forgotten, so that a later run() starts every target afresh.
        self._targets.clear()
        self._recent.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ---- what to probe ------------------------------------------------------------------

    def _store_changed(self, change: Change) -> None:
        # Our own results come back through the store too: only workloads, instances
        # (ports, running state, pod labels), Services and port-forwards (a forward's
        # state, through `extra_targets`) can move a target.
        moving = (_SERVICE_PREFIX, _FORWARD_PREFIX)
        if (
            change.workloads
            or change.workloads_removed
            or change.instances
            or change.instances_removed
            or any(k.startswith(moving) for k in change.objects)
            or any(k.startswith(moving) for k in change.objects_removed)
        ):
            self._dirty.set()

    def _desired(self) -> dict[str, Target]:
        targets: dict[str, Target] = {}
        for workload in self.store.workloads.values():
            # A stopped service has no HTTP health to speak of: the engine's view already
            # says "stopped", a red probe beside it would only repeat that.
            if workload.running == 0:
                continue
            for url in self._urls:
                if _matches(url.service, workload.key):
                    target = self._resolve(workload, url)
                    targets.setdefault(target.key, target)
        return targets

    def _resolve(self, workload: Workload, url: HealthUrlConfig) -> Target:
        def target(where: str = "", problem: str = "") -> Target:
            return Target(workload.key, url.path, where, problem, url.expect)

        if self.extra_targets is not None:
            try:
                base = self.extra_targets(workload)
            except Exception:  # a broken hook must not stop the built-in targets
                log.exception("extra_targets failed for %s", workload.id)
                base = None
            if base:
                return target(base.rstrip("/") + url.path)
        if workload.key.source == Source.COMPOSE:
            return target(*self._compose_target(workload, url))
        return target(*self._k3s_target(workload, url))

    def _compose_target(self, workload: Workload, url: HealthUrlConfig) -> tuple[str, str]:
        running = sorted(
            (i for i in self.store.instances_of(workload.id) if i.running), key=lambda i: (i.number, i.name)
        )
        for inst in running:
            ports = [
                p for p in inst.ports
                if p.protocol == "tcp" and p.host_port is not None and url.port in (None, p.container_port)
            ]
            if ports:
                # The lowest container port (the instance's ports are sorted), its best binding.
                first = min(p.container_port for p in ports)
                port = min((p for p in ports if p.container_port == first), key=_binding_order)
                return _http_url(_loopback(port.host_ip), port.host_port, url.path), ""
        if url.port is not None:
            return "", f"port {url.port} is not published"
        return "", "no published port"

    def _k3s_target(self, workload: Workload, url: HealthUrlConfig) -> tuple[str, str]:
        namespace, name = workload.key.group, workload.key.name
        services = sorted(
            (s for s in self.store.objects_of(KubeService).values() if s.namespace == namespace),
            key=lambda s: s.name,
        )
        pod_labels = [i.label_map() for i in self.store.instances_of(workload.id)]

        def selects(service: KubeService) -> bool:
            return bool(service.selector) and any(
                all(labels.get(k) == v for k, v in service.selector) for labels in pod_labels
            )

        candidates = [s for s in services if s.name == name] + [s for s in services if s.name != name and selects(s)]
        if not candidates:
            return "", f"no ClusterIP service (no Service named {name} or selecting its pods in {namespace})"
        with_ip = [s for s in candidates if s.cluster_ip and s.cluster_ip != "None"]
        if not with_ip:
            return "", f"no ClusterIP service ({candidates[0].name} is {candidates[0].type}, headless or without an IP)"
        service = with_ip[0]
        tcp = [p for p in service.ports if p.protocol.upper() == "TCP"]
        if url.port is None:
            chosen = tcp[0] if tcp else None
        else:
            # The configured port may be the Service's or the container's (the one a
            # Compose file publishes): either names the same endpoint.
            chosen = next((p for p in tcp if p.port == url.port), None) or next(
                (p for p in tcp if p.target_port == str(url.port)), None
            )
        if chosen is None:
            wanted = f"port {url.port}" if url.port is not None else "TCP port"
            return "", f"Service {service.name} has no {wanted}"
        return _http_url(service.cluster_ip, chosen.port, url.path), ""

    def _reconcile(self) -> None:
        if self._closed:
            return
        desired = self._desired()
        for key in [k for k in self._targets if k not in desired]:
            del self._targets[key]
            self._stop(key)
            self._recent.pop(key, None)
            self._publish(ObjectGone(key))
        for key, target in desired.items():
            if self._targets.get(key) == target:
                continue
            self._targets[key] = target
            self._stop(key)
            if target.url:
                self._tasks[key] = asyncio.create_task(self._probe_loop(target), name=f"probe {key}")
            else:
                self._publish(ObjectChanged(self._check(target, error=target.problem)))

    def _stop(self, key: str) -> None:
        # Cancelled, not awaited: a cancelled probe raises at its next resumption, before
        # it can publish, so no stale result follows the change that stopped it.
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    # ---- probing ------------------------------------------------------------------------

    async def _probe_loop(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.interval_seconds
        due = loop.time()
        while True:
            check = await self._probe_once(target)
            recent = self._recent.setdefault(target.key, deque(maxlen=HTTP_CHECK_RECENT))
            recent.append(check.ok)
            self._publish(ObjectChanged(replace(check, recent=tuple(recent))))
            # On a fixed cadence; a probe slower than the interval (a timeout longer than
            # it) is followed at once by the next, never by a burst catching up.
            due = max(due + interval, loop.time())
            await asyncio.sleep(due - loop.time())

    async def _probe_once(self, target: Target) -> HttpCheck:
        """One request to `target.url`; never raises (but for cancellation)."""
        client = self._client
        assert client is not None, "probing needs a running prober"
        timeout = self.settings.timeout_seconds
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        status: int | None = None
        reason = ""
        latency: float | None = None
        try:
            # httpx's timeout bounds each phase (connect, every read); this bounds the
            # whole request, so a server trickling bytes cannot hold a probe forever.
            async with asyncio.timeout(timeout):
                # Streamed and not read: the status is the answer; a huge body is not
                # downloaded every interval.
                async with client.stream("GET", target.url) as response:
                    status = response.status_code
                    reason = response.reason_phrase
            latency = (time.perf_counter() - started) * 1000
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            return self._check(target, url=target.url, checked_at=checked_at, error=describe_error(exc, timeout))
        ok = any(low <= status <= high for low, high in target.expect)
        error = "" if ok else f"HTTP {status} {reason}".rstrip() + f", expected {describe_statuses(target.expect)}"
        return self._check(
            target, url=target.url, ok=ok, status=status, latency_ms=latency, checked_at=checked_at, error=error
        )

    def _check(self, target: Target, **fields: object) -> HttpCheck:
        values: dict[str, object] = {
            "url": "",
            "ok": False,
            "status": None,
            "latency_ms": None,
            "error": "",
            "checked_at": datetime.now(UTC),
        }
        values.update(fields)
        recent = tuple(self._recent.get(target.key, ()))
        return HttpCheck(workload=target.workload, path=target.path, recent=recent, **values)  # type: ignore[arg-type]

    def _publish(self, event: AdapterEvent) -> None:
        if self._apply is None:
            return
        try:
            self._apply(event)
        except Exception:  # a failing consumer must not end the probing of every service
            log.exception("applying %r failed", event)

