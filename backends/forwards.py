"""Port-forwards that survive: local listeners that relay each connection to a ready pod.

kubectl (and kr8s's `PortForward`) pick one pod when the forward starts and die with it, so
a restart or a rollout silently ends every forward. Here a forward is a local listener and
a *rule* for picking a pod; the pod is picked again for every new connection, from what the
store knows right now:

- pod: that pod while it runs (ready or not, as kubectl); once it is gone or not running
  (deleted, restarting, replaced by a rollout), a ready pod of the same workload — its
  replacement;
- deployment / statefulset: a ready pod of the workload;
- service: a ready pod whose labels match the Service's selector, in its namespace, on the
  Service port's targetPort (a number, or the name of a pod's container port).

Connections already open stay on their pod (a TCP stream cannot move); new ones follow.
The pod a forward uses is kept while it stays ready, so that connections do not scatter.

Each connection is its own stream through the API server's portforward websocket, opened
by `open_port(namespace, pod, port)` (the k3s adapter's, via the hub). Its failures are
classified by type (see the exceptions below): the API server gone (wait and retry, the
forward is RECONNECTING), the pod not usable (try another), forbidden (FAILED: waiting will
not fix it), an error from the pod's side (that connection ends, the forward stays).

State is derived from the store and recomputed when it changes (a subscription: no polling
loop), and published to the store as `PortForward` objects, at most every
`publish_interval` per forward, so that byte counters do not flood the store's subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import itertools
import logging
import math
import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from backends.adapter import ActionError
from backends.model import (
    FORWARD_KINDS,
    AdapterEvent,
    ConnState,
    ForwardSpec,
    ForwardState,
    Instance,
    KubeService,
    ObjectChanged,
    ObjectGone,
    PortForward,
    RunState,
    ServicePort,
    Source,
    Workload,
    WorkloadKey,
)
from backends.store import Change, Store

log = logging.getLogger(__name__)

Apply = Callable[[AdapterEvent], object]


# ---- what opening a pod's port may raise -------------------------------------------------


class PortStreamError(ActionError):
    """Opening a pod's port failed, or its stream broke; the text says why. Anything not
    more specific is treated like `ApiUnreachable`: waiting may fix it."""


class ApiUnreachable(PortStreamError):
    """The API server cannot be reached, or Kubernetes is not connected (yet)."""


class PodUnavailable(PortStreamError):
    """This pod cannot take a stream now (gone, not running): another pod may."""


class PortForbidden(PortStreamError):
    """The cluster will not let us port-forward (RBAC 403, bad credentials): waiting will
    not fix it."""


class RemotePortError(PortStreamError):
    """The pod's side answered on the error channel: nothing listens on the port, the pod's
    network is gone… `text` is the server's own words."""

    def __init__(self, pod: str, port: int, text: str) -> None:
        self.pod, self.port, self.text = pod, port, text.strip()
        super().__init__(f"port {port} of pod {pod}: {self.text}")

    @property
    def summary(self) -> str:
        """The gist: "connect: connection refused" out of the kubelet's long sentence
        ("error forwarding port 8080 to pod …, uid : failed to connect to localhost:8080
        inside namespace …, IPv4: dial tcp4 127.0.0.1:8080: connect: connection refused
        IPv6 dial tcp6 …")."""
        found = _CONNECT_ERROR.search(self.text)
        text = found.group(0) if found else " ".join(self.text.split())
        return text if len(text) <= 200 else text[:199] + "…"


_CONNECT_ERROR = re.compile(r"connect: .+?(?=\s+IPv6\b|$)", re.DOTALL)


