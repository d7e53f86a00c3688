"""Port-forwards (backends/forwards.py, the k3s adapter's port streams) end to end.

Every byte takes the real path: a local client -> the forward's listener -> kr8s's
websocket to the emulated API server (tests/support/kube_emulator.py) -> the emulator's
relay -> a real TCP server in a busybox container on the real Docker engine, and back.
The pods are the emulator's; each pod's port is relayed to one of the containers
(`set_portforward_target`), so "which pod answered" shows in the page a container serves.
Nothing of kr8s, httpx or docker is patched; every wait is on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from backends.compose import ComposeAdapter
from backends.forwards import (
    ApiUnreachable,
    ForwardError,
    ForwardManager,
    RemotePortError,
    listening_inodes,
)
from backends.hub import Hub
from backends.kube import KubeAdapter
from backends.model import (
    ForwardSpec,
    ForwardState,
    PortForward,
    Source,
    WorkloadKey,
)
from tests.support import hubs
from tests.support.dockerenv import TEST_IMAGE, ComposeProject, container_ip, wait_listening
from tests.support.kube_emulator import KubeEmulator

DEADLINE = 20.0
NS = "shop"
BIG = 5 * 1024 * 1024


# ---- helpers ---------------------------------------------------------------------------------


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE):  # noqa: ANN201
    return await hubs.until(condition, what, timeout)
@dataclass(frozen=True)
class Containers:
    """The real TCP servers pods are relayed to: (ip, port) on the Compose network."""

    project: ComposeProject
    blue: tuple[str, int]  # busybox httpd: "/" says "blue", /big is 5 MiB of random bytes
    green: tuple[str, int]  # the same, saying "green"
    echo: tuple[str, int]  # nc -e cat: every connection echoes what it gets


def httpd(color: str) -> dict:
    script = f"mkdir -p /srv && echo {color} > /srv/index.html && head -c {BIG} /dev/urandom > /srv/big && " \
             "exec httpd -f -p 8080 -h /srv"
    return {"image": TEST_IMAGE, "command": ["sh", "-c", script], "ports": ["8080"], "stop_grace_period": "1s"}


@pytest.fixture(scope="module")
def containers(docker_client, tmp_path_factory) -> Iterator[Containers]:
    project = ComposeProject(tmp_path_factory.mktemp("forwards"), {
        "blue": httpd("blue"),
        "green": httpd("green"),
        "echo": {"image": TEST_IMAGE, "command": ["nc", "-ll", "-p", "9000", "-e", "cat"],
                 "stop_grace_period": "1s"},
    })
    try:
        project.up()
        found = {s: (container_ip(project.container_ids(docker_client, s)[0]), p)
                 for s, p in (("blue", 8080), ("green", 8080), ("echo", 9000))}
        for address in found.values():
            wait_listening(address)  # httpd starts once its files are written
        yield Containers(project, **found)
    finally:
        project.down()


@contextlib.asynccontextmanager
async def forwarding(
    kube: KubeEmulator, *, pod_wait: float = 10.0, publish_interval: float = 0.1, compose: bool = False,
) -> AsyncIterator[Hub]:
    """A running hub with the real KubeAdapter (and ComposeAdapter) on the emulator."""
    adapters: list = [KubeAdapter(kubeconfig=str(kube.kubeconfig), reconnect_min=0.05, reconnect_max=0.3,
                                  api_timeout=3.0)]
    if compose:
        adapters.append(ComposeAdapter(reconnect_min=0.05, reconnect_max=0.3))
    hub = Hub(adapters)
    hub.forwards.pod_wait = pod_wait
    hub.forwards.publish_interval = publish_interval
    async with hubs.running_hub(hub, wait_connected=Source.K3S):
        yield hub


def web_deployment(kube: KubeEmulator, name: str = "web", pod: str = "web-7d9f-aaaaa",
                   to: tuple[str, int] | None = None, port: int = 8080) -> None:
    kube.add_deployment(NS, name, ports=[port])
    kube.add_pod(NS, pod, owner=name)
    if to is not None:
        kube.set_portforward_target(NS, pod, port, *to)


def spec(kind: str, name: str, remote: int, local: int = 0, address: str = "127.0.0.1") -> ForwardSpec:
    return ForwardSpec(NS, kind, name, remote, local, address)


def in_store(hub: Hub, key: str) -> PortForward | None:
    obj = hub.store.objects.get(key)
    assert obj is None or isinstance(obj, PortForward)
    return obj


def state_is(hub: Hub, key: str, state: ForwardState) -> Callable[[], PortForward | None]:
    """The store's copy (what the view shows) is in `state`."""
    return lambda: (pf := in_store(hub, key)) is not None and pf.state == state and pf


