"""The Compose adapter against the real Docker engine (and pure mapping on dicts).

Docker tests wait on conditions in the store, never on fixed sleeps, and look only at
their own project: other projects may be running on the same engine.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors
import pytest
import requests
import urllib3.exceptions

from backends.adapter import Action, ActionError
from backends.compose import (
    DEFAULT_HOST,
    ComposeAdapter,
    backoff_delays,
    describe_docker_error,
    event_target,
    instance_from_inspect,
    parse_docker_time,
)
from backends.model import (
    ConnState,
    Health,
    Instance,
    InstanceChanged,
    Port,
    RunState,
    Snapshot,
    Source,
    SourceStatus,
    WorkloadKey,
)
from tests.support.feed import AdapterFeed
from tests.support.dockerenv import TEST_IMAGE, httpd_service, sleeper_service
from tests.support.private_dockerd import PrivateDockerd

DEADLINE = 20.0

# ---- helpers --------------------------------------------------------------------------


class Feed(AdapterFeed):
    deadline = DEADLINE

    def project(self, name: str) -> list[Instance]:
        return [i for i in self.store.instances.values() if i.workload.group == name]

    def instance(self, container_id: str) -> Instance | None:
        return self.store.instances.get(f"{Source.COMPOSE}/{container_id}")


def docker_cli(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


async def wait_healthy(client: docker.DockerClient, container_id: str) -> None:
    """Readiness of the fixture itself, before the adapter is started."""
    deadline = time.monotonic() + DEADLINE
    while client.api.inspect_container(container_id)["State"].get("Health", {}).get("Status") != "healthy":
        assert time.monotonic() < deadline, "the httpd service never became healthy"
        await asyncio.sleep(0.05)


def inspect_dict(**overrides: object) -> dict:
    """A running Compose container's inspect, trimmed to what the mapping reads."""
    attrs: dict = {
        "Id": "c0ffee" * 10 + "abcd",
        "Name": "/shop_web_1",
        "Created": "2024-05-01T10:00:00.123456789Z",
        "RestartCount": 2,
        "State": {
            "Status": "running",
            "Running": True,
            "OOMKilled": False,
            "ExitCode": 0,
            "StartedAt": "2024-05-01T10:00:01.5Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
            "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []},
        },
        "Config": {
            "Image": "shop/web:dev",
            "Labels": {
                "com.docker.compose.project": "shop",
                "com.docker.compose.service": "web",
                "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False",
            },
            "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
        },
        "NetworkSettings": {
            "Ports": {
                "8080/tcp": [
                    {"HostIp": "0.0.0.0", "HostPort": "32768"},
                    {"HostIp": "::", "HostPort": "32768"},
                ],
                "9090/tcp": None,
            }
        },
    }
    return {**attrs, **overrides}


def config(**overrides: object) -> dict:
    """The default `Config` with some keys replaced."""
    return {**inspect_dict()["Config"], **overrides}


def exited_state(code: int, **extra: object) -> dict:
    return {
        "Status": "exited", "Running": False, "ExitCode": code, "OOMKilled": False,
        "StartedAt": "2024-05-01T10:00:01Z", "FinishedAt": "2024-05-01T11:00:00.000000001Z",
        **extra,
    }


# ---- inspect -> Instance (pure) -------------------------------------------------------------