class ForwardError(ActionError):
    """A forward cannot be started as asked; `suggestion` says what would work (and
    `free_port` is a local port that is free, when the asked one was not)."""

    def __init__(self, message: str, suggestion: str = "", *, free_port: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
        self.free_port = free_port

    def __str__(self) -> str:
        return f"{self.message}; {self.suggestion}" if self.suggestion else self.message


# ---- what the manager needs from Kubernetes ----------------------------------------------


@runtime_checkable
class PortStream(Protocol):
    """A byte stream to one port of one pod (the portforward websocket's data channel)."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes:
        """The next bytes from the pod; b"" once the stream ended. Raises RemotePortError
        when the pod's side reports an error."""
        ...


OpenPort = Callable[[str, str, int], AbstractAsyncContextManager[PortStream]]


@runtime_checkable
class PortOpener(Protocol):
    """An adapter that can open pods' ports (the k3s adapter)."""

    def open_port(self, namespace: str, pod: str, port: int) -> AbstractAsyncContextManager[PortStream]: ...


# ---- tunables --------------------------------------------------------------------------------

# Bytes read from a local client per send: big frames cost less per byte through the
# websocket; the kubelet takes frames of any size.
_CHUNK = 256 * 1024
# After the local client stops sending (it closed, or only half-closed its side), answers
# from the pod are still relayed while they keep coming at least this often. The v4
# portforward protocol cannot pass a half-close on, so this is what lets `printf 'GET /…' |
# nc -N` get its answer, and still frees the stream soon after a client that is gone.
_LINGER = 1.0
# Retrying a connection's stream while the API server cannot be reached: first and
# longest pause (a store change wakes the wait earlier).
_RETRY_MIN, _RETRY_MAX = 0.2, 2.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ready(pod: Instance) -> bool:
    """Would the endpoints controller send traffic to it: running, Ready, not terminating
    (a terminating pod is REMOVING)."""
    return pod.state == RunState.RUNNING and any(c.type == "Ready" and c.status == "True" for c in pod.conditions)


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _reach(address: str) -> str:
    """Where a listener on `address` is reached from this machine."""
    if address in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    return "::1" if address == "::" else address


def _http(address: str, port: int) -> str:
    host = _reach(address)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bindable(address: str, port: int) -> bool:
    """Could a listener bind `address:port` now (with SO_REUSEADDR, as asyncio's does)?"""
    host = _reach(address) if address == "localhost" else address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def listening_inodes(port: int, proc: str = "/proc") -> set[str]:
    """Socket inodes of TCP listeners (IPv4 and IPv6) on local `port`, from /proc/net."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/net/{name}") as table:
                next(table, None)  # the header
                for line in table:
                    fields = line.split()
                    # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except (OSError, ValueError, IndexError):
            continue
    return inodes


def socket_owner(port: int, proc: str = "/proc") -> str:
    """"pid 1234 (python3 -m http.server 8080)" for the process listening on local TCP
    `port`, "another process" when the listener's owner cannot be read (another user's
    process without root), "" when no listener is found."""
    inodes = listening_inodes(port, proc)
    if not inodes:
        return ""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return "another process"
    for pid in sorted(pids, key=int):
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                if os.readlink(f"{proc}/{pid}/fd/{fd}") in wanted:
                    return f"pid {pid} ({_command(proc, pid)})"
            except OSError:
                continue
    return "another process"


def _command(proc: str, pid: str) -> str:
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    if not argv:
        try:
            with open(f"{proc}/{pid}/comm") as f:
                argv = [f.read().strip()]
        except OSError:
            return "?"
    text = " ".join(" ".join(argv).split())  # one line, whatever the arguments hold
    return text if len(text) <= 80 else text[:79] + "…"


# ---- one forward -------------------------------------------------------------------------------


class _Forward:
    """A forward's moving parts; `PortForward` is what the store sees of it."""

    def __init__(self, spec: ForwardSpec, started_at: datetime) -> None:
        self.spec = spec
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.state = ForwardState.STARTING
        self.pod = ""
        self.pod_port = 0
        self.last_pod = ""  # the last pod that was chosen ("pod" goes "" in between)
        self.previous_pod = ""
        self.switched_at: datetime | None = None
        self.seen_pod = False  # a pod was resolved once (STARTING is over)
        # kind "pod": the named pod's workload, remembered so that its replacement is found
        # once the pod itself is gone.
        self.workload: WorkloadKey | None = None
        self.connections = 0
        self.total_connections = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.started_at = started_at
        self.reason = ""  # why the forward is not ACTIVE
        self.conn_error = ""  # the last connection's error (the error channel)
        self.forbidden = ""  # a 403: FAILED until a stream opens or a restart
        self.api_error = ""  # a stream could not be opened: the API server is unreachable
        self.wake = asyncio.Event()  # set (and replaced) on every store change that matters
        self.published: PortForward | None = None
        self.last_publish = -math.inf
        self.publish_handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def last_error(self) -> str:
        if self.state in (ForwardState.RECONNECTING, ForwardState.FAILED, ForwardState.STARTING) and self.reason:
            return self.reason
        return self.conn_error

    def snapshot(self) -> PortForward:
        return PortForward(
            spec=self.spec, state=self.state, pod=self.pod, pod_port=self.pod_port,
            connections=self.connections, total_connections=self.total_connections,
            bytes_in=self.bytes_in, bytes_out=self.bytes_out, started_at=self.started_at,
            last_error=self.last_error, previous_pod=self.previous_pod, switched_at=self.switched_at,
        )

    def woken(self) -> asyncio.Event:
        """The event the next relevant change sets."""
        return self.wake

    def wake_all(self) -> None:
        self.wake.set()
        self.wake = asyncio.Event()