async def http_get(port: int, path: str = "/", host: str = "127.0.0.1") -> tuple[bytes, bytes, int]:
    """(raw answer, body, request size) of an HTTP/1.0 GET: busybox httpd closes after it."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode()
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            raw = await reader.read()  # until the end
    finally:
        writer.close()
    return raw, raw.partition(b"\r\n\r\n")[2], len(request)


async def page(port: int) -> str:
    raw, body, _ = await http_get(port)
    assert raw.startswith(b"HTTP/1.") and b" 200 " in raw.split(b"\r\n", 1)[0], raw[:200]
    return body.decode().strip()


async def closed_without_answer(port: int) -> bool:
    """Connect, send a request, and get the end of the stream with no byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            return await reader.read() == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


async def refused(port: int, host: str = "127.0.0.1") -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def server_sockets(port: int) -> set[str]:
    """TCP states ("0A" listen, "01" established, "06" time-wait…) of sockets whose local
    port is `port`, from /proc/net/tcp{,6}: what this machine still has open there."""
    states = set()
    for name in ("tcp", "tcp6"):
        with open(f"/proc/net/{name}") as table:
            next(table)
            for line in table:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    states.add(fields[3])
    return states


# ---- no cluster needed ----------------------------------------------------------------------


async def test_nonsense_is_refused_with_a_reason() -> None:
    hub = Hub([])
    forwards = hub.forwards
    cases = [
        (spec("job", "web", 80), "cannot forward to a 'job'"),
        (spec("pod", "", 80), "needs a namespace and a name"),
        (spec("pod", "web", 0), "remote port 0 is not a TCP port"),
        (spec("pod", "web", 70000), "remote port 70000 is not a TCP port"),
        (spec("pod", "web", 80, local=70000), "local port 70000 is not a TCP port"),
        (spec("pod", "web", 80, address="example.com"), "bind address 'example.com' is not an IP address"),
    ]
    for bad, message in cases:
        with pytest.raises(ForwardError) as caught:
            await forwards.start(bad)
        assert message in str(caught.value)
    assert forwards.forwards == {}


async def test_non_loopback_bind_is_refused_unless_allowed() -> None:
    hub = Hub([])
    for address in ("0.0.0.0", "::"):
        with pytest.raises(ForwardError) as caught:
            await hub.forwards.start(spec("deployment", "web", 80, address=address))
        assert caught.value.message == (
            f"bind address {address} is not a loopback address: the forward would be reachable from other machines"
        )
        assert "use 127.0.0.1" in caught.value.suggestion
    # Loopback in any spelling is fine.
    for address, reached_at in (("127.0.0.1", ["127.0.0.1"]), ("::1", ["::1"]),
                                ("localhost", ["127.0.0.1"]), ("127.0.0.2", ["127.0.0.2"])):
        pf = await hub.forwards.start(spec("deployment", "web", 80, address=address))
        assert pf.spec.local_port > 0
        for host in reached_at:
            assert not await refused(pf.spec.local_port, host)
    allowed = ForwardManager(hub.store, hub.open_port, allow_remote_bind=True)
    pf = await allowed.start(spec("deployment", "web", 80, address="0.0.0.0"))
    assert pf.spec.key == f"forward/0.0.0.0:{pf.spec.local_port}"
    assert allowed.url_for(WorkloadKey(Source.K3S, NS, "web")) is None  # listening, but not ACTIVE
    assert not await refused(pf.spec.local_port)  # reached on loopback too
    await allowed.close()
    await hub.forwards.close()
    assert await refused(pf.spec.local_port)


