"""Compose containers' health, told truthfully and explained: the pure mapping from
`docker inspect` to `Instance.health` / `health_reason` / `probes` on hand-written
dicts, then real containers with healthchecks that pass, fail, flip, time out, print
100 KB or binary junk, have no healthcheck at all or crash in a loop — on the real
Docker engine, through the real `ComposeAdapter` running in a real `Hub`. Probe runs
reach the store through the events stream (exec_die of each probe), never by polling.

Conditions are waited on with generous deadlines (the machine is small and shared),
never asserted after fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from backends.compose import (
    CRASH_LOOP_RESTARTS,
    CRASH_LOOP_WINDOW,
    ComposeAdapter,
    ProbeWatch,
    container_health,
    crash_loop_ends,
    exec_event,
    instance_from_inspect,
    probe_command,
    probe_output,
    probe_runs,
)
from backends.hub import Hub
from backends.logtext import clean_text
from backends.model import (
    PROBE_OUTPUT_CHARS,
    AdapterEvent,
    Health,
    Instance,
    InstanceChanged,
    ProbeRun,
    RunState,
    Snapshot,
    Source,
    WorkloadKey,
)
from backends.store import Change
from tests.support import hubs
from tests.support.dockerenv import TEST_IMAGE, sleeper_service

DEADLINE = 45.0  # generous: probes run every second, but the machine has 2 busy cores

# ---- hand-written inspects ------------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
LABELS = {
    "com.docker.compose.project": "shop",
    "com.docker.compose.service": "web",
    "com.docker.compose.container-number": "1",
    "com.docker.compose.oneoff": "False",
}
CHECK = {"Test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/health"], "Interval": 10**9, "Retries": 3}


def run(second: int, code: int, output: str = "") -> dict:
    """A State.Health.Log entry that started at 11:00:<second> and took 50 ms."""
    return {
        "Start": f"2024-05-01T11:00:{second:02d}.000000001Z",
        "End": f"2024-05-01T11:00:{second:02d}.050000001Z",
        "ExitCode": code,
        "Output": output,
    }


def attrs(state: dict | None = None, *, health: dict | None = None, check: dict | None = CHECK,
          restarts: int = 0, **config: object) -> dict:
    """A Compose container's inspect, running since 11:00 (an hour before NOW) unless
    `state` says otherwise; `health` is its State.Health (None: no healthcheck)."""
    state = dict(state or {
        "Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
        "ExitCode": 0, "StartedAt": "2024-05-01T11:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z",
    })
    if health is not None:
        state["Health"] = health
    cfg: dict = {"Image": "shop/web:dev", "Labels": LABELS, **config}
    if check is not None and health is not None:
        cfg["Healthcheck"] = check
    return {"Id": "c" * 64, "Name": "/shop_web_1", "RestartCount": restarts, "State": state, "Config": cfg}


def exited(code: int, **extra: object) -> dict:
    return {"Status": "exited", "Running": False, "OOMKilled": False, "ExitCode": code,
            "StartedAt": "2024-05-01T11:00:00Z", "FinishedAt": "2024-05-01T11:30:00Z", **extra}


def health_of(inspect: dict, now: datetime = NOW) -> tuple[Health, str]:
    inst = instance_from_inspect(inspect, now=now)
    assert inst is not None
    assert (inst.health, inst.health_reason) == container_health(inspect, now=now)
    return inst.health, inst.health_reason


# ---- health and reason (pure) -------------------------------------------------------------------


def test_no_healthcheck_is_said_never_healthy() -> None:
    inst = instance_from_inspect(attrs(), now=NOW)
    assert inst is not None
    assert (inst.health, inst.health_reason, inst.probes) == (Health.NO_CHECK, "no healthcheck", ())
    # Disabled with ["NONE"]: dockerd keeps no State.Health either.
    assert health_of(attrs(check=None, Healthcheck={"Test": ["NONE"]})) == (Health.NO_CHECK, "no healthcheck")


def test_passing_healthcheck_is_healthy_with_its_runs_oldest_first() -> None:
    log = [run(1, 0, "ok\n"), run(2, 0, "ok\n"), run(3, 0, "")]
    inst = instance_from_inspect(attrs(health={"Status": "healthy", "FailingStreak": 0, "Log": log}), now=NOW)
    assert inst is not None
    assert (inst.health, inst.health_reason) == (Health.HEALTHY, "")
    assert inst.probes == (
        ProbeRun(datetime(2024, 5, 1, 11, 0, 1, 0, UTC), datetime(2024, 5, 1, 11, 0, 1, 50000, UTC), 0, "ok"),
        ProbeRun(datetime(2024, 5, 1, 11, 0, 2, 0, UTC), datetime(2024, 5, 1, 11, 0, 2, 50000, UTC), 0, "ok"),
        ProbeRun(datetime(2024, 5, 1, 11, 0, 3, 0, UTC), datetime(2024, 5, 1, 11, 0, 3, 50000, UTC), 0, ""),
    )
    assert all(p.passed for p in inst.probes)


def test_healthy_but_the_last_probe_failed_says_how_close_it_is() -> None:
    log = [run(1, 0), run(2, 1, "wget: server returned error: HTTP/1.0 500\n")]
    health = {"Status": "healthy", "FailingStreak": 1, "Log": log}
    assert health_of(attrs(health=health)) == (
        Health.HEALTHY, "last probe failed (1 of 3 allowed): exit 1 — wget: server returned error: HTTP/1.0 500"
    )


def test_starting_before_and_after_a_first_failed_probe() -> None:
    assert health_of(attrs(health={"Status": "starting", "FailingStreak": 0, "Log": []})) == (
        Health.STARTING, "waiting for the first probe"
    )
    health = {"Status": "starting", "FailingStreak": 0, "Log": [run(1, 1, "connection refused")]}
    assert health_of(attrs(health=health)) == (Health.STARTING, "last probe failed: exit 1 — connection refused")


def test_failing_healthcheck_names_the_streak_the_exit_code_and_the_first_output_line() -> None:
    log = [run(1, 0), run(2, 7, "\n\n  \x1b[31mconnection refused\x1b[0m  \nsecond line\n")]
    health = {"Status": "unhealthy", "FailingStreak": 3, "Log": log}
    assert health_of(attrs(health=health)) == (
        Health.UNHEALTHY, "healthcheck failed 3 times in a row: exit 7 — connection refused"
    )
    once = {"Status": "unhealthy", "FailingStreak": 1, "Log": [run(1, 1)]}
    assert health_of(attrs(health=once)) == (Health.UNHEALTHY, "healthcheck failed 1 time in a row: exit 1")


def test_timed_out_healthcheck_says_so() -> None:
    # What dockerd 20.10 records for a probe still running at its timeout.
    log = [run(1, -1, "Health check exceeded timeout (1s)"), run(3, -1, "Health check exceeded timeout (1s)")]
    health = {"Status": "unhealthy", "FailingStreak": 2, "Log": log}
    assert health_of(attrs(health=health)) == (Health.UNHEALTHY, "healthcheck timed out after 1s (2 times in a row)")
    starting = {"Status": "starting", "FailingStreak": 0, "Log": log[:1]}
    assert health_of(attrs(health=starting)) == (Health.STARTING, "last probe failed: timed out after 1s")


def test_a_probe_that_cannot_run_says_why() -> None:
    output = ('OCI runtime exec failed: exec failed: unable to start container process: exec: "curl": '
              "executable file not found in $PATH: unknown")
    health = {"Status": "unhealthy", "FailingStreak": 4, "Log": [run(1, -1, output)]}
    health_, reason = health_of(attrs(health=health))
    assert health_ == Health.UNHEALTHY
    assert reason.startswith("healthcheck failed 4 times in a row: could not run — OCI runtime exec failed")
    assert len(reason) < 200 and reason.endswith("…")  # the output is quoted, cut


def test_unknown_probe_status_is_unknown() -> None:
    assert health_of(attrs(health={"Status": "something-new", "Log": []})) == (
        Health.UNKNOWN, "unknown healthcheck status: something-new"
    )


def test_restarting_container_is_crash_looping_with_its_exit_code() -> None:
    state = {**exited(1), "Status": "restarting", "Running": True, "Restarting": True}
    assert health_of(attrs(state, restarts=4)) == (Health.CRASH_LOOPING, "restarting: exit 1, 4 restarts")
    oom = {**state, "ExitCode": 137, "OOMKilled": True}
    healthy = {"Status": "healthy", "FailingStreak": 0, "Log": [run(1, 0)]}
    # The restart loop outranks whatever the last probes said.
    assert health_of(attrs(oom, restarts=1, health=healthy)) == (
        Health.CRASH_LOOPING, "restarting: OOMKilled (exit 137), 1 restart"
    )


def test_running_after_many_restarts_is_crash_looping_until_a_minute_up() -> None:
    healthy = {"Status": "healthy", "FailingStreak": 0, "Log": [run(1, 0)]}
    started = datetime(2024, 5, 1, 11, 0, 0, tzinfo=UTC)
    soon = started + timedelta(seconds=5)
    looping = attrs(restarts=CRASH_LOOP_RESTARTS, health=healthy)
    assert health_of(looping, now=soon) == (
        Health.CRASH_LOOPING, f"{CRASH_LOOP_RESTARTS} restarts, the last one less than a minute ago"
    )
    inst = instance_from_inspect(looping, now=soon)
    assert inst is not None
    # No event marks the window's end: the adapter plans an inspect for that moment.
    assert crash_loop_ends(inst, soon) == (CRASH_LOOP_WINDOW - timedelta(seconds=5)).total_seconds()
    later = started + CRASH_LOOP_WINDOW + timedelta(seconds=1)
    assert health_of(looping, now=later) == (Health.HEALTHY, "")
    assert health_of(attrs(restarts=CRASH_LOOP_RESTARTS, health=None), now=later) == (Health.NO_CHECK, "no healthcheck")
    # One or two restarts are a container that died and came back, not a loop.
    fewer = attrs(restarts=CRASH_LOOP_RESTARTS - 1, health=healthy)
    assert health_of(fewer, now=soon) == (Health.HEALTHY, "")
    assert crash_loop_ends(instance_from_inspect(fewer, now=soon), soon) is None  # type: ignore[arg-type]


def test_stopped_containers_say_how_they_ended() -> None:
    assert health_of(attrs(exited(0))) == (Health.STOPPED, "")
    assert health_of(attrs(exited(3))) == (Health.STOPPED, "exited (3)")
    assert health_of(attrs(exited(137, OOMKilled=True))) == (Health.STOPPED, "OOMKilled (exit 137)")
    assert health_of(attrs(exited(1), restarts=5)) == (Health.STOPPED, "exited (1) after 5 restarts")
    assert health_of(attrs({**exited(2), "Status": "dead"})) == (Health.STOPPED, "dead (exited (2))")
    created = {"Status": "created", "Running": False, "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z"}
    assert health_of(attrs(created)) == (Health.STOPPED, "created, never started")
    # A stopped container's last probes are still worth showing (why it was stopped?).
    unhealthy = {"Status": "unhealthy", "FailingStreak": 9, "Log": [run(1, 1, "down")]}
    inst = instance_from_inspect(attrs(exited(137), health=unhealthy), now=NOW)
    assert inst is not None and inst.health == Health.STOPPED and inst.probes[-1].output == "down"


def test_paused_container_keeps_its_probe_health_and_says_paused() -> None:
    state = {"Status": "paused", "Running": True, "Paused": True, "ExitCode": 0, "StartedAt": "2024-05-01T11:00:00Z"}
    assert health_of(attrs(state)) == (Health.NO_CHECK, "paused; no healthcheck")
    healthy = {"Status": "healthy", "FailingStreak": 0, "Log": [run(1, 0)]}
    assert health_of(attrs(state, health=healthy)) == (Health.HEALTHY, "paused")


# ---- probe output (pure) --------------------------------------------------------------------------


def test_huge_probe_output_is_bounded() -> None:
    text = "abcdefghij\n" * 10_000  # 110 KB
    output = probe_output(text)
    assert len(output) == PROBE_OUTPUT_CHARS and output.endswith("…")
    assert output.startswith("abcdefghij ⏎ abcdefghij")
    one_line = probe_output("x" * 1_000_000)
    assert one_line == "x" * (PROBE_OUTPUT_CHARS - 1) + "…"


def test_binary_junk_escapes_and_control_characters_are_cleaned() -> None:
    junk = "\x7fELF\x02\x01\x00\x00\ufffd\ufffd@\x00\x1b[31mred\x1b[0m\x07\x1b]0;title\x07\x9b\x85"
    output = probe_output(junk + "\r\n" + "10%\r50%\r100%\n\tdone\ud800")
    assert output.isprintable() and "\x1b" not in output
    assert output.encode("utf-8")  # no lone surrogate left: it can be written anywhere
    assert "red" in output and "100%" in output and "50%" not in output  # a progress bar's last state
    assert output.endswith("done?")
    assert probe_output(None) == "" and probe_output("\n\n \n") == ""
    assert clean_text("plain") == "plain" and clean_text("a\x00b\nc") == "abc"


def test_probe_runs_keep_the_last_five_and_survive_odd_entries() -> None:
    log = [run(i, i % 2, f"run {i}") for i in range(8)] + ["not a run", {"ExitCode": "x"}]
    probes = probe_runs({"Status": "unhealthy", "Log": log})
    assert [p.output for p in probes] == ["run 4", "run 5", "run 6", "run 7", ""]
    assert probes[-1] == ProbeRun(None, None, -1, "")
    assert probe_runs(None) == () and probe_runs({"Status": "starting"}) == ()


# ---- which exec events are probes (pure) ----------------------------------------------------------


def exec_ev(verb: str, container: str, exec_id: str, command: str = "", **attributes: str) -> dict:
    action = f"{verb}: {command}" if verb != "exec_die" else verb
    attrs_ = {**LABELS, "name": "shop_web_1", "execID": exec_id, **attributes}
    return {"Type": "container", "Action": action, "status": action, "id": container,
            "Actor": {"ID": container, "Attributes": attrs_}}


def test_probe_command_is_spelled_as_dockerd_names_it_in_exec_create() -> None:
    starting = {"Status": "starting", "Log": []}
    assert probe_command(attrs(health=starting, check={"Test": ["CMD", "true"]})) == "true "
    assert probe_command(attrs(health=starting, check={"Test": ["CMD", "test", "-f", "/tmp/ok"]})) == "test -f /tmp/ok"
    assert probe_command(attrs(health=starting)) == "/bin/sh -c wget -q -O- http://127.0.0.1:8080/health"
    shell = attrs(health=starting, check={"Test": ["CMD-SHELL", "x"]}, Shell=["/bin/bash", "-ec"])
    assert probe_command(shell) == "/bin/bash -ec x"
    assert probe_command(attrs()) is None  # no healthcheck
    assert probe_command(attrs(health=starting, check={"Test": ["NONE"]})) is None


def test_exec_event_reads_create_and_die_only() -> None:
    assert exec_event(exec_ev("exec_create", "c1", "e1", "true ")) == ("exec_create", "c1", "e1", "true ")
    assert exec_event(exec_ev("exec_die", "c1", "e1", exitCode="0")) == ("exec_die", "c1", "e1", "")
    assert exec_event(exec_ev("exec_start", "c1", "e1", "true ")) is None
    assert exec_event({**exec_ev("exec_die", "c1", "e1"), "Actor": {"ID": "c1", "Attributes": {"execID": "e1"}}}) is None
    assert exec_event(exec_ev("exec_die", "c1", "e1", **{"com.docker.compose.oneoff": "True"})) is None


def test_probe_watch_asks_for_one_inspect_per_probe_and_none_for_other_execs() -> None:
    watch = ProbeWatch()
    probed = attrs(health={"Status": "healthy", "Log": [run(1, 0)]}, check={"Test": ["CMD", "true"]})
    watch.inspected("c1", probed)
    watch.inspected("c2", attrs())  # no healthcheck
    # A probe: create and start say nothing, its end is one inspect.
    assert watch.on_exec(exec_ev("exec_create", "c1", "p1", "true ")) is None
    assert watch.on_exec(exec_ev("exec_die", "c1", "p1", exitCode="0")) == "c1"
    # `docker exec` into either container: no inspect.
    assert watch.on_exec(exec_ev("exec_create", "c1", "u1", "sh")) is None
    assert watch.on_exec(exec_ev("exec_die", "c1", "u1", exitCode="0")) is None
    assert watch.on_exec(exec_ev("exec_create", "c2", "u2", "true ")) is None
    assert watch.on_exec(exec_ev("exec_die", "c2", "u2", exitCode="0")) is None
    # A probe that could not start never dies: the next probe's creation marks its end.
    assert watch.on_exec(exec_ev("exec_create", "c1", "p2", "true ")) is None
    assert watch.on_exec(exec_ev("exec_create", "c1", "p3", "true ")) == "c1"
    # A container not inspected yet (just created): its execs count as probes.
    assert watch.on_exec(exec_ev("exec_create", "c3", "p4", "anything")) is None
    assert watch.on_exec(exec_ev("exec_die", "c3", "p4", exitCode="1")) == "c3"
    # An exec created before the stream began: a probe if the container has a check.
    assert watch.on_exec(exec_ev("exec_die", "c1", "old", exitCode="0")) == "c1"
    assert watch.on_exec(exec_ev("exec_die", "c2", "old", exitCode="0")) is None


def test_probe_watch_asks_again_once_when_the_result_was_not_written_yet() -> None:
    watch = ProbeWatch()
    first = attrs(health={"Status": "healthy", "Log": [run(1, 0)]}, check={"Test": ["CMD", "true"]})
    second = attrs(health={"Status": "healthy", "Log": [run(1, 0), run(2, 0)]}, check={"Test": ["CMD", "true"]})
    assert watch.inspected("c1", first) is False
    watch.on_exec(exec_ev("exec_create", "c1", "p1", "true "))
    watch.on_exec(exec_ev("exec_die", "c1", "p1"))
    assert watch.inspected("c1", first) is True  # asked by the probe's end, yet nothing new
    assert watch.inspected("c1", first) is False  # the recheck: not asked by a probe, no more
    watch.on_exec(exec_ev("exec_create", "c1", "p2", "true "))
    watch.on_exec(exec_ev("exec_die", "c1", "p2"))
    assert watch.inspected("c1", second) is False  # the new run is there
    assert watch.inspected("c1", None) is False  # gone: forgotten
    assert watch.on_exec(exec_ev("exec_die", "c1", "p3")) == "c1"  # unknown again: counted as a probe


def test_probe_watch_forgets_execs_that_never_end() -> None:
    watch = ProbeWatch()
    watch.inspected("c2", attrs())
    for n in range(ProbeWatch.MAX_EXECS * 3):
        watch.on_exec(exec_ev("exec_create", "c2", f"shell{n}", "sh"))
    assert len(watch._execs) == ProbeWatch.MAX_EXECS


# ---- the real engine ------------------------------------------------------------------------------


def check(test: list[str], *, timeout: str = "2s", retries: int = 2) -> dict:
    return {"test": test, "interval": "1s", "timeout": timeout, "retries": retries}


def docker_cli(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE):  # noqa: ANN201
    return await hubs.until(condition, what, timeout)
class CountingAdapter(ComposeAdapter):
    """The real adapter; counts the instances it yields per container (one per inspect)."""

    def __init__(self) -> None:
        super().__init__(reconnect_min=0.05, reconnect_max=0.3)
        self.yielded: Counter[str] = Counter()
        self.synced = asyncio.Event()

    async def stream(self) -> AsyncIterator[AdapterEvent]:
        async for event in super().stream():
            if isinstance(event, InstanceChanged):
                self.yielded[event.instance.id] += 1
            elif isinstance(event, Snapshot):
                self.synced.set()
            yield event


class Watched:
    """A Hub running the adapter, and every version of each instance the store took."""

    def __init__(self, hub: Hub, adapter: CountingAdapter) -> None:
        self.hub = hub
        self.adapter = adapter
        self.versions: dict[str, list[Instance]] = {}
        hub.store.subscribe(self._record)

    def _record(self, change: Change) -> None:
        for inst in change.instances.values():
            self.versions.setdefault(inst.id, []).append(inst)

    def instance(self, container_id: str) -> Instance | None:
        return self.hub.store.instances.get(f"{Source.COMPOSE}/{container_id}")

    def healths(self, container_id: str) -> list[Health]:
        """The health states the container went through, repeats folded."""
        seen: list[Health] = []
        for inst in self.versions.get(container_id, []):
            if not seen or seen[-1] != inst.health:
                seen.append(inst.health)
        return seen

    async def wait(self, container_id: str, condition: Callable[[Instance], object], what: str) -> Instance:
        await until(lambda: (i := self.instance(container_id)) is not None and condition(i), what)
        inst = self.instance(container_id)
        assert inst is not None
        return inst


@contextlib.asynccontextmanager
async def watching() -> AsyncIterator[Watched]:
    adapter = CountingAdapter()
    hub = Hub([adapter])
    watched = Watched(hub, adapter)
    task = asyncio.create_task(hub.run())
    try:
        await asyncio.wait_for(adapter.synced.wait(), DEADLINE)
        yield watched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def engine_probe_ends(docker_client, container_id: str) -> list[datetime]:
    log = docker_client.api.inspect_container(container_id)["State"]["Health"]["Log"]
    return [probe.ended for probe in probe_runs({"Log": log})]


@pytest.mark.docker
async def test_passing_healthcheck_is_healthy_with_passing_probes(docker_client, compose_project) -> None:
    project = compose_project({"api": sleeper_service(healthcheck=check(["CMD", "true"]))})
    [api] = project.container_ids(docker_client, "api")
    async with watching() as w:
        inst = await w.wait(api, lambda i: i.health == Health.HEALTHY and len(i.probes) >= 2, "healthy, 2 probes")
    assert inst.health_reason == ""
    assert all(p.exit_code == 0 and p.output == "" for p in inst.probes)
    assert all(p.started and p.ended and p.started <= p.ended for p in inst.probes)
    assert [p.started for p in inst.probes] == sorted(p.started for p in inst.probes)  # type: ignore[type-var]
    workload = w.hub.store.workloads[WorkloadKey(Source.COMPOSE, project.name, "api").id]
    assert workload.health == Health.HEALTHY


@pytest.mark.docker
async def test_failing_healthcheck_is_unhealthy_with_exit_code_and_output(docker_client, compose_project) -> None:
    probe = check(["CMD-SHELL", "echo 'db: connection refused'; echo detail; exit 3"])
    project = compose_project({"api": sleeper_service(healthcheck=probe)})
    [api] = project.container_ids(docker_client, "api")
    async with watching() as w:
        inst = await w.wait(api, lambda i: i.health == Health.UNHEALTHY, "unhealthy")
        workload = w.hub.store.workloads[WorkloadKey(Source.COMPOSE, project.name, "api").id]
    assert inst.state == RunState.RUNNING
    assert inst.health_reason.startswith("healthcheck failed ")
    assert inst.health_reason.endswith(" times in a row: exit 3 — db: connection refused")
    assert inst.probes and all(p.exit_code == 3 for p in inst.probes)
    assert inst.probes[-1].output == "db: connection refused ⏎ detail"
    assert (workload.health, workload.health_reason) == (Health.UNHEALTHY, inst.health_reason)


@pytest.mark.docker
async def test_healthcheck_flips_healthy_unhealthy_healthy(docker_client, compose_project) -> None:
    probe = check(["CMD-SHELL", "cat /tmp/ok 2>/dev/null || { echo 'no /tmp/ok'; exit 1; }"], retries=2)
    project = compose_project({"api": sleeper_service(healthcheck=probe)})
    [api] = project.container_ids(docker_client, "api")
    async with watching() as w:
        await asyncio.to_thread(docker_cli, "exec", api, "sh", "-c", "echo fine > /tmp/ok")
        healthy = await w.wait(api, lambda i: i.health == Health.HEALTHY, "healthy")
        assert healthy.probes[-1].exit_code == 0 and healthy.probes[-1].output == "fine"

        await asyncio.to_thread(docker_cli, "exec", api, "rm", "/tmp/ok")
        sick = await w.wait(api, lambda i: i.health == Health.UNHEALTHY, "unhealthy")
        assert sick.health_reason == "healthcheck failed 2 times in a row: exit 1 — no /tmp/ok"
        assert [p.exit_code for p in sick.probes][-2:] == [1, 1]

        await asyncio.to_thread(docker_cli, "exec", api, "sh", "-c", "echo back > /tmp/ok")
        again = await w.wait(api, lambda i: i.health == Health.HEALTHY, "healthy again")
        assert again.health_reason == "" and again.probes[-1].output == "back"
    flips = w.healths(api)
    assert flips[flips.index(Health.HEALTHY):] == [Health.HEALTHY, Health.UNHEALTHY, Health.HEALTHY]


@pytest.mark.docker
async def test_healthcheck_slower_than_its_timeout_is_said_timed_out(docker_client, compose_project) -> None:
    project = compose_project({"api": sleeper_service(healthcheck=check(["CMD", "sleep", "5"], timeout="1s"))})
    [api] = project.container_ids(docker_client, "api")
    async with watching() as w:
        inst = await w.wait(api, lambda i: i.health == Health.UNHEALTHY, "unhealthy")
    assert inst.health_reason.startswith("healthcheck timed out after 1s (")
    assert inst.probes and all(p.exit_code == -1 for p in inst.probes)
    assert inst.probes[-1].output == "Health check exceeded timeout (1s)"
    # dockerd stops waiting at the timeout: a run lasts about a second, not five.
    last = inst.probes[-1]
    assert last.started and last.ended and (last.ended - last.started) < timedelta(seconds=4)


@pytest.mark.docker
async def test_huge_and_binary_probe_output_is_bounded_clean_text(docker_client, compose_project) -> None:
    huge = check(["CMD-SHELL", "yes abcdefghij | head -c 100000; exit 1"])
    junk = check(["CMD-SHELL", r"head -c 3000 /bin/busybox; printf '\033[31mred\033[0m\r\n'; exit 4"])
    project = compose_project({"huge": sleeper_service(healthcheck=huge), "junk": sleeper_service(healthcheck=junk)})
    [huge_id] = project.container_ids(docker_client, "huge")
    [junk_id] = project.container_ids(docker_client, "junk")
    async with watching() as w:
        big = await w.wait(huge_id, lambda i: i.health == Health.UNHEALTHY, "huge unhealthy")
        bin_ = await w.wait(junk_id, lambda i: i.health == Health.UNHEALTHY, "junk unhealthy")
    assert big.health_reason.endswith("in a row: exit 1 — abcdefghij")
    for probe in big.probes:
        assert len(probe.output) == PROBE_OUTPUT_CHARS and probe.output.endswith("…")
        assert probe.output.startswith("abcdefghij ⏎ abcdefghij")
    assert " exit 4 — " in bin_.health_reason and bin_.health_reason.isprintable()
    for probe in bin_.probes:
        assert probe.exit_code == 4
        assert 0 < len(probe.output) <= PROBE_OUTPUT_CHARS
        assert probe.output.isprintable() and "\x1b" not in probe.output
        probe.output.encode("utf-8")  # writable as is


@pytest.mark.docker
async def test_container_without_healthcheck_says_no_healthcheck(docker_client, compose_project) -> None:
    project = compose_project({"worker": sleeper_service()})
    [worker] = project.container_ids(docker_client, "worker")
    async with watching() as w:
        inst = await w.wait(worker, lambda i: i.state == RunState.RUNNING, "running")
        workload = w.hub.store.workloads[WorkloadKey(Source.COMPOSE, project.name, "worker").id]
    assert (inst.health, inst.health_reason, inst.probes) == (Health.NO_CHECK, "no healthcheck", ())
    assert workload.health == Health.NO_CHECK


@pytest.mark.docker
async def test_crash_looping_container_is_said_crash_looping(docker_client, compose_project) -> None:
    crashing = {"image": TEST_IMAGE, "command": ["sh", "-c", "echo boom; exit 1"], "restart": "always"}
    project = compose_project({"crash": crashing})
    [crash] = project.container_ids(docker_client, "crash")
    workload_id = WorkloadKey(Source.COMPOSE, project.name, "crash").id

    def looping() -> list[Instance]:
        return [v for v in w.versions.get(crash, []) if v.health == Health.CRASH_LOOPING]

    async with watching() as w:
        # Caught between two runs (dockerd's back-off): "restarting", with the exit code.
        await until(lambda: any(v.health_reason.startswith("restarting: exit 1, ") for v in looping()),
                    "crash-looping while restarting")
        assert w.hub.store.workloads[workload_id].health == Health.CRASH_LOOPING
    for inst in looping():
        assert inst.state in (RunState.RESTARTING, RunState.RUNNING)
        if inst.state == RunState.RESTARTING:
            assert inst.health_reason == f"restarting: exit 1, {inst.restarts} restart{'s' * (inst.restarts != 1)}"
        else:  # up for a moment between two crashes, after enough restarts
            assert inst.restarts >= CRASH_LOOP_RESTARTS and "restarts, the last one" in inst.health_reason


@pytest.mark.docker
async def test_probes_arrive_live_through_events_one_inspect_each(docker_client, compose_project) -> None:
    """Each probe run reaches the store by itself (its exec_die), at one inspect per run;
    a container without a healthcheck is never inspected again, `docker exec` costs nothing."""
    project = compose_project({"api": sleeper_service(healthcheck=check(["CMD", "true"])), "idle": sleeper_service()})
    [api] = project.container_ids(docker_client, "api")
    [idle] = project.container_ids(docker_client, "idle")
    async with watching() as w:
        await w.wait(api, lambda i: i.health == Health.HEALTHY and len(i.probes) >= 2, "healthy, two probes")
        first = len(w.versions[api])
        baseline = w.versions[api][-1].probes[-1].ended
        assert baseline is not None
        yielded_api, yielded_idle = w.adapter.yielded[api], w.adapter.yielded[idle]

        def newest_ends() -> list[datetime]:
            """The newest probe run of each version the store took since the baseline."""
            ends: list[datetime] = []
            for inst in w.versions[api][first:]:
                ended = inst.probes[-1].ended
                assert ended is not None
                if ended != baseline and (not ends or ends[-1] != ended):
                    ends.append(ended)
            return ends

        # Runs of a command that is not the probe's, in both containers, meanwhile. (An
        # exec of the probe's very command line cannot be told from a probe: it would cost
        # an inspect, and a recheck.)
        for target in (api, idle, api):
            await asyncio.to_thread(docker_cli, "exec", target, "sh", "-c", "true")
        await until(lambda: len(newest_ends()) >= 4, "four more probe runs in the store")
        runs = newest_ends()
        inspects_api = w.adapter.yielded[api] - yielded_api
        inspects_idle = w.adapter.yielded[idle] - yielded_idle
        engine = engine_probe_ends(docker_client, api)  # the last five, as the engine keeps them
    # One inspect per probe run (slack: a recheck, a run ending while the count is read).
    assert len(runs) <= inspects_api <= len(runs) + 2, f"{inspects_api} inspects for {len(runs)} probe runs"
    assert inspects_idle == 0, "a container without a healthcheck was inspected again: polling?"
    # Every run the engine recorded was the store's newest in its turn: none skipped, in order.
    assert runs == sorted(runs)
    assert [e for e in engine if baseline < e <= runs[-1]] == [e for e in runs if e >= engine[0]]