# The store keys of Kubernetes Services (what a service forward resolves through).
_SERVICE_PREFIX = f"{Source.K3S}/{KubeService.kind}/"
_K3S_PREFIX = f"{Source.K3S}/"


class ForwardManager:
    """Every port-forward of the session; see the module docstring.

    A `Prober` for the hub: `run(apply)` until cancelled or `close()`; `close()` stops
    every forward (after it, nothing listens). `start()` may be called before `run()`:
    until then updates go straight to `store.apply`."""

    def __init__(
        self,
        store: Store,
        open_port: OpenPort,
        *,
        allow_remote_bind: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        pod_wait: float = 10.0,
        publish_interval: float = 0.5,
    ) -> None:
        self.store = store
        self._open_port = open_port
        self.allow_remote_bind = allow_remote_bind
        self._clock = clock
        self.pod_wait = pod_wait
        self.publish_interval = publish_interval
        self._apply: Apply = store.apply
        self._forwards: dict[str, _Forward] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._refresh_due = False
        self._closed = asyncio.Event()

    # ---- the Prober protocol --------------------------------------------------------------

    async def run(self, apply: Apply) -> None:
        self._apply = apply
        self._closed = asyncio.Event()
        self._subscribe()
        self._refresh()  # the store may have moved on before we ran
        try:
            await self._closed.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop every forward: no listener, no connection, no stream is left."""
        self._closed.set()
        for fw in list(self._forwards.values()):
            if fw.running:
                await self._shutdown(fw)
                fw.state = ForwardState.STOPPED
                self._publish(fw)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---- the API ------------------------------------------------------------------------------

    @property
    def forwards(self) -> dict[str, PortForward]:
        """Key -> the forward as it stands now (fresher than the store's throttled copy)."""
        return {key: fw.snapshot() for key, fw in self._forwards.items()}

    async def start(self, spec: ForwardSpec) -> PortForward:
        """Listen on `spec.address:spec.local_port` at once (local_port 0: any free port, and
        the spec says which) and forward every connection; raises ForwardError when the
        forward cannot be as asked. A stopped forward with the same key is replaced."""
        self._check(spec)
        existing = self._forwards.get(spec.key)
        if existing is not None and existing.running:
            free = self.suggest_local_port(spec.local_port, spec.address)
            raise ForwardError(
                f"local port {spec.local_port} on {spec.address} is already forwarded to {existing.spec.target}",
                f"stop that forward first, or use local port {free}", free_port=free,
            )
        if spec.local_port == 0 and spec.address == "localhost":
            # "localhost" is two listeners (127.0.0.1 and ::1): port 0 would give each its own.
            spec = ForwardSpec(spec.namespace, spec.kind, spec.name, spec.remote_port,
                               self.suggest_local_port(_any_free_port()), spec.address)
        fw = _Forward(spec, self._clock())
        server = await self._listen(fw)
        if spec.local_port == 0:  # the OS chose: the spec (and the key) say which
            port = server.sockets[0].getsockname()[1]
            fw.spec = spec = ForwardSpec(spec.namespace, spec.kind, spec.name, spec.remote_port, port, spec.address)
        fw.server = server
        self._forwards[spec.key] = fw
        self._subscribe()
        self._update(fw)
        self._publish(fw)
        log.info("forward %s -> %s/%s started", spec.key, spec.namespace, spec.target)
        return fw.snapshot()

    async def stop(self, key: str) -> PortForward:
        """Close the listener and every connection of the forward; it stays listed, STOPPED,
        so that it can be restarted (or saved)."""
        fw = self._get(key)
        await self._shutdown(fw)
        fw.state = ForwardState.STOPPED
        self._publish(fw)
        return fw.snapshot()

    async def restart(self, key: str) -> PortForward:
        """Stop the forward (if it runs) and start it afresh: new listener, counters at 0,
        a FAILED state forgotten."""
        fw = self._get(key)
        if fw.running:
            await self.stop(key)
        return await self.start(fw.spec)

    async def remove(self, key: str) -> None:
        """Stop the forward and forget it (it leaves the store)."""
        fw = self._get(key)
        await self._shutdown(fw)
        self._forwards.pop(key, None)
        self._emit(ObjectGone(key))

    def url_for(self, workload: WorkloadKey | Workload) -> str | None:
        """The local URL of an ACTIVE forward that reaches `workload` ("http://127.0.0.1:8080"),
        for HTTP health probes; None if there is none. A `Workload` is taken too, so that
        this can be HttpProber's `extra_targets` as it is."""
        if isinstance(workload, Workload):
            workload = workload.key
        if workload.source != Source.K3S:
            return None
        for fw in self._forwards.values():  # the oldest forward first
            if fw.running and fw.state == ForwardState.ACTIVE and self._reaches(fw, workload):
                return _http(fw.spec.address, fw.spec.local_port)
        return None

    def suggest_local_port(self, preferred: int, address: str = "127.0.0.1") -> int:
        """`preferred` if a forward could listen there now, else the next port up that is
        free (then from 1024 up): not one of our forwards', not a Compose container's
        published port, and bindable."""
        taken = {fw.spec.local_port for fw in self._forwards.values() if fw.running}
        taken |= set(self._compose_ports())
        start = min(max(preferred, 1), 65535)
        for port in itertools.chain(range(start, 65536), range(1024, start)):
            if port not in taken and _bindable(address, port):
                return port
        raise ForwardError(f"no free local port on {address}")

    # ---- starting: checks and the listener ------------------------------------------------------

    def _check(self, spec: ForwardSpec) -> None:
        if spec.kind not in FORWARD_KINDS:
            raise ForwardError(f"cannot forward to a {spec.kind!r}", f"forward to a {', a '.join(FORWARD_KINDS)}")
        if not spec.namespace or not spec.name:
            raise ForwardError("a forward needs a namespace and a name")
        if not 1 <= spec.remote_port <= 65535:
            raise ForwardError(f"remote port {spec.remote_port} is not a TCP port", "use a port from 1 to 65535")
        if not 0 <= spec.local_port <= 65535:
            raise ForwardError(f"local port {spec.local_port} is not a TCP port", "use a port from 1 to 65535")
        if not _loopback(spec.address):
            try:
                ipaddress.ip_address(spec.address)
            except ValueError:
                raise ForwardError(
                    f"bind address {spec.address!r} is not an IP address", "use 127.0.0.1 (or ::1)"
                ) from None
            if not self.allow_remote_bind:
                # A forward is an unauthenticated door into the cluster: on a non-loopback
                # address anybody who reaches this machine walks through it.
                raise ForwardError(
                    f"bind address {spec.address} is not a loopback address: the forward would be reachable "
                    "from other machines",
                    "use 127.0.0.1, or allow non-local bind addresses in the config",
                )
        if spec.kind == "service":
            service = self._service(spec)
            if service is not None and service.ports and self._service_port(service, spec.remote_port) is None:
                raise ForwardError(
                    f"service {spec.namespace}/{spec.name} has no port {spec.remote_port}",
                    _service_ports_hint(service, spec.remote_port),
                )

    async def _listen(self, fw: _Forward) -> asyncio.Server:
        spec = fw.spec
        try:
            return await asyncio.start_server(
                lambda r, w: self._serve(fw, r, w), host=spec.address, port=spec.local_port,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                who = await self._who_uses(spec.local_port)
                free = self.suggest_local_port(spec.local_port + 1, spec.address)
                raise ForwardError(
                    f"local port {spec.local_port} on {spec.address} is already in use"
                    + (f" (used by {who})" if who else ""),
                    f"local port {free} is free",
                    free_port=free,
                ) from exc
            if exc.errno == errno.EACCES:
                free = self.suggest_local_port(max(spec.local_port, 1024), spec.address)
                raise ForwardError(
                    f"no permission to listen on port {spec.local_port} (ports below 1024 need root)",
                    f"local port {free} is free", free_port=free,
                ) from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ForwardError(f"{spec.address} is not an address of this machine", "use 127.0.0.1") from exc
            raise ForwardError(f"cannot listen on {spec.address}:{spec.local_port}: {exc.strerror or exc}") from exc

    async def _who_uses(self, port: int) -> str:
        for fw in self._forwards.values():
            if fw.running and fw.spec.local_port == port:
                return f"Ferryman's forward to {fw.spec.target}"
        for workload in self._compose_ports().get(port, ()):
            return f"compose {workload.group}/{workload.name}"
        try:
            # Reading /proc/*/fd of every process takes a while on a busy machine.
            return await asyncio.to_thread(socket_owner, port)
        except Exception:  # noqa: BLE001 - who it is is a courtesy; the refusal stands without it
            log.debug("cannot tell who uses port %s", port, exc_info=True)
            return ""

    def _compose_ports(self) -> dict[int, list[WorkloadKey]]:
        """Host ports published by Compose containers (the store's), and by whom."""
        ports: dict[int, list[WorkloadKey]] = {}
        for inst in self.store.instances.values():
            if inst.source == Source.COMPOSE and inst.running:
                for port in inst.ports:
                    if port.host_port is not None and port.protocol == "tcp":
                        ports.setdefault(port.host_port, []).append(inst.workload)
        return ports

    def _get(self, key: str) -> _Forward:
        fw = self._forwards.get(key)
        if fw is None:
            raise ForwardError(f"no forward {key}")
        return fw

    async def _shutdown(self, fw: _Forward) -> None:
        server, fw.server = fw.server, None
        if server is not None:
            server.close()  # no new connections from here on
        tasks = list(fw.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if fw.publish_handle is not None:
            fw.publish_handle.cancel()
            fw.publish_handle = None
        fw.wake_all()
        log.info("forward %s stopped", fw.spec.key)

    # ---- choosing a pod ------------------------------------------------------------------------

    def _service(self, spec: ForwardSpec) -> KubeService | None:
        obj = self.store.objects.get(f"{_SERVICE_PREFIX}{spec.namespace}/{spec.name}")
        return obj if isinstance(obj, KubeService) else None

    @staticmethod
    def _service_port(service: KubeService, port: int) -> ServicePort | None:
        return next((p for p in service.ports if p.port == port and p.protocol.upper() == "TCP"), None)

    def _pods_in(self, namespace: str) -> Iterator[Instance]:
        for inst in self.store.instances.values():
            if inst.source == Source.K3S and inst.workload.group == namespace:
                yield inst

    def _candidates(self, fw: _Forward) -> tuple[list[tuple[Instance, int]], str]:
        """Ready pods for a new connection, best first, each with the container port; or,
        when there is none, why."""
        spec = fw.spec
        port = spec.remote_port

        def order(pod: Instance) -> tuple[bool, int, str]:
            return pod.name != fw.pod, pod.number, pod.name  # the current pod first: no scattering

        if spec.kind == "pod":
            pods = list(self._pods_in(spec.namespace))
            named = next((p for p in pods if p.name == spec.name), None)
            if named is not None:
                fw.workload = named.workload
            elif fw.workload is None:
                fw.workload = self._workload_by_pod_name(spec)
            if named is not None and named.state == RunState.RUNNING:
                # The pod the user named is used while it runs, ready or not: kubectl forwards
                # to a pod that is not ready too, and why it is not is what one forwards to see.
                return [(named, port)], ""
            siblings = sorted((p for p in pods if fw.workload is not None and p.workload == fw.workload
                               and p.name != spec.name and _ready(p)), key=order)
            if siblings:
                return [(p, port) for p in siblings], ""
            if named is not None:
                return [], f"pod {spec.name} is not running ({named.status_text or named.state})"
            if fw.workload is not None and fw.workload.name != spec.name:
                return [], f"pod {spec.name} is gone and no other pod of {fw.workload.name} is ready"
            return [], f"pod {spec.name} not found in namespace {spec.namespace}"
        if spec.kind in ("deployment", "statefulset"):
            pods = self.store.instances_of(WorkloadKey(Source.K3S, spec.namespace, spec.name).id)
            ready = sorted((p for p in pods if _ready(p)), key=order)
            if ready:
                return [(p, port) for p in ready], ""
            what = f"{spec.kind} {spec.namespace}/{spec.name}"
            return [], f"none of the {len(pods)} pods of {what} is ready" if pods else f"{what} has no pods"
        # service
        service = self._service(spec)
        what = f"service {spec.namespace}/{spec.name}"
        if service is None:
            return [], f"{what} not found"
        service_port = self._service_port(service, port)
        if service_port is None:
            return [], f"{what} has no port {port}"
        if not service.selector:
            return [], f"{what} has no selector (its endpoints are not pods it picks): forward to a pod"
        target = service_port.target_port or str(port)
        selected = [p for p in self._pods_in(spec.namespace)
                    if all(p.label_map().get(k) == v for k, v in service.selector)]
        found: list[tuple[Instance, int]] = []
        for pod in sorted((p for p in selected if _ready(p)), key=order):
            if target.isdigit():
                found.append((pod, int(target)))
            elif (named := next((p for p in pod.ports if p.name == target), None)) is not None:
                found.append((pod, named.container_port))
        if found:
            return found, ""
        if any(_ready(p) for p in selected):
            return [], f"no ready pod of {what} has a port named {target!r}"
        return [], f"none of the {len(selected)} pods of {what} is ready" if selected else f"{what} selects no pods"

    def _workload_by_pod_name(self, spec: ForwardSpec) -> WorkloadKey | None:
        """The Deployment a pod we never saw belonged to, by its name ("web-7d9f8c6b5-x2x7k":
        web), if the store has it: a forward by pod name restored from a saved set after a
        rollout then finds the pod's replacement. Only for names of that exact shape."""
        for workload in self.store.specs.values():
            key = workload.key
            if (key.source == Source.K3S and key.group == spec.namespace and workload.kind == "Deployment"
                    and re.fullmatch(rf"{re.escape(key.name)}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}", spec.name)):
                return key
        return None

    def _reaches(self, fw: _Forward, workload: WorkloadKey) -> bool:
        spec = fw.spec
        if spec.kind in ("deployment", "statefulset"):
            return WorkloadKey(Source.K3S, spec.namespace, spec.name) == workload
        if spec.kind == "pod" and fw.workload is not None:
            return fw.workload == workload
        pod = next((p for p in self._pods_in(spec.namespace) if p.name == fw.pod), None)
        return pod is not None and pod.workload == workload

    # ---- state ------------------------------------------------------------------------------------

    def _update(self, fw: _Forward) -> None:
        """Recompute the forward's pod and state from the store (and what connections found)."""
        if not fw.running:
            return
        candidates, why = self._candidates(fw)
        if candidates:
            pod, port = candidates[0]
            self._set_pod(fw, pod.name, port)
        else:
            fw.pod, fw.pod_port = "", 0
        status = self.store.status.get(Source.K3S)
        if fw.forbidden:
            fw.state, fw.reason = ForwardState.FAILED, fw.forbidden
        elif status is not None and status.state in (ConnState.UNREACHABLE, ConnState.ABSENT):
            fw.state = ForwardState.RECONNECTING
            fw.reason = status.message or f"k3s: {status.state} ({status.endpoint})"
        elif fw.api_error:
            fw.state, fw.reason = ForwardState.RECONNECTING, fw.api_error
        elif candidates:
            fw.state, fw.reason = ForwardState.ACTIVE, ""
        elif not fw.seen_pod and (status is None or status.state == ConnState.CONNECTING):
            fw.state, fw.reason = ForwardState.STARTING, "waiting for the Kubernetes connection"
        else:
            fw.state, fw.reason = ForwardState.RECONNECTING, f"no ready pod: {why}"

    def _set_pod(self, fw: _Forward, pod: str, port: int) -> None:
        if fw.last_pod and pod != fw.last_pod:
            # A restart, a rollout, a deleted pod: the view shows the switch.
            fw.previous_pod, fw.switched_at = fw.last_pod, self._clock()
            fw.conn_error = ""  # the old pod's error says nothing about the new one
        fw.last_pod = pod
        fw.seen_pod = True
        fw.pod, fw.pod_port = pod, port

    def _subscribe(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.store.subscribe(self._store_changed)

    def _store_changed(self, change: Change) -> None:
        # Only pods, Services and the k3s connection move a forward (our own PortForward
        # objects come back through here too). Deferred: this runs inside store.apply,
        # and publishing from here would apply to the store from within its own apply.
        status = change.status is not None and change.status.source == Source.K3S
        pods = any(k.startswith(_K3S_PREFIX) for k in itertools.chain(change.instances, change.instances_removed))
        services = any(k.startswith(_SERVICE_PREFIX) for k in itertools.chain(change.objects, change.objects_removed))
        if not (status or pods or services):
            return
        if pods or (status and change.status is not None and change.status.state == ConnState.CONNECTED):
            # The API server answers again (a status, or watch events from it): what a
            # failed stream said about it is stale.
            for fw in self._forwards.values():
                fw.api_error = ""
        if not self._refresh_due:
            self._refresh_due = True
            asyncio.get_running_loop().call_soon(self._refresh)

    def _refresh(self) -> None:
        self._refresh_due = False
        for fw in list(self._forwards.values()):
            if fw.running:
                self._update(fw)
                self._touch(fw)
                fw.wake_all()

    # ---- publishing (throttled) ---------------------------------------------------------------------

    def _touch(self, fw: _Forward) -> None:
        """Something of `fw` changed: publish now, or at the end of its interval."""
        if fw.publish_handle is not None:
            return  # already due
        loop = asyncio.get_running_loop()
        wait = fw.last_publish + self.publish_interval - loop.time()
        if wait <= 0:
            self._publish(fw)
        else:
            fw.publish_handle = loop.call_later(wait, self._publish, fw)

    def _publish(self, fw: _Forward) -> None:
        if fw.publish_handle is not None:
            fw.publish_handle.cancel()
            fw.publish_handle = None
        if self._forwards.get(fw.spec.key) is not fw:
            return  # replaced or removed meanwhile
        snapshot = fw.snapshot()
        if snapshot == fw.published:
            return
        fw.published = snapshot
        fw.last_publish = asyncio.get_running_loop().time()
        self._emit(ObjectChanged(snapshot))

    def _emit(self, event: AdapterEvent) -> None:
        try:
            self._apply(event)
        except Exception:  # a failing consumer must not take the forwards down
            log.exception("applying %r failed", event)

    # ---- connections ----------------------------------------------------------------------------------

    async def _serve(self, fw: _Forward, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if not fw.running:  # accepted just before the listener closed
            writer.close()
            return
        fw.tasks.add(task)
        fw.connections += 1
        fw.total_connections += 1
        self._touch(fw)
        try:
            await self._connect(fw, reader, writer)
        except asyncio.CancelledError:
            pass  # the forward stops; the socket is closed below
        except Exception:  # noqa: BLE001 - one connection's bug must not end the forward
            log.exception("forward %s: connection failed", fw.spec.key)
        finally:
            fw.tasks.discard(task)
            fw.connections -= 1
            writer.close()
            self._touch(fw)

    async def _connect(self, fw: _Forward, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Find a ready pod (waiting up to `pod_wait` for one) and relay to it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pod_wait
        refused: set[str] = set()  # pods that would not take a stream just now
        delays = _retry_delays()
        spec = fw.spec
        while fw.running:
            changed = fw.woken()
            candidates, why = self._candidates(fw)
            candidates = [c for c in candidates if c[0].name not in refused]
            pause = None
            if candidates:
                pod, port = candidates[0]
                opened = False
                try:
                    async with self._open_port(spec.namespace, pod.name, port) as stream:
                        opened = True
                        self._opened(fw)
                        await self._relay(fw, reader, writer, stream)
                    return
                except RemotePortError as exc:
                    # Nothing listens on the port, say: this connection ends, the forward stays.
                    fw.conn_error = f"{exc.summary} (port {exc.port} of pod {exc.pod})"
                    log.info("forward %s: %s", spec.key, exc)
                    self._touch(fw)
                    return
                except PortForbidden as exc:
                    fw.forbidden = str(exc)
                    self._update(fw)
                    self._touch(fw)
                    return
                except PortStreamError as exc:
                    if opened:  # bytes went through: a TCP stream cannot be resumed elsewhere
                        fw.conn_error = f"stream cut: {exc}"
                        self._touch(fw)
                        return
                    if isinstance(exc, PodUnavailable):  # the store is behind: try the next pod
                        refused.add(pod.name)
                        continue
                    fw.api_error = str(exc)
                    self._update(fw)
                    self._touch(fw)
                    pause = next(delays)
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.info("forward %s: no pod within %gs (%s): connection closed", spec.key, self.pod_wait,
                         fw.reason or why)
                return
            # Until the store changes (a pod gets ready, the API server is back), or the
            # retry pause ends, or the connection's time is up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, pause) if pause is not None else remaining):
                    await changed.wait()

    def _opened(self, fw: _Forward) -> None:
        """A stream stands: whatever said the forward could not work is over."""
        fw.forbidden = fw.api_error = ""
        self._update(fw)
        self._touch(fw)

    async def _relay(
        self, fw: _Forward, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: PortStream
    ) -> None:
        """Both ways, until the pod's side ends, or the local client is gone (see _LINGER);
        errors of the stream (RemotePortError…) propagate, the local socket's do not."""
        loop = asyncio.get_running_loop()
        local_done = False
        waiting: asyncio.Timeout | None = None  # the inbound side's wait for the pod

        async def outbound() -> None:  # local client -> pod
            nonlocal local_done
            try:
                while data := await reader.read(_CHUNK):
                    await stream.send(data)
                    fw.bytes_out += len(data)
                    self._touch(fw)
            except (OSError, PortStreamError):
                pass  # the client is gone, or the stream is ending: the inbound side says how
            finally:
                local_done = True
                if waiting is not None:
                    waiting.reschedule(loop.time() + _LINGER)

        async def inbound() -> None:  # pod -> local client, in this task
            nonlocal waiting
            while True:
                try:
                    async with asyncio.timeout_at(loop.time() + _LINGER if local_done else None) as waiting:
                        data = await stream.receive()
                except TimeoutError:
                    return  # the client is done, and the pod said nothing more for a while
                finally:
                    waiting = None
                if not data:
                    return
                try:
                    writer.write(data)
                    await writer.drain()
                except OSError:
                    return  # the client is gone
                fw.bytes_in += len(data)
                self._touch(fw)

        out_task = asyncio.create_task(outbound())
        try:
            await inbound()
        finally:
            out_task.cancel()
            await asyncio.gather(out_task, return_exceptions=True)


def _any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _retry_delays() -> Iterator[float]:
    delay = _RETRY_MIN
    while True:
        yield delay
        delay = min(delay * 2, _RETRY_MAX)


def _service_ports_hint(service: KubeService, asked: int) -> str:
    tcp = [p for p in service.ports if p.protocol.upper() == "TCP"]
    by_target = next((p for p in tcp if p.target_port == str(asked)), None)
    if by_target is not None:
        return f"{asked} is the targetPort of its port {by_target.port}: forward service port {by_target.port}"
    listed = ", ".join(f"{p.port} ({p.name})" if p.name else str(p.port) for p in tcp)
    return f"its ports: {listed}" if listed else "it has no TCP port"