async def test_without_kubernetes_a_forward_waits_and_open_port_says_why() -> None:
    hub = Hub([])
    hub.forwards.pod_wait = 0.3
    with pytest.raises(ApiUnreachable, match="Kubernetes is not connected"):
        async with hub.open_port(NS, "web-1", 80):
            pass
    pf = await hub.forwards.start(spec("deployment", "web", 80))
    assert pf.state == ForwardState.STARTING and pf.last_error == "waiting for the Kubernetes connection"
    started = time.monotonic()
    assert await closed_without_answer(pf.spec.local_port)  # after pod_wait, not before
    assert time.monotonic() - started >= 0.25
    await until(lambda: hub.forwards.forwards[pf.key].connections == 0, "the connection closed")
    assert hub.forwards.forwards[pf.key].total_connections == 1
    await hub.forwards.close()


def test_error_channel_text_is_summed_up() -> None:
    kubelet = (
        'error forwarding port 8080 to pod 4c1f…, uid : failed to execute portforward in network namespace '
        '"/var/run/netns/cni-1": failed to connect to localhost:8080 inside namespace "4c1f", IPv4: dial tcp4 '
        "127.0.0.1:8080: connect: connection refused IPv6 dial tcp6 [::1]:8080: connect: connection refused "
    )
    error = RemotePortError("web-1", 8080, kubelet)
    assert error.summary == "connect: connection refused"
    assert str(error).startswith("port 8080 of pod web-1: error forwarding port 8080")
    assert RemotePortError("web-1", 1, "pod not running\n").summary == "pod not running"


# ---- end to end: real containers behind the emulated API server ------------------------------


@pytest.mark.docker
async def test_bytes_go_through_intact_and_are_counted(containers: Containers, kube: KubeEmulator) -> None:
    web_deployment(kube, to=containers.blue)
    kube.add_statefulset(NS, "echo", ports=[9000])
    kube.add_pod(NS, "echo-0", owner="echo", owner_kind="StatefulSet")
    kube.set_portforward_target(NS, "echo-0", 9000, *containers.echo)
    async with forwarding(kube) as hub:
        web = await hub.forwards.start(spec("deployment", "web", 8080))
        echo = await hub.forwards.start(spec("statefulset", "echo", 9000))
        await until(state_is(hub, web.key, ForwardState.ACTIVE), "the web forward active")
        await until(state_is(hub, echo.key, ForwardState.ACTIVE), "the echo forward active")
        assert in_store(hub, web.key).pod == "web-7d9f-aaaaa" and in_store(hub, web.key).pod_port == 8080

        first_raw, first_body, first_sent = await http_get(web.spec.local_port)
        assert first_body == b"blue\n"

        # 5 MiB from the pod, compared with the same file fetched from the container directly.
        publishes: list[PortForward] = []
        unsubscribe = hub.store.subscribe(
            lambda change: publishes.extend(o for k, o in change.objects.items() if k == web.key)  # type: ignore[misc]
        )
        started = time.monotonic()
        raw, big, sent = await http_get(web.spec.local_port, "/big")
        _, direct, _ = await http_get(containers.blue[1], "/big", host=containers.blue[0])
        assert len(big) == BIG and big == direct
        # The counters: every byte of both connections, exactly (the store's copy within an interval).
        pf = await until(lambda: (pf := in_store(hub, web.key)) and pf.total_connections == 2
                         and pf.connections == 0 and pf.bytes_in == len(first_raw) + len(raw) and pf,
                         "the counters published")
        assert pf.bytes_out == first_sent + sent
        window = time.monotonic() - started
        unsubscribe()
        # Throttled: a flood of counter updates is at most one publish per interval.
        assert len(publishes) <= window / hub.forwards.publish_interval + 2, (len(publishes), window)

        # 5 MiB up and the same back, through the echo pod.
        reader, writer = await asyncio.open_connection("127.0.0.1", echo.spec.local_port)
        payload = bytes(range(256)) * (BIG // 256)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(DEADLINE):
            back = await reader.readexactly(len(payload))
        await sender
        writer.close()
        assert back == payload
        await until(lambda: (pf := in_store(hub, echo.key)) and pf.connections == 0
                    and pf.bytes_in == pf.bytes_out == len(payload), "the echo counters")


@pytest.mark.docker
async def test_more_connections_than_one_http_client_pools(containers: Containers, kube: KubeEmulator) -> None:
    # httpx pools at most 100 connections per client, and each stream holds one for its life.
    kube.add_pod(NS, "echo-1", containers=[{"name": "echo", "image": "x", "ports": [{"containerPort": 9000}]}])
    kube.set_portforward_target(NS, "echo-1", 9000, *containers.echo)
    async with forwarding(kube) as hub:
        pf = await hub.forwards.start(spec("pod", "echo-1", 9000))
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "the forward active")
        clients = [await asyncio.open_connection("127.0.0.1", pf.spec.local_port) for _ in range(110)]
        try:
            for n, (_, writer) in enumerate(clients):
                writer.write(f"{n:04d}\n".encode())
            async with asyncio.timeout(DEADLINE):
                answers = [await reader.readexactly(5) for reader, _ in clients]
            assert answers == [f"{n:04d}\n".encode() for n in range(110)]
            assert kube.portforward_count == 110 and hub.forwards.forwards[pf.key].connections == 110
        finally:
            for _, writer in clients:
                writer.close()
        await until(lambda: kube.portforward_count == 0, "every stream closed")