def test_running_healthy_container_maps_every_field() -> None:
    inst = instance_from_inspect(inspect_dict())

    assert inst is not None
    assert inst.source == Source.COMPOSE
    assert inst.workload == WorkloadKey(Source.COMPOSE, "shop", "web")
    assert inst.name == "shop_web_1"
    assert (inst.state, inst.health) == (RunState.RUNNING, Health.HEALTHY)
    assert inst.image == "shop/web:dev"
    # The :: twin of the 0.0.0.0 binding is one port to the user; 9090 is exposed only.
    assert inst.ports == (Port(8080, "tcp", "0.0.0.0", 32768), Port(9090, "tcp"))
    assert inst.created_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert inst.started_at == datetime(2024, 5, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert inst.finished_at is None
    assert inst.restarts == 2
    assert inst.exit_code is None
    assert inst.oom_killed is False
    assert inst.number == 1
    assert inst.status_text == "Up"
    assert inst.labels == tuple(sorted(inst.labels)) and ("com.docker.compose.service", "web") in inst.labels


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ({"Status": "healthy"}, Health.HEALTHY),
        ({"Status": "starting"}, Health.STARTING),
        ({"Status": "unhealthy", "FailingStreak": 3}, Health.UNHEALTHY),
        ({"Status": "something-new"}, Health.UNKNOWN),
        (None, Health.NO_CHECK),
    ],
)
def test_health_comes_from_the_probe_state(health: dict | None, expected: Health) -> None:
    state = {**inspect_dict()["State"], "Health": health}
    if health is None:
        del state["Health"]
    inst = instance_from_inspect(inspect_dict(State=state))
    assert inst is not None and inst.health == expected


def test_exited_container_has_its_exit_code_and_stopped_health() -> None:
    inst = instance_from_inspect(inspect_dict(State=exited_state(137), NetworkSettings={"Ports": {}}))

    assert inst is not None
    assert (inst.state, inst.health, inst.exit_code) == (RunState.EXITED, Health.STOPPED, 137)
    assert inst.status_text == "Exited (137)"
    assert inst.finished_at == datetime(2024, 5, 1, 11, 0, 0, tzinfo=UTC)
    # A stopped container publishes nothing, but its exposed ports are still listed.
    assert inst.ports == (Port(8080, "tcp"), Port(9090, "tcp"))


def test_oom_kill_is_reported() -> None:
    inst = instance_from_inspect(inspect_dict(State=exited_state(137, OOMKilled=True)))
    assert inst is not None and inst.oom_killed and inst.exit_code == 137


def test_restarting_container_keeps_its_last_exit_code() -> None:
    state = {**exited_state(1), "Status": "restarting", "Running": True, "Restarting": True}
    inst = instance_from_inspect(inspect_dict(State=state))
    assert inst is not None
    assert (inst.state, inst.exit_code, inst.status_text) == (RunState.RESTARTING, 1, "Restarting (1)")
    assert inst.running


