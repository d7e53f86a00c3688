"""HTTP health URLs (backends/httpprobe.py) against real HTTP servers.

Two kinds of server, both real sockets: a small asyncio HTTP server in this process (for
the prober's own rules: statuses, history, retargeting, the hook, closing — fast, and
exact about what was requested), and busybox servers in containers on the real engine,
reached the way a user's services are: a Compose project's published ports, and a
Kubernetes Service's ClusterIP served by the emulated API server. Nothing of httpx,
docker or kr8s is patched; every wait is on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from backends.adapter import Adapter
from backends.compose import ComposeAdapter
from backends.config import Config, HealthConfig
from backends.headless import build_hub
from backends.httpprobe import HttpProber
from backends.hub import Hub
from backends.kube import KubeAdapter
from backends.model import (
    HTTP_CHECK_RECENT,
    Health,
    HttpCheck,
    Instance,
    InstanceChanged,
    InstanceGone,
    KubeService,
    ObjectChanged,
    Port,
    RunState,
    ServicePort,
    Source,
    WorkloadKey,
)
from backends.store import Store
from tests.support import hubs
from tests.support.dockerenv import TEST_IMAGE, container_ip
from tests.support.kube_emulator import KubeEmulator
from tests.support.scripted import ScriptedAdapter, make_instance, stopped

DEADLINE = 20.0


# ---- helpers ---------------------------------------------------------------------------


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE):  # noqa: ANN201
    return await hubs.until(condition, what, timeout)
class LocalHttp:
    """A real HTTP/1.1 server on 127.0.0.1: `statuses` maps a path to the status it
    answers (changeable while running); "/hang" accepts and never answers."""

    REASONS = {200: "OK", 204: "No Content", 302: "Found", 404: "Not Found", 500: "Internal Server Error"}

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {"/ok": 200, "/missing": 404, "/moved": 302, "/boom": 500}
        self.requests: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> LocalHttp:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, path: str) -> int:
        return sum(1 for p in self.requests if p == path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            request_line = (await reader.readline()).decode()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
            self.requests.append(path)
            if path == "/hang":
                await reader.read()  # until the client gives up and hangs up
                return
            status = self.statuses.get(path, 404)
            body = b"ok\n"
            writer.write(
                f"HTTP/1.1 {status} {self.REASONS.get(status, 'Whatever')}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def settings(*urls: dict, interval: float = 0.2, timeout: float = 1.0) -> HealthConfig:
    return HealthConfig.model_validate({"interval_seconds": interval, "timeout_seconds": timeout, "urls": list(urls)})


@contextlib.asynccontextmanager
async def probing(prober: HttpProber, store: Store) -> AsyncIterator[HttpProber]:
    task = asyncio.create_task(prober.run(store.apply))
    try:
        yield prober
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def check_of(store: Store, workload: WorkloadKey, path: str) -> HttpCheck | None:
    obj = store.objects.get(f"probe/{workload.id}{path}")
    assert obj is None or isinstance(obj, HttpCheck)
    return obj


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def published(instance: Instance, *ports: Port) -> Instance:
    return replace(instance, ports=ports)


def pod(namespace: str, name: str, labels: dict[str, str], state: RunState = RunState.RUNNING) -> Instance:
    """A pod as the Kubernetes adapter maps it (for the store-only tests)."""
    return Instance(
        source=Source.K3S, id=f"uid-{name}", name=f"{name}-7d9f-abcde", workload=WorkloadKey(Source.K3S, namespace, name),
        state=state, health=Health.HEALTHY, image="web:1", ports=(Port(8080),), labels=tuple(sorted(labels.items())),
    )


def service(namespace: str, name: str, cluster_ip: str, ports: list[tuple[int, str]], selector: dict[str, str],
            kind: str = "ClusterIP") -> KubeService:
    return KubeService(
        namespace=namespace, name=name, type=kind, cluster_ip=cluster_ip, external_ips=(),
        ports=tuple(ServicePort(f"p{p}", p, t) for p, t in ports), selector=tuple(sorted(selector.items())),
    )


WEB = WorkloadKey(Source.COMPOSE, "shop", "web")


# ---- Compose targets, statuses, latency, history ---------------------------------------


async def test_published_port_is_probed_with_status_latency_and_history() -> None:
    store = Store()
    async with LocalHttp() as server:
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        prober = HttpProber(settings({"service": "web", "path": "/ok"}, interval=0.1), store)
        async with probing(prober, store):
            check = await until(
                lambda: (c := check_of(store, WEB, "/ok")) and len(c.recent) >= 3 and c, "three probes of /ok"
            )
    assert check.key == f"probe/{WEB.id}/ok"
    assert check.url == f"http://127.0.0.1:{server.port}/ok"  # 0.0.0.0 is reached on loopback
    assert (check.ok, check.status, check.error) == (True, 200, "")
    assert check.latency_ms is not None and 0 < check.latency_ms < 1000
    assert check.checked_at is not None
    assert all(check.recent)


@pytest.mark.parametrize(
    ("path", "expect", "ok", "status", "error"),
    [
        ("/missing", None, False, 404, "HTTP 404 Not Found, expected 200-399"),
        ("/boom", None, False, 500, "HTTP 500 Internal Server Error, expected 200-399"),
        ("/moved", None, True, 302, ""),  # a redirect answers; it is not followed
        ("/ok", [204, "300-302"], False, 200, "HTTP 200 OK, expected 204, 300-302"),
        ("/missing", 404, True, 404, ""),  # a service whose health page is "not found" on purpose
    ],
)
async def test_status_is_judged_against_expect(path: str, expect, ok: bool, status: int, error: str) -> None:
    store = Store()
    url: dict = {"service": "shop/web", "path": path}
    if expect is not None:
        url["expect"] = expect
    async with LocalHttp() as server:
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        async with probing(HttpProber(settings(url), store), store):
            check = await until(lambda: check_of(store, WEB, path), f"a check of {path}")
    assert (check.ok, check.status, check.error) == (ok, status, error)
    assert check.recent == (ok,)


async def test_recent_history_is_bounded_and_oldest_first() -> None:
    store = Store()
    async with LocalHttp() as server:
        server.statuses["/flip"] = 200
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        async with probing(HttpProber(settings({"service": "web", "path": "/flip"}, interval=0.02), store), store):
            await until(lambda: server.count("/flip") >= HTTP_CHECK_RECENT + 5, "more probes than the history keeps")
            server.statuses["/flip"] = 500
            check = await until(
                lambda: (c := check_of(store, WEB, "/flip")) and c.recent[-3:] == (False,) * 3 and c, "3 failures"
            )
    assert len(check.recent) == HTTP_CHECK_RECENT
    assert check.recent[0] is True  # oldest first: the failures are at the end
    assert not check.ok and check.status == 500


async def test_hanging_url_times_out_and_the_loop_keeps_its_pace() -> None:
    store = Store()
    gaps: list[float] = []

    async def ticker() -> None:
        # A UI's timer stands for the event loop: a blocking probe would stall it for
        # the whole timeout; an async one costs it nothing measurable.
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with LocalHttp() as server:
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        prober = HttpProber(settings({"service": "web", "path": "/hang"}, {"service": "web", "path": "/ok"},
                                     interval=0.1, timeout=1.0), store)
        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        try:
            async with probing(prober, store):
                hung = await until(lambda: check_of(store, WEB, "/hang"), "the hanging probe's result")
                took = time.monotonic() - started
                healthy = check_of(store, WEB, "/ok")
        finally:
            tick.cancel()
    assert hung.error == "timed out after 1 s"
    assert (hung.ok, hung.status, hung.latency_ms) == (False, None, None)
    assert hung.url == f"http://127.0.0.1:{server.port}/hang"
    assert took >= 0.9  # the timeout is honoured: not given up early...
    # ...and only that probe waited: the other URL kept being probed meanwhile.
    assert healthy is not None and len(healthy.recent) >= 2 and healthy.ok
    assert max(gaps) < 0.8, f"the event loop stalled for {max(gaps):.2f}s"


async def test_connection_refused_is_said_plainly() -> None:
    store = Store()
    port = free_port()
    store.apply(InstanceChanged(make_instance("shop", "web", host_port=port)))
    async with probing(HttpProber(settings({"service": "web", "path": "/health"}), store), store):
        check = await until(lambda: check_of(store, WEB, "/health"), "a check")
    assert (check.ok, check.status, check.latency_ms) == (False, None, None)
    assert check.error == "connection refused"
    assert check.url == f"http://127.0.0.1:{port}/health"


async def test_unpublished_or_missing_port_is_a_failed_check_saying_why() -> None:
    store = Store()
    worker = WorkloadKey(Source.COMPOSE, "shop", "worker")
    store.apply(InstanceChanged(make_instance("shop", "worker")))  # 8080 exposed, not published
    async with LocalHttp() as server:
        store.apply(InstanceChanged(published(
            make_instance("shop", "web"), Port(80, "tcp", "0.0.0.0", free_port()), Port(8080, "tcp", "127.0.0.1", server.port),
        )))
        urls = (
            {"service": "worker", "path": "/health"},
            {"service": "web", "path": "/ok", "port": 8080},
            {"service": "web", "path": "/nine", "port": 9999},
        )
        async with probing(HttpProber(settings(*urls), store), store):
            await until(lambda: check_of(store, WEB, "/ok") and check_of(store, worker, "/health"), "the checks")
            unpublished = check_of(store, worker, "/health")
            chosen = check_of(store, WEB, "/ok")
            missing = check_of(store, WEB, "/nine")
    assert (unpublished.ok, unpublished.url, unpublished.error) == (False, "", "no published port")
    assert unpublished.recent == ()  # nothing was probed
    assert chosen.url == f"http://127.0.0.1:{server.port}/ok" and chosen.ok  # the configured container port
    assert (missing.ok, missing.url, missing.error) == (False, "", "port 9999 is not published")


async def test_the_ipv4_binding_is_probed_when_docker_gives_ipv6_another_port() -> None:
    # Seen on this engine: "8080" published as 0.0.0.0:32810 and [::]:32809, the ::
    # listener IPv6-only, so 127.0.0.1:32809 is refused. The adapter keeps both (they
    # differ); the :: one sorts first.
    store = Store()
    async with LocalHttp() as server:
        web = published(
            make_instance("shop", "web"), Port(8080, "tcp", "::", server.port - 1), Port(8080, "tcp", "0.0.0.0", server.port)
        )
        store.apply(InstanceChanged(web))
        async with probing(HttpProber(settings({"service": "web", "path": "/ok"}), store), store):
            check = await until(lambda: check_of(store, WEB, "/ok"), "the check")
    assert check.url == f"http://127.0.0.1:{server.port}/ok" and check.ok


async def test_a_new_published_port_moves_the_probe() -> None:
    store = Store()
    async with LocalHttp() as first, LocalHttp() as second:
        web = make_instance("shop", "web", host_port=first.port)
        store.apply(InstanceChanged(web))
        async with probing(HttpProber(settings({"service": "web", "path": "/ok"}, interval=0.05), store), store):
            await until(lambda: first.count("/ok") >= 2, "probes on the first port")
            # `docker compose up` re-creating the container publishes a new port.
            store.apply(InstanceChanged(published(web, Port(8080, "tcp", "0.0.0.0", second.port))))
            check = await until(
                lambda: (c := check_of(store, WEB, "/ok")) and c.url.endswith(f":{second.port}/ok") and c, "the new url"
            )
            await until(lambda: second.count("/ok") >= 2, "probes on the second port")
            settled = first.count("/ok")
            await asyncio.sleep(0.3)
            assert first.count("/ok") == settled, "the old port is still probed"
    assert check.ok and len(check.recent) >= 1


async def test_stopped_and_removed_workloads_lose_their_checks() -> None:
    store = Store()
    removed: list[str] = []
    store.subscribe(lambda change: removed.extend(change.objects_removed))
    key = f"probe/{WEB.id}/ok"
    async with LocalHttp() as server:
        web = make_instance("shop", "web", host_port=server.port)
        store.apply(InstanceChanged(web))
        async with probing(HttpProber(settings({"service": "web", "path": "/ok"}, interval=0.05), store), store):
            await until(lambda: check_of(store, WEB, "/ok"), "the check")
            store.apply(InstanceChanged(stopped(web)))
            await until(lambda: check_of(store, WEB, "/ok") is None, "the check gone with the container stopped")
            assert removed == [key]
            count = server.count("/ok")
            await asyncio.sleep(0.3)
            assert server.count("/ok") == count, "a stopped container is still probed"
            assert check_of(store, WEB, "/ok") is None, "a cancelled probe published after its check was removed"

            store.apply(InstanceChanged(web))  # started again
            await until(lambda: check_of(store, WEB, "/ok"), "the check back")
            store.apply(InstanceGone(Source.COMPOSE, web.id))  # and removed (compose down)
            await until(lambda: check_of(store, WEB, "/ok") is None, "the check gone with the workload")
    assert removed == [key, key]


async def test_group_pinned_entry_wins_over_a_plain_name() -> None:
    store = Store()
    other = WorkloadKey(Source.COMPOSE, "other", "web")
    async with LocalHttp() as server:
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        store.apply(InstanceChanged(make_instance("other", "web", host_port=server.port)))
        urls = ({"service": "web", "path": "/ok", "expect": 500}, {"service": "shop/web", "path": "/ok"})
        async with probing(HttpProber(settings(*urls), store), store):
            await until(lambda: check_of(store, WEB, "/ok") and check_of(store, other, "/ok"), "both checks")
            pinned, plain = check_of(store, WEB, "/ok"), check_of(store, other, "/ok")
    assert pinned.ok  # shop/web: the pinned entry (default statuses)
    assert not plain.ok and plain.error == "HTTP 200 OK, expected 500"  # other/web: only "web" names it


# ---- k3s targets (store-level; the emulator test below goes through kr8s) -------------


async def test_k3s_workload_is_probed_through_the_service_selecting_its_pods() -> None:
    store = Store()
    api = WorkloadKey(Source.K3S, "shop", "api")
    async with LocalHttp() as server:
        store.apply(InstanceChanged(pod("shop", "api", {"app": "api", "tier": "back"})))
        prober = HttpProber(settings({"service": "api", "path": "/ok", "port": 8080}), store)
        async with probing(prober, store):
            lonely = await until(lambda: check_of(store, api, "/ok"), "the unresolved check")
            assert (lonely.ok, lonely.url) == (False, "")
            assert lonely.error.startswith("no ClusterIP service")
            # The Service arrives (its name differs; its selector picks the pods). The
            # configured 8080 is its targetPort: the probe goes to its port.
            store.apply(ObjectChanged(service("shop", "api-svc", "127.0.0.1", [(server.port, "8080")], {"app": "api"})))
            check = await until(lambda: (c := check_of(store, api, "/ok")) and c.ok and c, "the probe via the Service")
    assert check.url == f"http://127.0.0.1:{server.port}/ok"


async def test_headless_or_portless_services_are_reported() -> None:
    store = Store()
    web = WorkloadKey(Source.K3S, "shop", "web")
    store.apply(InstanceChanged(pod("shop", "web", {"app": "web"})))
    store.apply(ObjectChanged(service("shop", "web", "None", [(8080, "8080")], {"app": "web"})))
    prober = HttpProber(settings({"service": "shop/web", "path": "/health", "port": 9090}), store)
    async with probing(prober, store):
        check = await until(lambda: check_of(store, web, "/health"), "the check")
        assert check.error.startswith("no ClusterIP service (web is ClusterIP, headless")
        store.apply(ObjectChanged(service("shop", "web", "10.43.0.7", [(8080, "8080")], {"app": "web"})))
        check = await until(lambda: (c := check_of(store, web, "/health")) and "9090" in c.error and c, "port problem")
    assert check.error == "Service web has no port 9090"


async def test_extra_targets_hook_wins_and_refresh_applies_it() -> None:
    store = Store()
    web = WorkloadKey(Source.K3S, "shop", "web")
    store.apply(InstanceChanged(pod("shop", "web", {"app": "web"})))
    forwards: dict[str, str] = {}

    def hook(workload):
        if workload.key.name == "boom":
            raise RuntimeError("a broken hook")
        return forwards.get(workload.key.name)

    store.apply(InstanceChanged(pod("shop", "boom", {"app": "boom"})))
    async with LocalHttp() as server:
        prober = HttpProber(settings({"service": "web", "path": "/ok"}, {"service": "boom", "path": "/ok"}), store,
                            extra_targets=hook)
        async with probing(prober, store):
            await until(lambda: check_of(store, web, "/ok"), "the unresolved check")
            forwards["web"] = server.base + "/"  # a port-forward opened (trailing slash tolerated)
            prober.refresh()
            check = await until(lambda: (c := check_of(store, web, "/ok")) and c.ok and c, "the probe via the forward")
            broken = check_of(store, WorkloadKey(Source.K3S, "shop", "boom"), "/ok")
    assert check.url == f"{server.base}/ok"
    assert broken is not None and broken.error.startswith("no ClusterIP service")  # the hook's failure is contained


# ---- lifecycle -----------------------------------------------------------------------


async def test_cancelling_the_run_stops_every_probe_and_closes_the_client() -> None:
    store = Store()
    async with LocalHttp() as server:
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        prober = HttpProber(settings({"service": "web", "path": "/ok"}, {"service": "web", "path": "/hang"},
                                     interval=0.05, timeout=30), store)
        async with probing(prober, store):
            await until(lambda: server.count("/ok") >= 2 and server.count("/hang") >= 1, "probes under way")
            client = prober._client
        assert client is not None and client.is_closed
        assert prober._client is None and not prober._tasks
        count = len(server.requests)
        await asyncio.sleep(0.3)
        assert len(server.requests) == count, "a probe outlived the run"


async def test_close_ends_a_running_prober() -> None:
    store = Store()
    async with LocalHttp() as server:
        store.apply(InstanceChanged(make_instance("shop", "web", host_port=server.port)))
        prober = HttpProber(settings({"service": "web", "path": "/hang"}, timeout=30), store)
        task = asyncio.create_task(prober.run(store.apply))
        await until(lambda: server.count("/hang") == 1, "a probe under way")
        await prober.close()
        await asyncio.wait_for(task, DEADLINE)  # returns, without being cancelled
        assert prober._client is None and not prober._tasks


class Failing:
    """A prober that breaks at once."""

    closed = False

    async def run(self, apply) -> None:
        raise RuntimeError("broken prober")

    async def close(self) -> None:
        self.closed = True


async def test_hub_runs_probers_beside_its_adapters_and_closes_them() -> None:
    adapter = ScriptedAdapter()
    built: list[HttpProber] = []
    failing = Failing()
    async with LocalHttp() as server:

        def make(store: Store) -> HttpProber:
            built.append(HttpProber(settings({"service": "web", "path": "/ok"}, interval=0.05), store))
            return built[-1]

        hub = Hub([adapter], probers=[make, failing])
        task = asyncio.create_task(hub.run())
        try:
            # The broken prober is logged and left behind; the adapter and the other prober go on.
            adapter.emit(adapter.connected(), InstanceChanged(make_instance("shop", "web", host_port=server.port)))
            check = await until(lambda: (c := check_of(hub.store, WEB, "/ok")) and c.ok and c, "a check via the hub")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert check.status == 200
    assert hub.probers == [failing, built[0]]
    assert failing.closed and built[0]._client is None


async def test_build_hub_wires_the_prober_only_when_urls_are_configured() -> None:
    none = build_hub(Config())
    await none.start_probers()
    assert none.probers == []
    health = settings({"service": "web", "path": "/health"})
    hub = build_hub(Config(health=health))
    await hub.start_probers()
    [prober] = hub.probers
    assert isinstance(prober, HttpProber)
    assert prober.settings is health and prober.store is hub.store


# ---- real containers on the real engine ---------------------------------------------------

# One busybox httpd answering 200 (/health), 404 (/missing), 500 (a CGI) and never (a CGI
# that sleeps); each file is written at start so the image stays the shared test image.
HTTPD_SETUP = r"""
mkdir -p /srv/cgi-bin
echo ok > /srv/health
printf '#!/bin/sh\nprintf "Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nboom\\n"\n' > /srv/cgi-bin/boom
printf '#!/bin/sh\nexec sleep 100000\n' > /srv/cgi-bin/hang
chmod +x /srv/cgi-bin/boom /srv/cgi-bin/hang
exec httpd -f -p 8080 -h /srv
"""


def httpd() -> dict:
    return {"image": TEST_IMAGE, "command": ["sh", "-c", HTTPD_SETUP.replace("$", "$$")], "ports": ["8080"],
            "stop_grace_period": "1s"}


def running_hub(adapter: Adapter, health: HealthConfig):  # noqa: ANN201
    return hubs.running_hub(Hub([adapter], probers=[lambda store: HttpProber(health, store)]))


@pytest.mark.docker
async def test_real_containers_answer_fail_hang_and_hang_up(compose_project, docker_client) -> None:
    project = compose_project({
        "web": httpd(),
        # Accepts every connection, hands it to `sleep`, never answers.
        "silent": {"image": TEST_IMAGE, "command": ["nc", "-ll", "-p", "8080", "-e", "sleep", "100000"],
                   "ports": ["8080"], "stop_grace_period": "1s"},
        # Publishes 8080 but nothing listens there: Docker's proxy accepts and hangs up.
        "closed": {"image": TEST_IMAGE, "command": ["sleep", "100000"], "ports": ["8080"], "stop_grace_period": "1s"},
    })
    p = project.name
    health = settings(
        {"service": f"{p}/web", "path": "/health"},
        {"service": f"{p}/web", "path": "/missing"},
        {"service": f"{p}/web", "path": "/cgi-bin/boom"},
        {"service": f"{p}/web", "path": "/cgi-bin/hang"},
        {"service": f"{p}/silent", "path": "/"},
        {"service": f"{p}/closed", "path": "/"},
        interval=0.3, timeout=1.5,
    )
    web, silent, closed = (WorkloadKey(Source.COMPOSE, p, n) for n in ("web", "silent", "closed"))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    tick = asyncio.create_task(ticker())
    try:
        async with running_hub(ComposeAdapter(reconnect_min=0.05, reconnect_max=0.3), health) as hub:
            store = hub.store

            def all_in() -> bool:
                ok = check_of(store, web, "/health")
                return bool(
                    ok and len(ok.recent) >= 3
                    and all(check_of(store, *at) for at in (
                        (web, "/missing"), (web, "/cgi-bin/boom"), (web, "/cgi-bin/hang"), (silent, "/"), (closed, "/"),
                    ))
                )

            await until(all_in, "every check of the project", timeout=30)
            healthy, missing = check_of(store, web, "/health"), check_of(store, web, "/missing")
            boom, hang = check_of(store, web, "/cgi-bin/boom"), check_of(store, web, "/cgi-bin/hang")
            quiet, hung_up = check_of(store, silent, "/"), check_of(store, closed, "/")
            [inst] = store.instances_of(web.id)
            host_port = next(p.host_port for p in inst.ports if p.container_port == 8080 and p.host_ip == "0.0.0.0")

            assert healthy.url == f"http://127.0.0.1:{host_port}/health"
            assert (healthy.ok, healthy.status, healthy.error) == (True, 200, "")
            assert healthy.latency_ms is not None and healthy.latency_ms > 0
            assert all(healthy.recent)
            assert (missing.ok, missing.status, missing.error) == (False, 404, "HTTP 404 Not Found, expected 200-399")
            assert (boom.ok, boom.status) == (False, 500)
            assert boom.error == "HTTP 500 Internal Server Error, expected 200-399"
            for hung in (hang, quiet):
                assert (hung.ok, hung.status, hung.error) == (False, None, "timed out after 1.5 s")
            assert hung_up.ok is False and hung_up.status is None
            assert hung_up.error in ("connection closed without an answer", "connection reset without an answer")
            assert max(gaps) < 1.0, f"the event loop stalled for {max(gaps):.2f}s"

            # The container stops: its checks go; the other services' stay.
            await asyncio.to_thread(project.cli, "stop", "-t", "1", "web")
            await until(lambda: not any(k.startswith(f"probe/{web.id}/") for k in store.objects), "web's checks gone")
            assert check_of(store, silent, "/") is not None
    finally:
        tick.cancel()


@pytest.mark.docker
async def test_k3s_workload_probed_through_its_service_cluster_ip(
    compose_project, docker_client, kube: KubeEmulator
) -> None:
    # No cluster network here: the Services' ClusterIP is a real container's address on
    # its Compose network, which this host reaches like a node reaches a ClusterIP.
    project = compose_project({"web": httpd()})
    [container] = await asyncio.to_thread(project.container_ids, docker_client, "web")
    ip = container_ip(container)
    ns = "shop"
    for name in ("web", "api", "down", "lonely"):
        kube.add_deployment(ns, name)
        kube.add_pod(ns, f"{name}-abc12", owner=name)

    def svc(name: str, cluster_ip: str, port: int, target: int, selector: dict[str, str]) -> None:
        kube.add_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                         "spec": {"clusterIP": cluster_ip, "selector": selector,
                                  "ports": [{"name": "http", "port": port, "targetPort": target}]}})

    svc("web", ip, 8080, 8080, {"app": "web"})  # same name as the Deployment
    svc("api-svc", ip, 8080, 8080, {"app": "api"})  # another name; its selector picks api's pods
    svc("down", ip, 9, 9, {"app": "down"})  # nothing listens on port 9: the kernel refuses
    health = settings(
        {"service": f"{ns}/web", "path": "/health"},
        {"service": "api", "path": "/missing"},
        {"service": "down", "path": "/health"},
        {"service": "lonely", "path": "/health"},
        interval=0.3, timeout=1.0,
    )
    web, api, down, lonely = (WorkloadKey(Source.K3S, ns, n) for n in ("web", "api", "down", "lonely"))
    adapter = KubeAdapter(kubeconfig=str(kube.kubeconfig), reconnect_min=0.05, reconnect_max=0.3, api_timeout=3.0)
    async with running_hub(adapter, health) as hub:
        store = hub.store
        await until(
            lambda: (c := check_of(store, web, "/health")) and c.ok
            and check_of(store, api, "/missing") and check_of(store, down, "/health")
            and check_of(store, lonely, "/health"),
            "the k3s checks",
        )
        ok, missing = check_of(store, web, "/health"), check_of(store, api, "/missing")
        refused, unresolved = check_of(store, down, "/health"), check_of(store, lonely, "/health")
        assert ok.url == f"http://{ip}:8080/health" and ok.status == 200
        assert missing.url == f"http://{ip}:8080/missing"
        assert (missing.ok, missing.status) == (False, 404)
        assert (refused.ok, refused.status, refused.error) == (False, None, "connection refused")
        assert unresolved.url == "" and unresolved.error.startswith("no ClusterIP service")

        # The Deployment is deleted (its ReplicaSet and pod with it): the check goes.
        kube.delete_object("deployments", ns, "web")
        await until(lambda: check_of(store, web, "/health") is None, "web's check gone with the Deployment")
        assert check_of(store, api, "/missing") is not None


def test_check_keys_are_the_models() -> None:
    # The prober names its targets with the key the store files HttpCheck under.
    from backends.httpprobe import Target

    target = Target(WEB, "/health", "", "", ((200, 399),))
    check = HttpCheck(WEB, "/health", "", False, None, None, "", None)
    assert target.key == check.key