@pytest.mark.docker
async def test_a_deleted_pod_is_followed_to_its_replacement(containers: Containers, kube: KubeEmulator) -> None:
    web_deployment(kube, to=containers.blue)
    async with forwarding(kube) as hub:
        # A forward to the pod by name, as k9s users make them: it must outlive the pod.
        pf = await hub.forwards.start(spec("pod", "web-7d9f-aaaaa", 8080))
        port = pf.spec.local_port
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "the forward active")
        assert await page(port) == "blue"
        assert hub.forwards.url_for(WorkloadKey(Source.K3S, NS, "web")) == f"http://127.0.0.1:{port}"
        # Not ready (its readiness probe fails, say): a pod named by the user is still used.
        kube.set_pod_status(NS, "web-7d9f-aaaaa", ready=False)
        await until(lambda: any(i.name == "web-7d9f-aaaaa" and i.containers_ready == 0
                                for i in hub.store.instances.values()), "the pod not ready")
        assert await page(port) == "blue"
        assert in_store(hub, pf.key).state == ForwardState.ACTIVE

        # The pod is deleted (its controller will replace it): no pod is ready meanwhile.
        kube.delete_object("pods", NS, "web-7d9f-aaaaa")
        gone = await until(state_is(hub, pf.key, ForwardState.RECONNECTING), "reconnecting without a pod")
        assert gone.pod == "" and gone.last_error == (
            "no ready pod: pod web-7d9f-aaaaa is gone and no other pod of web is ready"
        )
        assert hub.forwards.url_for(WorkloadKey(Source.K3S, NS, "web")) is None
        # A client connecting now waits for a pod rather than being turned away.
        waiting = asyncio.create_task(page(port))

        # The replacement comes up, not ready at first: it is not used yet.
        kube.add_pod(NS, "web-7d9f-bbbbb", owner="web", phase="Pending", ready=False)
        kube.set_portforward_target(NS, "web-7d9f-bbbbb", 8080, *containers.green)
        await until(lambda: any(i.name == "web-7d9f-bbbbb" for i in hub.store.instances.values()), "the new pod")
        await asyncio.sleep(0.3)  # what would go wrong, would go wrong now
        assert in_store(hub, pf.key).state == ForwardState.RECONNECTING and not waiting.done()

        ready_at = time.monotonic()
        kube.set_pod_status(NS, "web-7d9f-bbbbb", phase="Running", ready=True)
        assert await asyncio.wait_for(waiting, DEADLINE) == "green"
        followed = time.monotonic() - ready_at
        switched = await until(state_is(hub, pf.key, ForwardState.ACTIVE), "active on the new pod")
        assert (switched.pod, switched.previous_pod, switched.last_error) == ("web-7d9f-bbbbb", "web-7d9f-aaaaa", "")
        assert switched.switched_at is not None and switched.switched_at >= switched.started_at
        assert await page(port) == "green"
        assert followed < 5, f"the waiting client was answered {followed:.2f}s after the pod was ready"


