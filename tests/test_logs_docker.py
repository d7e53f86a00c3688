"""Logs of Compose containers, end to end: real containers on the real Docker engine
(the busybox test image) writing known sequences, the real `ComposeAdapter` reading
them through the docker SDK, a real `Hub` filling the store from the events stream,
and the `LogFollower` on top. Conditions are waited on with deadlines, never sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from backends.compose import ComposeAdapter, _Dechunker, _Demuxer, log_end_of
from backends.hub import Hub
from backends.logfollow import LogFollower
from backends.logs import LogEnded, LogKind, LogOptions, LogTarget
from backends.logtext import MAX_LINE_CHARS, LogBuffer
from backends.model import Instance, RunState, Source, WorkloadKey
from tests.support import hubs
from tests.support.dockerenv import TEST_IMAGE
from tests.support.logs import FollowedRun

DEADLINE = 30.0
LOG_THREAD = "ferryman-docker-logs"


# ---- pure: why a followed container's log ended ------------------------------------------


def test_log_end_of_an_inspect():
    started = "2024-05-01T10:00:00.1Z"
    assert log_end_of(None, started) == LogEnded("container removed", final=True)
    running = {"State": {"Running": True, "Restarting": False, "StartedAt": started}}
    assert log_end_of(running, started) == LogEnded("stream ended by the engine")
    again = {"State": {"Running": True, "StartedAt": "2024-05-01T10:00:09Z"}}
    assert log_end_of(again, started) == LogEnded("container restarted")
    oom = {"State": {"Running": False, "Status": "exited", "ExitCode": 137, "OOMKilled": True}}
    assert log_end_of(oom, started) == LogEnded("container exited (137, OOMKilled)")
    backoff = {"State": {"Running": True, "Restarting": True, "Status": "restarting", "ExitCode": 3}}
    assert log_end_of(backoff, started) == LogEnded("container exited (3)")
    assert log_end_of({"State": {"Status": "created"}}, None) == LogEnded("container not started")


# ---- pure: the engine's bytes, split anywhere --------------------------------------------


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


STAMP = b"2024-05-01T10:00:00.000000001Z "
BODY = chunked(
    frame(1, STAMP + b"one\n"),
    frame(2, STAMP + b"two\r\n") + frame(1, STAMP + b"three\nfour\n"),  # two frames in a chunk, two lines in a frame
    frame(1, STAMP + b"long " + b"x" * 20),  # a long line in two entries, the second with a stamp of its own
    frame(1, STAMP + b"tail\n"),
    frame(1, STAMP + b"\n"),
    frame(2, STAMP + b"last, no newline"),
)
EXPECTED = [("stdout", "one"), ("stderr", "two"), ("stdout", "three"), ("stdout", "four"),
            ("stdout", "long " + "x" * 20 + "tail"), ("stdout", ""), ("stderr", "last, no newline")]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 64, len(BODY)])
def test_chunks_and_frames_split_anywhere_give_the_same_lines(size: int):
    dechunker, demuxer = _Dechunker(), _Demuxer("web")
    lines = []
    for start in range(0, len(BODY), size):
        lines += demuxer.feed(dechunker.feed(BODY[start : start + size]))
    assert dechunker.done
    lines += demuxer.flush()
    assert [(line.stream, line.text) for line in lines] == EXPECTED
    assert {line.source for line in lines} == {"web"}
    # "four" came without a stamp of its own (the engine never sends that; the split does).
    assert [line.time is not None for line in lines] == [True, True, True, False, True, True, True]
    assert dechunker.feed(b"anything after the last chunk") == b""


def test_chunk_sizes_with_extensions_and_a_cut_size_line():
    dechunker = _Dechunker()
    assert dechunker.feed(b"5;name=value\r\nhel") == b"hel"
    assert dechunker.feed(b"lo\r\n1") == b"lo"
    assert dechunker.feed(b"0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n") == b"x" * 16
    assert dechunker.done


# ---- helpers ---------------------------------------------------------------------------------


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    await hubs.until(condition, what, timeout)


def running_hub():  # noqa: ANN201
    return hubs.running_hub(Hub([ComposeAdapter(reconnect_min=0.05, reconnect_max=0.3)]))


def shell(script: str) -> list[str]:
    return ["sh", "-c", script.replace("$", "$$")]  # "$$": Compose interpolates "$"


def service(script: str, **extra) -> dict:
    """A service whose container runs `script` then sleeps as PID 1 (so that
    `docker exec … > /proc/1/fd/1` writes to its log, and a stop needs a kill: 137)."""
    return {"image": TEST_IMAGE, "command": shell(f"{script}\nexec sleep 100000"), "stop_grace_period": "1s", **extra}


def numbered(prefix: str, count: int) -> str:
    return f'i=1; while [ $i -le {count} ]; do echo "{prefix} $i"; i=$((i+1)); done'


class Following(FollowedRun):
    """A follower of one workload of a project, running in a task."""

    def __init__(self, hub: Hub, project: str, name: str = "web", options: LogOptions | None = None,
                 **kwargs) -> None:
        workload = WorkloadKey(Source.COMPOSE, project, name).id
        self.hub = hub
        self.workload = workload
        kwargs.setdefault("settle", 0.5)
        kwargs.setdefault("reconnect_min", 0.05)
        kwargs.setdefault("window", timedelta(milliseconds=500))
        super().__init__(LogFollower(
            hub, lambda store: [LogTarget(i) for i in store.instances_of(workload)],
            options or LogOptions(tail=None), **kwargs,
        ))

    def instances(self) -> list[Instance]:
        return self.hub.store.instances_of(self.workload)


async def started(hub: Hub, project: str, replicas: int = 1, name: str = "web") -> list[Instance]:
    workload = WorkloadKey(Source.COMPOSE, project, name).id
    await until(lambda: sum(i.state == RunState.RUNNING for i in hub.store.instances_of(workload)) == replicas,
                f"{replicas} running container(s) of {name}")
    return hub.store.instances_of(workload)


async def write(docker_client, container_id: str, text: str) -> None:
    """Write to the container's log from outside, through its PID 1's stdout."""
    await asyncio.to_thread(docker_client.api.exec_start, docker_client.api.exec_create(
        container_id, ["sh", "-c", f"printf '{text}' > /proc/1/fd/1"]))


def log_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LOG_THREAD]


def open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


# ---- the engine ------------------------------------------------------------------------------

@pytest.mark.docker
async def test_numbered_lines_in_order_then_followed(compose_project, docker_client):
    project = compose_project({"web": service(numbered("line", 300))})
    async with running_hub() as hub:
        (web,) = await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 300, "the 300 numbered lines")
        await write(docker_client, web.id, "after 1\\nafter 2\\n")
        await until(lambda: len(run.texts()) == 302, "the followed lines")
        lines = [line for line in run.lines() if line.kind is LogKind.LINE]
        assert [line.text for line in lines] == [f"line {i}" for i in range(1, 301)] + ["after 1", "after 2"]
        assert all(line.source == web.name and line.time is not None for line in lines)
        assert [line.time for line in lines] == sorted(line.time for line in lines)
        assert run.markers() == []
        await run.close()
        assert log_threads() == []


@pytest.mark.docker
async def test_stdout_and_stderr_are_told_apart(compose_project):
    project = compose_project({"web": service("echo out 1; echo err 1 >&2; echo out 2; echo err 2 >&2")})
    async with running_hub() as hub:
        await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 4, "the four lines")
        # The engine reads the two pipes apart: their relative order is its own.
        lines = run.lines()
        assert [line.text for line in lines if line.stream == "stdout"] == ["out 1", "out 2"]
        assert [line.text for line in lines if line.stream == "stderr"] == ["err 1", "err 2"]
        await run.close()


@pytest.mark.docker
async def test_a_tty_container_is_read_whole_lines(compose_project, docker_client):
    project = compose_project({"web": service(numbered("tty", 100), tty=True)})
    async with running_hub() as hub:
        (web,) = await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 100, "the hundred lines")
        await write(docker_client, web.id, "progress 10%%\\rprogress 100%%\\n")
        await until(lambda: len(run.texts()) == 101, "the followed line")
        assert run.texts() == [f"tty {i}" for i in range(1, 101)] + ["progress 100%"]
        await run.close()
        assert log_threads() == []


@pytest.mark.docker
async def test_two_replicas_bursting_are_interleaved_in_time_order(compose_project):
    project = compose_project({"web": service(numbered("$(hostname)", 2000))}, up=False)
    project.cli("up", "-d", "--scale", "web=2")
    async with running_hub() as hub:
        replicas = await started(hub, project.name, replicas=2)
        run = Following(hub, project.name, window=timedelta(seconds=1))
        await until(lambda: len(run.texts()) == 4000, "both bursts")
        lines = run.lines()
        assert run.markers() == []
        for replica in replicas:
            own = [line.text.split()[1] for line in lines if line.source == replica.name]
            assert own == [str(i) for i in range(1, 2001)], f"{replica.name}: lost or reordered lines"
        assert [line.time for line in lines] == sorted(line.time for line in lines)
        await run.close()
        assert log_threads() == []


@pytest.mark.docker
async def test_docker_restart_marks_the_exit_and_continues(compose_project, docker_client):
    project = compose_project({"web": service(numbered("boot", 3))})
    async with running_hub() as hub:
        (web,) = await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 3, "the first run's lines")
        await asyncio.to_thread(docker_client.api.restart, web.id, timeout=1)
        await until(lambda: len(run.texts()) == 6, "the second run's lines")
        await write(docker_client, web.id, "later\\n")
        await until(lambda: len(run.texts()) == 7, "the second run followed")
        texts = [line.text for line in run.lines()]
        markers = run.markers()
        assert texts[:3] == ["boot 1", "boot 2", "boot 3"] and texts[-4:] == ["boot 1", "boot 2", "boot 3", "later"]
        # The exit is said with its code, once; then the restart.
        assert markers in (
            [f"— {web.name} exited (137) —", f"— {web.name} restarted —"],
            [f"— {web.name} restarted (exit 137) —"],
        ), markers
        assert texts[3:-4] == markers
        await run.close()
        assert log_threads() == []


@pytest.mark.docker
async def test_restart_policy_after_a_failure(compose_project):
    script = 'echo "started"; sleep 0.3; echo "failing"; exit 3'
    project = compose_project({"web": {"image": TEST_IMAGE, "command": shell(script),
                                        "restart": "on-failure:1"}})
    async with running_hub() as hub:
        workload = WorkloadKey(Source.COMPOSE, project.name, "web").id
        await until(lambda: hub.store.instances_of(workload), "the container in the store")
        run = Following(hub, project.name)
        await until(lambda: run.texts().count("failing") == 2, "two runs (the restart by policy)")
        await until(lambda: len(run.markers()) >= 2, "the exit after the last run")
        markers = run.markers()
        name = run.instances()[0].name
        assert markers[0] in (f"— {name} exited (3) —", f"— {name} restarted (exit 3) —"), markers
        assert f"— {name} exited (3) —" == markers[-1]  # no restart is left: it stays down
        assert run.texts() == ["started", "failing"] * 2
        await run.close()
        assert log_threads() == []


@pytest.mark.docker
async def test_binary_junk_and_control_sequences_become_clean_text(compose_project):
    junk = r"printf 'ok\n\377\376 bad\n\033[31mred\033[0m\n50%%\r100%%\r\nbell\007 tab\there\nlast'"
    # It exits: the engine keeps a last line without newline until the output closes.
    project = compose_project({"web": {"image": TEST_IMAGE, "command": shell(f"sleep 0.5; {junk}")}})
    async with running_hub() as hub:
        workload = WorkloadKey(Source.COMPOSE, project.name, "web").id
        await until(lambda: hub.store.instances_of(workload), "the container in the store")
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 6 and run.markers(), "the six lines and the exit")
        assert run.texts() == ["ok", "\ufffd\ufffd bad", "red", "100%", "bell tab        here", "last"]
        assert run.markers() == [f"— {run.instances()[0].name} exited (0) —"]
        await run.close()


@pytest.mark.docker
async def test_a_container_that_never_logs_then_is_killed(compose_project, docker_client):
    project = compose_project({"web": service("")})
    async with running_hub() as hub:
        (web,) = await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(log_threads()) == 1, "the stream's reader")
        assert run.lines() == []
        await asyncio.to_thread(docker_client.api.kill, web.id)
        await until(lambda: run.markers(), "the exit marker")
        assert run.markers() == [f"— {web.name} exited (137) —"]
        assert run.texts() == []
        await until(lambda: log_threads() == [], "the reader ended with the stream")
        await run.close()


@pytest.mark.docker
async def test_a_one_megabyte_line_is_cut_and_counted(compose_project):
    long = "s=a; for i in $(seq 20); do s=\"$s$s\"; done; echo \"$s\"; echo after"
    project = compose_project({"web": service(long)})
    async with running_hub() as hub:
        await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 2, "the long line and the next")
        big, after = [line for line in run.lines() if line.kind is LogKind.LINE]
        assert big.text == "a" * MAX_LINE_CHARS
        assert big.truncated == 2**20 - MAX_LINE_CHARS
        assert after.text == "after" and after.truncated == 0
        await run.close()


@pytest.mark.docker
async def test_memory_stays_bounded_when_a_container_writes_far_more(compose_project):
    project = compose_project({"web": service(numbered("flood", 20000))})
    async with running_hub() as hub:
        await started(hub, project.name)
        run = Following(hub, project.name, buffer=LogBuffer(max_lines=500))
        buffer = run.follower.buffer
        await until(lambda: buffer.end == 20000, "every line through the buffer")
        assert len(buffer) == 500 and buffer.dropped == 19500
        assert [line.text for line in buffer.lines(buffer.first, buffer.end)] == [
            f"flood {i}" for i in range(19501, 20001)
        ]
        await run.close()


@pytest.mark.docker
async def test_removed_container_ends_with_a_final_marker(compose_project, docker_client):
    project = compose_project({"web": service(numbered("line", 2))})
    async with running_hub() as hub:
        (web,) = await started(hub, project.name)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 2, "the lines")
        await asyncio.to_thread(docker_client.api.remove_container, web.id, force=True)
        await until(lambda: run.follower.followed == [] and run.markers(), "the stream let go")
        # Killed on its way out (said if the stream ended before the container went), then gone.
        *exited, removed = run.markers()
        assert removed in (f"— {web.name}: container removed —", f"— {web.name} removed —")
        assert exited in ([], [f"— {web.name} exited (137) —"], [f"— {web.name}: container exited (137) —"])
        await run.close()
        adapter = hub.adapters[Source.COMPOSE]
        got = [item async for item in adapter.logs(LogTarget(web), LogOptions())]
        assert got == [LogEnded("container removed", final=True)]


@pytest.mark.docker
async def test_close_shuts_every_stream_and_its_thread(compose_project):
    project = compose_project({"web": service(numbered("line", 5))}, up=False)
    project.cli("up", "-d", "--scale", "web=3")
    async with running_hub() as hub:
        await started(hub, project.name, replicas=3)
        run = Following(hub, project.name)
        await until(lambda: len(run.texts()) == 15, "every replica's lines")
        assert len(log_threads()) == 3
        during = open_sockets()
        await run.close()
        assert log_threads() == []  # each reader's read returned: its socket was shut
        assert during - open_sockets() >= 3  # and closed: no connection is left open
        assert run.follower.followed == []
        await run.close()  # idempotent


@pytest.mark.docker
async def test_not_following_reads_the_history_and_ends(compose_project):
    project = compose_project({"web": service(numbered("line", 50))})
    async with running_hub() as hub:
        await started(hub, project.name)
        run = Following(hub, project.name, options=LogOptions(tail=10, follow=False))
        await asyncio.wait_for(run.task, DEADLINE)
        assert run.texts() == [f"line {i}" for i in range(41, 51)]
        assert run.markers() == [] and log_threads() == []