def test_never_started_container_has_no_times() -> None:
    state = {"Status": "created", "Running": False, "ExitCode": 0,
             "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}
    inst = instance_from_inspect(inspect_dict(State=state, NetworkSettings={}))

    assert inst is not None
    assert (inst.state, inst.health, inst.status_text) == (RunState.CREATED, Health.STOPPED, "Created")
    assert inst.started_at is None and inst.finished_at is None and inst.exit_code is None


def test_odd_labels_are_kept_sorted_and_do_not_break_the_mapping() -> None:
    labels = {
        **inspect_dict()["Config"]["Labels"],
        "zeta": "",
        "équipe": "données ✓",
        "with=equals": "a=b=c",
        "multi\nline": "x\ty",
        "emoji.🚢": "🐳",
        "com.docker.compose.container-number": "not-a-number",
    }
    inst = instance_from_inspect(inspect_dict(Config=config(Labels=labels)))

    assert inst is not None
    assert inst.labels == tuple(sorted(labels.items()))
    assert inst.label_map()["équipe"] == "données ✓"
    assert inst.number == 1  # a garbled number falls back rather than failing


def test_published_ports_on_specific_addresses_and_udp_are_sorted() -> None:
    ports = {
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
        "8080/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "443/tcp": None,
    }
    inst = instance_from_inspect(inspect_dict(NetworkSettings={"Ports": ports}, Config=config(ExposedPorts=None)))

    assert inst is not None
    assert inst.ports == (
        Port(53, "udp", "127.0.0.1", 5353),
        Port(443, "tcp"),
        Port(8080, "tcp", None, 8080),
    )


def test_non_compose_and_one_off_containers_are_not_instances() -> None:
    assert instance_from_inspect(inspect_dict(Config=config(Labels={"some": "label"}))) is None
    assert instance_from_inspect(inspect_dict(Config=config(Labels=None))) is None
    oneoff = {**inspect_dict()["Config"]["Labels"], "com.docker.compose.oneoff": "True"}
    assert instance_from_inspect(inspect_dict(Config=config(Labels=oneoff))) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00.123456789Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5+02:00", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_docker_times_parse_to_aware_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_docker_time(text) == expected


# ---- events, errors, back-off (pure) ----------------------------------------------------


def container_event(action: str, **attributes: str) -> dict:
    labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web", **attributes}
    return {"Type": "container", "Action": action, "status": action, "id": "abc",
            "Actor": {"ID": "abc", "Attributes": {"name": "shop_web_1", **labels}}}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (container_event("start"), ("abc", False)),
        (container_event("die"), ("abc", False)),
        (container_event("health_status: unhealthy"), ("abc", False)),  # dockerd 20.10's spelling
        (container_event("destroy"), ("abc", True)),
        (container_event("exec_start: test -f /tmp/ok"), None),  # one per healthcheck probe
        (container_event("exec_die"), None),
        (container_event("attach"), None),
        (container_event("start", **{"com.docker.compose.oneoff": "True"}), None),
        ({**container_event("start"), "Actor": {"ID": "abc", "Attributes": {"name": "x"}}}, None),
        ({**container_event("start"), "Type": "network"}, None),
    ],
)
def test_event_target_picks_state_changes_of_compose_containers(event: dict, expected: object) -> None:
    assert event_target(event) == expected


ENDPOINT = "unix:///var/run/docker.sock"


def wrapped_like_docker(cause: OSError) -> docker.errors.DockerException:
    """The chain docker-py raises when the socket cannot be opened."""
    try:
        try:
            raise requests.exceptions.ConnectionError(
                urllib3.exceptions.ProtocolError("Connection aborted.", cause)
            )
        except requests.exceptions.ConnectionError as exc:
            raise docker.errors.DockerException(f"Error while fetching server API version: {exc}") from exc
    except docker.errors.DockerException as exc:
        return exc


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (FileNotFoundError(2, "No such file or directory"), "socket not found (is dockerd running?)"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused (daemon not running)"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection lost"),
        (http.client.RemoteDisconnected("Remote end closed connection"), "connection lost"),
        (OSError(113, "No route to host"), "no route to host"),
    ],
)
def test_describe_docker_error_finds_the_os_cause(cause: OSError, reason: str) -> None:
    assert describe_docker_error(ENDPOINT, wrapped_like_docker(cause)) == (
        f"Docker: unreachable at {ENDPOINT} — {reason}"
    )


def real_connect_error(url: str, timeout: float = 1.0) -> BaseException:
    try:
        docker.DockerClient(base_url=url, timeout=timeout).ping()
    except Exception as exc:  # noqa: BLE001 - the error is the result
        return exc
    raise AssertionError(f"{url} answered")


def test_describe_docker_error_on_real_socket_failures(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path}/absent.sock"
    assert describe_docker_error(missing, real_connect_error(missing)).endswith(
        "— socket not found (is dockerd running?)"
    )

    dead = tmp_path / "dead.sock"  # a socket file nobody listens on: a daemon that died
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(dead))
    assert describe_docker_error("x", real_connect_error(f"unix://{dead}")).endswith(
        "— connection refused (daemon not running)"
    )

    with socket.socket(socket.AF_UNIX) as mute:  # accepts, never answers
        mute.bind(str(tmp_path / "mute.sock"))
        mute.listen()
        error = real_connect_error(f"unix://{tmp_path}/mute.sock", timeout=0.3)
    assert describe_docker_error("x", error) == "Docker: unreachable at x — timed out"

    with socket.socket(socket.AF_UNIX) as rude:  # accepts, then hangs up
        rude.bind(str(tmp_path / "rude.sock"))
        rude.listen()
        threading.Thread(target=lambda: rude.accept()[0].close(), daemon=True).start()
        error = real_connect_error(f"unix://{tmp_path}/rude.sock")
    assert describe_docker_error("x", error) == "Docker: unreachable at x — connection lost"