@pytest.mark.docker
async def test_a_restored_forward_to_a_pod_long_gone_finds_its_deployment(
    containers: Containers, kube: KubeEmulator
) -> None:
    # Saved while web-7d9f-zzzzz ran; Ferryman restarts after a rollout replaced it.
    web_deployment(kube, pod="web-8c1e-aaaaa", to=containers.blue)
    async with forwarding(kube) as hub:
        await until(lambda: any(i.name == "web-8c1e-aaaaa" for i in hub.store.instances.values()), "the pod")
        pf = await hub.forwards.start(spec("pod", "web-7d9f-zzzzz", 8080))
        active = await until(state_is(hub, pf.key, ForwardState.ACTIVE), "active on the replacement")
        assert active.pod == "web-8c1e-aaaaa"
        assert await page(pf.spec.local_port) == "blue"
        # A name of another shape is not guessed at.
        other = await hub.forwards.start(spec("pod", "web-zzzzz", 8080))
        assert other.state == ForwardState.RECONNECTING
        assert other.last_error == f"no ready pod: pod web-zzzzz not found in namespace {NS}"


@pytest.mark.docker
async def test_service_ports_map_to_numeric_and_named_target_ports(
    containers: Containers, kube: KubeEmulator
) -> None:
    kube.add_deployment(NS, "api", containers=[
        {"name": "api", "image": "api:1", "ports": [{"name": "web-http", "containerPort": 8080, "protocol": "TCP"}]},
    ])
    kube.add_pod(NS, "api-5c6d-aaaaa", owner="api")
    kube.set_portforward_target(NS, "api-5c6d-aaaaa", 8080, *containers.blue)
    # Ready, with the port, but not selected by the Service: never used.
    kube.add_pod(NS, "stray", labels={"app": "stray"}, containers=[
        {"name": "stray", "image": "api:1", "ports": [{"name": "web-http", "containerPort": 8080}]},
    ])
    kube.set_portforward_target(NS, "stray", 8080, *containers.green)
    kube.add_service(NS, "api", selector={"app": "api"}, ports=[
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "by-name", "port": 81, "targetPort": "web-http", "protocol": "TCP"},
    ])
    async with forwarding(kube) as hub:
        await until(lambda: hub.store.objects.get(f"k3s/Service/{NS}/api"), "the Service in the store")
        numeric = await hub.forwards.start(spec("service", "api", 80))
        named = await hub.forwards.start(spec("service", "api", 81))
        for pf in (numeric, named):
            active = await until(state_is(hub, pf.key, ForwardState.ACTIVE), f"{pf.spec.target} active")
            assert (active.pod, active.pod_port) == ("api-5c6d-aaaaa", 8080)
            assert await page(pf.spec.local_port) == "blue"
        [pod] = [i for i in hub.store.instances.values() if i.name == "api-5c6d-aaaaa"]
        assert [(p.container_port, p.name) for p in pod.ports] == [(8080, "web-http")]
        assert hub.forwards.url_for(WorkloadKey(Source.K3S, NS, "api")) == f"http://127.0.0.1:{numeric.spec.local_port}"
        # As HttpProber's extra_targets hook, which passes the Workload.
        workload = hub.store.workloads[WorkloadKey(Source.K3S, NS, "api").id]
        assert hub.forwards.url_for(workload) == f"http://127.0.0.1:{numeric.spec.local_port}"

        # The container port instead of the Service's: refused, with the right port named.
        with pytest.raises(ForwardError) as caught:
            await hub.forwards.start(spec("service", "api", 8080))
        assert caught.value.message == f"service {NS}/api has no port 8080"
        assert caught.value.suggestion == "8080 is the targetPort of its port 80: forward service port 80"


@pytest.mark.docker
async def test_error_channel_errors_end_the_connection_not_the_forward(
    containers: Containers, kube: KubeEmulator
) -> None:
    web_deployment(kube, to=containers.blue)
    # Port 9999 of the pod is relayed to a port nothing listens on in the container: the
    # emulator's connect is refused by the container's kernel and says so on channel 1
    # (in Python's words: "connect: Connect call failed (IP, 9999)").
    kube.set_portforward_target(NS, "web-7d9f-aaaaa", 9999, containers.blue[0], 9999)
    kube.add_pod(NS, "echo-1", containers=[{"name": "echo", "image": "x", "ports": [{"containerPort": 9000}]}])
    kube.set_portforward_target(NS, "echo-1", 9000, *containers.echo)
    async with forwarding(kube) as hub:
        dead = await hub.forwards.start(spec("deployment", "web", 9999))
        await until(state_is(hub, dead.key, ForwardState.ACTIVE), "the forward active")
        for _ in range(2):
            assert await closed_without_answer(dead.spec.local_port)
        failed = await until(lambda: (pf := in_store(hub, dead.key)) and pf.total_connections == 2
                             and pf.connections == 0 and pf, "two refused connections counted")
        assert failed.state == ForwardState.ACTIVE  # the forward stays; the connection ended
        assert failed.last_error == (
            f"connect: Connect call failed ('{containers.blue[0]}', 9999) (port 9999 of pod web-7d9f-aaaaa)"
        )
        assert not await refused(dead.spec.local_port)
        # A port the emulator has no target for: the kubelet's own words.
        other = await hub.forwards.start(spec("deployment", "web", 7777))
        assert await closed_without_answer(other.spec.local_port)
        await until(lambda: (pf := in_store(hub, other.key)) and pf.last_error == (
            "connect: connection refused (no target registered with the emulator) (port 7777 of pod web-7d9f-aaaaa)"
        ), "the refusal shown")

        # An error text mid-stream: the client's socket closes, the error is shown, the forward goes on.
        echo = await hub.forwards.start(spec("pod", "echo-1", 9000))
        await until(state_is(hub, echo.key, ForwardState.ACTIVE), "the echo forward active")
        reader, writer = await asyncio.open_connection("127.0.0.1", echo.spec.local_port)
        writer.write(b"ping\n")
        async with asyncio.timeout(DEADLINE):
            assert await reader.readexactly(5) == b"ping\n"
            assert kube.break_portforwards("lost connection to pod") == 1
            assert await reader.read() == b""
        writer.close()
        broken = await until(lambda: (pf := in_store(hub, echo.key)) and pf.last_error and pf, "the error shown")
        assert broken.last_error == "lost connection to pod (port 9000 of pod echo-1)"
        assert broken.state == ForwardState.ACTIVE
        reader, writer = await asyncio.open_connection("127.0.0.1", echo.spec.local_port)
        writer.write(b"again\n")
        async with asyncio.timeout(DEADLINE):
            assert await reader.readexactly(6) == b"again\n"
        writer.close()


@pytest.mark.docker
async def test_api_server_gone_then_back(containers: Containers, kube: KubeEmulator) -> None:
    web_deployment(kube, to=containers.blue)
    async with forwarding(kube, pod_wait=30) as hub:
        pf = await hub.forwards.start(spec("deployment", "web", 8080))
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "the forward active")
        assert await page(pf.spec.local_port) == "blue"

        await kube.stop()
        down = await until(lambda: (pf_ := in_store(hub, pf.key)) and pf_.state == ForwardState.RECONNECTING
                           and pf_.last_error.endswith("connection refused") and pf_, "reconnecting")
        assert down.last_error == f"k3s: unreachable at {kube.url} — connection refused"
        # Still listening; a client connecting now is held until the server is back.
        waiting = asyncio.create_task(page(pf.spec.local_port))
        await until(lambda: hub.forwards.forwards[pf.key].connections == 1, "the held connection")
        await asyncio.sleep(0.5)  # a few failed attempts
        assert not waiting.done()

        await kube.start()
        assert await asyncio.wait_for(waiting, DEADLINE) == "blue"
        back = await until(state_is(hub, pf.key, ForwardState.ACTIVE), "active again")
        assert back.last_error == "" and back.pod == "web-7d9f-aaaaa"