def test_describe_docker_error_falls_back_to_a_short_text() -> None:
    text = describe_docker_error(ENDPOINT, docker.errors.DockerException("Invalid bind address format: x\nmore"))
    assert text == f"Docker: unreachable at {ENDPOINT} — Invalid bind address format: x"


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = backoff_delays(0.5, 5.0)
    assert [next(delays) for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


# ---- adapter basics ---------------------------------------------------------------------------


def test_endpoint_comes_from_argument_then_docker_host_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert ComposeAdapter().endpoint == DEFAULT_HOST == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    assert ComposeAdapter().endpoint == "tcp://10.0.0.5:2375"
    assert ComposeAdapter("unix:///run/user/1000/docker.sock").endpoint == "unix:///run/user/1000/docker.sock"
    assert ComposeAdapter().source == Source.COMPOSE


def test_supports_lifecycle_actions() -> None:
    adapter = ComposeAdapter()
    assert all(adapter.supports(a) for a in (Action.RESTART, Action.STOP, Action.START))


def test_shell_command_is_an_argv_with_no_names_in_the_script() -> None:
    inst = instance_from_inspect(inspect_dict(Name="/x; rm -rf / #"))
    assert inst is not None
    argv = ComposeAdapter("unix:///tmp/d.sock").shell_command(inst)
    assert argv[:6] == ["docker", "-H", "unix:///tmp/d.sock", "exec", "-it", inst.id]
    assert argv[6:8] == ["sh", "-c"] and "rm" not in argv[8]


def test_endpoint_from_the_environment_is_left_to_the_cli_with_its_tls_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inst = instance_from_inspect(inspect_dict())
    assert inst is not None
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2376")
    argv = ComposeAdapter().shell_command(inst)
    assert argv[:4] == ["docker", "exec", "-it", inst.id]  # no -H: DOCKER_TLS_* stay in force


# ---- faults without an engine ------------------------------------------------------------------


async def test_missing_socket_is_reported_and_retried(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/nowhere/docker.sock"
    async with Feed(ComposeAdapter(endpoint, reconnect_min=0.05, reconnect_max=0.1)) as feed:
        await feed.until(lambda: len(feed.statuses()) >= 3, "a second attempt after back-off")

    first, *retries = feed.statuses()
    assert first == SourceStatus(Source.COMPOSE, ConnState.CONNECTING, endpoint)
    assert retries[0].state == retries[1].state == ConnState.UNREACHABLE
    assert retries[0].message == f"Docker: unreachable at {endpoint} — socket not found (is dockerd running?)"
    assert feed.status is not None and feed.status.state == ConnState.UNREACHABLE


async def test_refused_socket_is_reported(tmp_path: Path) -> None:
    dead = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(dead))
    async with Feed(ComposeAdapter(f"unix://{dead}", reconnect_min=0.05)) as feed:
        await feed.until(lambda: feed.status and feed.status.state == ConnState.UNREACHABLE, "unreachable")
    assert feed.status is not None and feed.status.message is not None
    assert feed.status.message.endswith("— connection refused (daemon not running)")


# ---- the real engine ----------------------------------------------------------------------------


@pytest.mark.docker
async def test_snapshot_lists_services_with_state_health_ports_and_image(docker_client, compose_project) -> None:
    project = compose_project({"web": httpd_service(0), "worker": sleeper_service()})
    [web_id] = project.container_ids(docker_client, "web")
    [worker_id] = project.container_ids(docker_client, "worker")
    await wait_healthy(docker_client, web_id)
    host_port = int(docker_client.api.port(web_id, 8080)[0]["HostPort"])

    async with Feed(ComposeAdapter()) as feed:
        await feed.until(lambda: any(isinstance(e, Snapshot) for e in feed.events), "the first snapshot")
        snapshot = next(e for e in feed.events if isinstance(e, Snapshot))

    status = feed.statuses()[1]
    assert status.state == ConnState.CONNECTED
    assert status.version == docker_client.version()["Version"]
    mine = {i.id: i for i in snapshot.instances if i.workload.group == project.name}
    assert set(mine) == {web_id, worker_id}
    web, worker = mine[web_id], mine[worker_id]
    assert (web.state, web.health, web.image) == (RunState.RUNNING, Health.HEALTHY, TEST_IMAGE)
    assert Port(8080, "tcp", "0.0.0.0", host_port) in web.ports
    assert web.name == f"{project.name}_web_1" and web.started_at is not None
    assert (worker.state, worker.health, worker.ports) == (RunState.RUNNING, Health.NO_CHECK, ())
    for service in ("web", "worker"):
        workload = feed.store.workloads[WorkloadKey(Source.COMPOSE, project.name, service).id]
        assert (workload.state, workload.running, workload.desired) == ("running", 1, 1)


@pytest.mark.docker
async def test_events_follow_stop_start_and_down(docker_client, compose_project) -> None:
    project = compose_project({"worker": sleeper_service()})
    [worker_id] = project.container_ids(docker_client, "worker")

    async with Feed(ComposeAdapter()) as feed:
        await feed.until(lambda: (i := feed.instance(worker_id)) and i.state == RunState.RUNNING, "running")

        docker_cli("stop", "-t", "1", worker_id)  # sleep ignores SIGTERM: killed, 137
        await feed.until(lambda: feed.instance(worker_id).state == RunState.EXITED, "exited")
        stopped = feed.instance(worker_id)
        assert (stopped.exit_code, stopped.health, stopped.status_text) == (137, Health.STOPPED, "Exited (137)")
        assert stopped.finished_at is not None

        docker_cli("start", worker_id)
        await feed.until(lambda: feed.instance(worker_id).state == RunState.RUNNING, "running again")
        assert feed.instance(worker_id).exit_code is None

        project.down()
        await feed.until(lambda: not feed.project(project.name), "the project's containers gone")
        assert not [w for w in feed.store.workloads.values() if w.key.group == project.name]
        assert feed.status is not None and feed.status.state == ConnState.CONNECTED


@pytest.mark.docker
async def test_healthcheck_turning_unhealthy_is_seen(docker_client, compose_project) -> None:
    probe = {"test": ["CMD", "test", "-f", "/tmp/ok"], "interval": "1s", "timeout": "1s", "retries": 1}
    project = compose_project({"api": sleeper_service(healthcheck=probe)})
    [api_id] = project.container_ids(docker_client, "api")
    workload_id = WorkloadKey(Source.COMPOSE, project.name, "api").id

    async with Feed(ComposeAdapter()) as feed:
        await feed.until(lambda: feed.instance(api_id) is not None, "the container")
        docker_cli("exec", api_id, "sh", "-c", "echo ok > /tmp/ok")
        await feed.until(lambda: feed.instance(api_id).health == Health.HEALTHY, "healthy")

        docker_cli("exec", api_id, "rm", "/tmp/ok")
        await feed.until(lambda: feed.instance(api_id).health == Health.UNHEALTHY, "unhealthy")
        assert feed.store.workloads[workload_id].health == Health.UNHEALTHY
        assert feed.instance(api_id).state == RunState.RUNNING


@pytest.mark.docker
async def test_a_burst_of_events_for_one_container_is_inspected_once(docker_client, compose_project) -> None:
    project = compose_project({"worker": sleeper_service(), "marker": sleeper_service()})
    [worker_id] = project.container_ids(docker_client, "worker")
    [marker_id] = project.container_ids(docker_client, "marker")
    adapter = ComposeAdapter()
    stream = adapter.stream()
    seen: list[Instance] = []
    try:
        async with asyncio.timeout(DEADLINE):
            async for event in stream:
                if isinstance(event, Snapshot):
                    break
            # Nobody reads the stream now: the burst queues up inside the adapter.
            for _ in range(5):
                await asyncio.to_thread(docker_cli, "pause", worker_id)
                await asyncio.to_thread(docker_cli, "unpause", worker_id)
            await asyncio.to_thread(docker_cli, "kill", marker_id)  # queued after the burst
            async for event in stream:
                if isinstance(event, InstanceChanged):
                    if event.instance.id == marker_id:
                        break
                    seen.append(event.instance)
    finally:
        await stream.aclose()
        await adapter.close()

    worker = [i for i in seen if i.id == worker_id]
    assert 1 <= len(worker) <= 2, f"10 events cost {len(worker)} inspects"
    assert worker[-1].state == RunState.RUNNING


@pytest.mark.docker
async def test_cancelling_the_stream_ends_the_events_thread(docker_client) -> None:
    before = set(threading.enumerate())
    async with Feed(ComposeAdapter()) as feed:
        await feed.until(lambda: any(isinstance(e, Snapshot) for e in feed.events), "the snapshot")
        pumps = [t for t in threading.enumerate() if t not in before and t.name == "ferryman-docker-events"]
        assert len(pumps) == 1 and pumps[0].is_alive()
    pumps[0].join(timeout=5)
    assert not pumps[0].is_alive()


# ---- actions --------------------------------------------------------------------------------------


def started_at(client: docker.DockerClient, container_id: str) -> str:
    return client.api.inspect_container(container_id)["State"]["StartedAt"]


@pytest.mark.docker
async def test_perform_stops_starts_and_restarts_real_containers(docker_client, compose_project) -> None:
    project = compose_project({"a": sleeper_service(), "b": sleeper_service()})
    ids = project.container_ids(docker_client)
    adapter = ComposeAdapter(stop_timeout=1)

    def states() -> set[str]:
        return {docker_client.api.inspect_container(i)["State"]["Status"] for i in ids}

    async with Feed(adapter) as feed:
        await feed.until(lambda: len(feed.project(project.name)) == 2, "both containers")
        both = feed.project(project.name)

        await adapter.perform(Action.STOP, both)  # both at once
        assert states() == {"exited"}
        await feed.until(lambda: all(i.state == RunState.EXITED for i in feed.project(project.name)), "exited")

        await adapter.perform(Action.START, both)
        assert states() == {"running"}
        await feed.until(lambda: all(i.state == RunState.RUNNING for i in feed.project(project.name)), "running")

        before = started_at(docker_client, ids[0])
        first = feed.instance(ids[0])
        await adapter.perform(Action.RESTART, [first])
        assert started_at(docker_client, ids[0]) > before
        await feed.until(
            lambda: (i := feed.instance(ids[0])).started_at != first.started_at and i.state == RunState.RUNNING,
            "the restart",
        )


@pytest.mark.docker
async def test_perform_on_a_removed_container_names_it(docker_client, compose_project) -> None:
    project = compose_project({"gone": sleeper_service()})
    [gone_id] = project.container_ids(docker_client)
    attrs = docker_client.api.inspect_container(gone_id)
    instance = instance_from_inspect(attrs)
    assert instance is not None
    docker_cli("rm", "-f", gone_id)

    adapter = ComposeAdapter()
    try:
        with pytest.raises(ActionError, match=f"^container {instance.name} no longer exists$"):
            await adapter.perform(Action.RESTART, [instance])
    finally:
        await adapter.close()


async def test_perform_against_a_dead_engine_says_why(tmp_path: Path) -> None:
    adapter = ComposeAdapter(f"unix://{tmp_path}/docker.sock")
    instance = instance_from_inspect(inspect_dict())
    assert instance is not None
    with pytest.raises(ActionError, match="socket not found"):
        await adapter.perform(Action.STOP, [instance])


# ---- reconnect and resync (a private daemon) ------------------------------------------------------


@pytest.mark.docker
async def test_reconnects_and_resyncs_after_the_daemon_restarts(private_dockerd: PrivateDockerd) -> None:
    daemon = private_dockerd
    project = f"fmpriv{uuid.uuid4().hex[:6]}"
    kept = daemon.run_service_container(project, "kept")
    removed = daemon.run_service_container(project, "removed")

    async with Feed(ComposeAdapter(daemon.host, reconnect_min=0.05, reconnect_max=0.2)) as feed:
        await feed.until(
            lambda: {i.id for i in feed.project(project) if i.state == RunState.RUNNING} == {kept, removed},
            "both containers running",
        )

        daemon.stop()
        await feed.until(
            lambda: feed.status.state == ConnState.UNREACHABLE
            and feed.status.message.endswith("socket not found (is dockerd running?)"),
            "unreachable: socket not found",
        )
        assert feed.status.message.startswith(f"Docker: unreachable at {daemon.host} — ")

        # Change the world behind the adapter's back: the same daemon, on a socket it
        # does not watch. Only a resync can tell it what happened.
        side = f"unix://{daemon.root}/side.sock"
        daemon.start(daemon.root / "side.sock")
        daemon.docker("rm", "-f", removed, host=side)
        added = daemon.run_service_container(project, "added", host=side)
        daemon.stop()

        reconnects = len([s for s in feed.statuses() if s.state == ConnState.CONNECTED])
        daemon.start()
        await feed.until(
            lambda: len([s for s in feed.statuses() if s.state == ConnState.CONNECTED]) > reconnects,
            "connected again",
        )
        listed = daemon.docker("ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}")
        truth = {cid: daemon.docker("inspect", "-f", "{{.State.Status}}", cid) for cid in listed.split()}
        await feed.until(lambda: {i.id: i.state.value for i in feed.project(project)} == truth, "the resync")

    assert set(truth) == {kept, added}
    assert sum(1 for i in feed.store.instances.values() if i.workload.group == project) == 2
    names = [i.name for i in feed.project(project)]
    assert sorted(names) == sorted({f"{project}_kept_1", f"{project}_added_1"})
    assert WorkloadKey(Source.COMPOSE, project, "removed").id not in feed.store.workloads
    assert feed.status.state == ConnState.CONNECTED and feed.status.version
    snapshots = [e for e in feed.events if isinstance(e, Snapshot)]
    assert len(snapshots) >= 2  # one per connection


def _first_unreachable_as_nobody(endpoint: str, conn) -> None:  # noqa: ANN001 - a Pipe end
    """Child process body: drop root, then meet the real socket as an unprivileged user."""
    # The interpreter lives where nobody may read: load what runs lazily (the thread pool) first.
    asyncio.run(asyncio.to_thread(lambda: None))
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)

    async def first() -> str | None:
        async for event in ComposeAdapter(endpoint, reconnect_min=0.05).stream():
            if isinstance(event, SourceStatus) and event.state == ConnState.UNREACHABLE:
                return event.message
        return None

    conn.send(asyncio.run(first()))


@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_permission_denied_on_the_real_socket_is_said(docker_client) -> None:
    import multiprocessing

    endpoint = "unix:///var/run/docker.sock"
    if os.stat("/var/run/docker.sock").st_mode & 0o006:
        pytest.skip("the socket is world-accessible here")
    ctx = multiprocessing.get_context("fork")  # the child keeps the loaded interpreter, then drops root
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_first_unreachable_as_nobody, args=(endpoint, child))
    proc.start()
    assert parent.poll(20), "no answer from the unprivileged child"
    message = parent.recv()
    proc.join(5)
    assert message == f"Docker: unreachable at {endpoint} — permission denied"