@pytest.mark.docker
async def test_no_ready_pod_within_pod_wait_closes_the_connection(containers: Containers, kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", ports=[8080], replicas=0)
    async with forwarding(kube, pod_wait=0.5) as hub:
        await until(lambda: hub.store.specs.get(WorkloadKey(Source.K3S, NS, "web").id), "the Deployment")
        pf = await hub.forwards.start(spec("deployment", "web", 8080))
        assert pf.state == ForwardState.RECONNECTING
        assert pf.last_error == f"no ready pod: deployment {NS}/web has no pods"
        started = time.monotonic()
        assert await closed_without_answer(pf.spec.local_port)
        assert 0.4 <= time.monotonic() - started < 5


@pytest.mark.docker
async def test_rbac_forbidding_portforward_fails_the_forward(containers: Containers, kube: KubeEmulator) -> None:
    web_deployment(kube, to=containers.blue)
    async with forwarding(kube) as hub:
        pf = await hub.forwards.start(spec("deployment", "web", 8080))
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "the forward active")
        fault = kube.fail("GET", r"/pods/[^/]+/portforward$", 403)
        assert await closed_without_answer(pf.spec.local_port)
        failed = await until(state_is(hub, pf.key, ForwardState.FAILED), "failed")
        assert failed.last_error == f"no permission to port-forward pods in namespace {NS}"
        # Store changes do not hide it: waiting will not fix it.
        kube.set_pod_status(NS, "web-7d9f-aaaaa", restarts=1)
        await until(lambda: any(i.restarts == 1 for i in hub.store.instances.values()), "the pod changed")
        await asyncio.sleep(0.2)
        assert in_store(hub, pf.key).state == ForwardState.FAILED
        # Granted again (the user fixed the Role): the next connection works and clears it.
        fault.cancel()
        assert await page(pf.spec.local_port) == "blue"
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "active again")


@pytest.mark.docker
async def test_local_port_in_use_names_the_user_and_suggests_a_free_port(
    containers: Containers, kube: KubeEmulator, docker_client
) -> None:
    web_deployment(kube, to=containers.blue)
    script = ("import socket, time\n"
              "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
              "print(s.getsockname()[1], flush=True); time.sleep(120)")
    listener = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    try:
        assert listener.stdout is not None
        taken = int(await asyncio.wait_for(listener.stdout.readline(), DEADLINE))
        async with forwarding(kube, compose=True) as hub:
            # A Compose container publishing a port (the project's blue, on a random host port).
            blue = WorkloadKey(Source.COMPOSE, containers.project.name, "blue")

            def published() -> int | None:
                return next((p.host_port for i in hub.store.instances_of(blue.id) for p in i.ports
                             if p.host_port and p.host_ip in (None, "", "0.0.0.0")), None)

            compose_port = await until(published, "blue's published port")
            with pytest.raises(ForwardError) as caught:
                await hub.forwards.start(spec("deployment", "web", 8080, local=compose_port))
            error = caught.value
            assert error.message == (
                f"local port {compose_port} on 127.0.0.1 is already in use (used by compose {blue.group}/blue)"
            )
            assert error.free_port is not None and error.free_port > compose_port
            assert error.suggestion == f"local port {error.free_port} is free"
            # … and it is: the suggestion works.
            pf = await hub.forwards.start(spec("deployment", "web", 8080, local=error.free_port))
            assert await page(pf.spec.local_port) == "blue"

            # Any other process: named by pid and command line, from /proc.
            assert listening_inodes(taken)
            with pytest.raises(ForwardError) as caught:
                await hub.forwards.start(spec("deployment", "web", 8080, local=taken))
            assert caught.value.message.startswith(
                f"local port {taken} on 127.0.0.1 is already in use (used by pid {listener.pid} ({sys.executable} -c"
            )
            # One of our own forwards.
            with pytest.raises(ForwardError) as caught:
                await hub.forwards.start(spec("pod", "web-7d9f-aaaaa", 8080, local=pf.spec.local_port))
            assert caught.value.message == (
                f"local port {pf.spec.local_port} on 127.0.0.1 is already forwarded to deploy/web:8080"
            )
            assert hub.forwards.suggest_local_port(pf.spec.local_port) != pf.spec.local_port
    finally:
        listener.kill()
        await listener.wait()


@pytest.mark.docker
async def test_stop_restart_and_close_leave_nothing_open(containers: Containers, kube: KubeEmulator) -> None:
    kube.add_pod(NS, "echo-1", containers=[{"name": "echo", "image": "x", "ports": [{"containerPort": 9000}]}])
    kube.set_portforward_target(NS, "echo-1", 9000, *containers.echo)
    async with forwarding(kube) as hub:
        pf = await hub.forwards.start(spec("pod", "echo-1", 9000))
        port = pf.spec.local_port
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "the forward active")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        async with asyncio.timeout(DEADLINE):
            assert await reader.readexactly(5) == b"ping\n"
        assert kube.portforward_count == 1

        stopped = await hub.forwards.stop(pf.key)
        assert stopped.state == ForwardState.STOPPED and stopped.connections == 0
        async with asyncio.timeout(DEADLINE):
            assert await reader.read() == b""  # the open connection was closed
        writer.close()
        assert await refused(port)
        await until(lambda: kube.portforward_count == 0, "the stream to the API server closed")
        # Nothing of ours is left on the port but TIME_WAIT (the kernel's, not a socket).
        await until(lambda: server_sockets(port) <= {"06"}, f"no socket on {port} (states {server_sockets(port)})")
        await until(state_is(hub, pf.key, ForwardState.STOPPED), "stopped in the store")

        restarted = await hub.forwards.restart(pf.key)
        assert restarted.spec == pf.spec and restarted.total_connections == 0
        await until(state_is(hub, pf.key, ForwardState.ACTIVE), "active after the restart")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"pong\n")
        async with asyncio.timeout(DEADLINE):
            assert await reader.readexactly(5) == b"pong\n"

        await hub.forwards.remove(pf.key)
        assert pf.key not in hub.forwards.forwards and in_store(hub, pf.key) is None
        async with asyncio.timeout(DEADLINE):
            assert await reader.read() == b""
        writer.close()
        assert await refused(port)


@pytest.mark.docker
async def test_the_hub_closes_its_forwards_when_it_ends(containers: Containers, kube: KubeEmulator) -> None:
    web_deployment(kube, to=containers.blue)
    kube.add_pod(NS, "echo-1", containers=[{"name": "echo", "image": "x", "ports": [{"containerPort": 9000}]}])
    kube.set_portforward_target(NS, "echo-1", 9000, *containers.echo)
    async with forwarding(kube) as hub:
        web = await hub.forwards.start(spec("deployment", "web", 8080))
        echo = await hub.forwards.start(spec("pod", "echo-1", 9000))
        await until(state_is(hub, echo.key, ForwardState.ACTIVE), "the echo forward active")
        reader, writer = await asyncio.open_connection("127.0.0.1", echo.spec.local_port)
        writer.write(b"ping\n")
        async with asyncio.timeout(DEADLINE):
            assert await reader.readexactly(5) == b"ping\n"
    # The hub's run was cancelled (quitting Ferryman): no listener, no connection, no stream.
    async with asyncio.timeout(DEADLINE):
        assert await reader.read() == b""
    writer.close()
    for pf in (web, echo):
        assert await refused(pf.spec.local_port)
        assert hub.forwards.forwards[pf.key].state == ForwardState.STOPPED
        assert in_store(hub, pf.key).state == ForwardState.STOPPED
    await until(lambda: kube.portforward_count == 0, "no stream left at the API server")
