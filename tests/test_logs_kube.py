"""Logs of Kubernetes pods, end to end: the real `KubeAdapter` (kr8s over HTTP) against
the emulated API server's `pods/NAME/log`, a real `Hub` filling the store from the
watches, and the `LogFollower` on top. Nothing of kr8s or the adapter is patched."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from backends.hub import Hub
from backends.kube import KubeAdapter
from backends.logfollow import LogFollower
from backends.logs import LogEnded, LogKind, LogLine, LogOptions, LogTarget
from backends.logtext import LogBuffer
from backends.model import Source, WorkloadKey
from backends.store import Store
from tests.support import hubs
from tests.support.hubs import until
from tests.support.kube_emulator import KubeEmulator
from tests.support.logs import FollowedRun

NS = "default"
WEB = WorkloadKey(Source.K3S, NS, "web").id


def running_hub(kube: KubeEmulator):  # noqa: ANN201
    adapter = KubeAdapter(kubeconfig=str(kube.kubeconfig), reconnect_min=0.05, reconnect_max=0.3, api_timeout=3.0)
    return hubs.running_hub(Hub([adapter]))


def pods_of_web(store: Store) -> list[LogTarget]:
    return [LogTarget(inst) for inst in store.instances_of(WEB)]


def follow(hub: Hub, select=pods_of_web, options: LogOptions | None = None, **kwargs) -> FollowedRun:
    kwargs.setdefault("settle", 0.3)
    kwargs.setdefault("reconnect_min", 0.05)
    kwargs.setdefault("window", timedelta(milliseconds=300))
    return FollowedRun(LogFollower(hub, select, options or LogOptions(tail=None), previous_supported=True, **kwargs))


async def synced(hub: Hub, pods: int) -> None:
    await until(lambda: len(hub.store.instances_of(WEB)) == pods, f"{pods} pods of web in the store")


async def no_followers(kube: KubeEmulator) -> None:
    await until(lambda: kube.log_follower_count == 0, "no log stream left open on the server", timeout=5)


def numbered(prefix: str, first: int, last: int) -> str:
    return "".join(f"{prefix} {i}\n" for i in range(first, last + 1))


async def test_history_with_timestamps_then_followed_lines(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, numbered("line", 1, 3))
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub)
        await until(lambda: len(run.texts()) == 3, "the history")
        await kube.wait_for_log_followers(1)
        kube.append_pod_log(NS, "web-a-1", None, "line 4\n\x1b[31mline 5\x1b[0m\n")
        await until(lambda: len(run.texts()) == 5, "the followed lines")
        lines = [line for line in run.lines() if line.kind is LogKind.LINE]
        assert [line.text for line in lines] == [f"line {i}" for i in range(1, 6)]
        assert all(line.source == "web-a-1" and line.time is not None for line in lines)
        assert [line.time for line in lines] == sorted(line.time for line in lines)
        assert run.markers() == [] and run.calls > 0
        await run.close()
        await no_followers(kube)


async def test_tail_and_since_options_reach_the_server(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, numbered("line", 1, 50))
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub, options=LogOptions(tail=5, follow=False))
        await asyncio.wait_for(run.task, 10)  # not following: run ends with the history
        assert run.texts() == [f"line {i}" for i in range(46, 51)]
        run = follow(hub, options=LogOptions(tail=None, since=timedelta(minutes=1), follow=False))
        await asyncio.wait_for(run.task, 10)
        assert len(run.texts()) == 50
        request = kube.requests_to(r"/pods/web-a-1/log")[-1]
        assert "sinceSeconds=60" in str(request.url) and "timestamps=true" in str(request.url)
        await no_followers(kube)


async def test_cut_stream_reconnects_with_a_marker_and_nothing_lost_or_doubled(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, numbered("line", 1, 5))
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub)
        await until(lambda: len(run.texts()) == 5, "the history")
        await kube.wait_for_log_followers(1)
        for cut in range(2):
            base = 5 + cut * 10
            assert kube.cut_logs() == 1
            # Written while no stream stands: the reconnect must bring them, once.
            kube.append_pod_log(NS, "web-a-1", None, numbered("line", base + 1, base + 5))
            await until(lambda base=base: len(run.texts()) == base + 5, "the lines written during the cut")
            await kube.wait_for_log_followers(1)
            kube.append_pod_log(NS, "web-a-1", None, numbered("line", base + 6, base + 10))
            await until(lambda base=base: len(run.texts()) == base + 10, "lines on the new stream")
        assert run.texts() == [f"line {i}" for i in range(1, 26)]
        markers = run.markers()
        assert len(markers) == 2
        assert all("web-a-1: stream cut (stream ended by the API server); reconnected" in m for m in markers)
        # Each marker stands right before the first line the new stream brought.
        texts = [line.text for line in run.lines()]
        assert texts.index(markers[0]) == texts.index("line 6") - 1
        await run.close()
        await no_followers(kube)


async def test_restart_with_other_options_starts_over(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, numbered("line", 1, 5))
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub)
        await until(lambda: len(run.texts()) == 5, "the history")
        await run.follower.restart(LogOptions(tail=2))
        assert len(run.follower.buffer) == 0
        await until(lambda: run.texts() == ["line 4", "line 5"], "the new tail")
        await kube.wait_for_log_followers(1)
        assert kube.log_follower_count == 1  # the first stream was closed
        kube.append_pod_log(NS, "web-a-1", None, "line 6\n")
        await until(lambda: run.texts() == ["line 4", "line 5", "line 6"], "the restarted stream followed")
        assert run.follower.options == LogOptions(tail=2)
        await run.close()
        await no_followers(kube)


async def test_deleted_pod_ends_with_a_final_marker(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, "hello\n")
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub)
        await until(lambda: run.texts() == ["hello"], "the history")
        await kube.wait_for_log_followers(1)
        kube.delete_object("pods", NS, "web-a-1")
        await until(lambda: run.markers(), "a marker")
        await no_followers(kube)
        marker = run.markers()[0]
        assert marker in ("— web-a-1: pod deleted —", "— web-a-1 removed —")
        await until(lambda: not run.follower.followed, "the stream let go")
        assert len(run.markers()) == 1
        await run.close()


async def test_replicas_are_interleaved_in_time_order(kube: KubeEmulator):
    kube.add_deployment(NS, "web", replicas=2)
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.add_pod(NS, "web-a-2", owner="web")
    for i in range(1, 4):  # history, alternating
        kube.append_pod_log(NS, "web-a-1", None, f"one {i}\n")
        kube.append_pod_log(NS, "web-a-2", None, f"two {i}\n")
    async with running_hub(kube) as hub:
        await synced(hub, 2)
        run = follow(hub)
        await until(lambda: len(run.texts()) == 6, "both histories")
        await kube.wait_for_log_followers(2)
        for i in range(4, 8):  # followed, alternating
            kube.append_pod_log(NS, "web-a-2", None, f"two {i}\n")
            kube.append_pod_log(NS, "web-a-1", None, f"one {i}\n")
        await until(lambda: len(run.texts()) == 14, "the followed lines")
        lines = [line for line in run.lines() if line.kind is LogKind.LINE]
        assert [line.text for line in lines[:6]] == ["one 1", "two 1", "one 2", "two 2", "one 3", "two 3"]
        assert [line.text for line in lines[6:8]] == ["two 4", "one 4"]
        assert [line.time for line in lines] == sorted(line.time for line in lines)
        assert {line.source for line in lines} == {"web-a-1", "web-a-2"}
        await run.close()
        await no_followers(kube)


async def test_a_new_replica_joins_with_a_marker_and_its_whole_log(kube: KubeEmulator):
    kube.add_deployment(NS, "web", replicas=1)
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, "first\n")
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        # A tail of 1 for the replicas already there; a new one is shown from its start.
        run = follow(hub, options=LogOptions(tail=1))
        await until(lambda: run.texts() == ["first"], "the first replica")
        kube.add_pod(NS, "web-a-2", owner="web")
        kube.set_pod_log(NS, "web-a-2", None, "boot 1\nboot 2\n")
        await until(lambda: len(run.texts()) == 3, "the new replica's lines")
        await kube.wait_for_log_followers(2)
        kube.append_pod_log(NS, "web-a-2", None, "boot 3\n")
        await until(lambda: len(run.texts()) == 4, "the new replica followed")
        texts = [line.text for line in run.lines()]
        assert texts == ["first", "— web-a-2 joined —", "boot 1", "boot 2", "boot 3"]
        await run.close()
        await no_followers(kube)


async def test_restart_shows_the_exit_then_continues_with_the_new_container(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, "run 1 line 1\nrun 1 line 2\n")
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub, settle=5.0)  # an exit must not be mistaken for a cut
        await until(lambda: len(run.texts()) == 2, "the first run")
        await kube.wait_for_log_followers(1)
        crashed = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2030-01-01T00:00:00Z"}}
        kube.set_pod_status(NS, "web-a-1", container_statuses=[{
            "name": "web", "ready": False, "restartCount": 1, "image": "busybox:1.36",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": crashed,
        }])
        kube.cut_logs()  # the container's exit ends its stream
        await until(lambda: run.markers(), "the exit marker")
        assert run.markers() == ["— web-a-1 exited (137, OOMKilled) —"]
        kube.set_pod_log(NS, "web-a-1", None, "run 2 line 1\n")
        kube.set_pod_status(NS, "web-a-1", container_statuses=[{
            "name": "web", "ready": True, "restartCount": 1, "image": "busybox:1.36",
            "state": {"running": {"startedAt": "2030-01-01T00:00:01Z"}}, "lastState": crashed,
        }])
        await until(lambda: len(run.texts()) == 3, "the new container's line")
        await kube.wait_for_log_followers(1)
        kube.append_pod_log(NS, "web-a-1", None, "run 2 line 2\n")
        await until(lambda: len(run.texts()) == 4, "the new container followed")
        assert [line.text for line in run.lines()] == [
            "run 1 line 1", "run 1 line 2", "— web-a-1 exited (137, OOMKilled) —", "— web-a-1 restarted —",
            "run 2 line 1", "run 2 line 2",
        ]
        await run.close()
        await no_followers(kube)


async def test_container_waiting_to_start_then_started(kube: KubeEmulator):
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web", phase="Pending", ready=False)
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        run = follow(hub)
        await until(lambda: run.markers(), "the waiting marker")
        assert "is waiting to start: ContainerCreating" in run.markers()[0]
        kube.set_pod_log(NS, "web-a-1", None, "up\n")
        kube.set_pod_status(NS, "web-a-1", phase="Running", ready=True)
        await until(lambda: run.texts() == ["up"], "the started container's line")
        assert run.markers()[1] == "— web-a-1 started —"
        await run.close()
        await no_followers(kube)


async def test_previous_container_log_and_its_absence(kube: KubeEmulator):
    kube.add_deployment(NS, "web", replicas=2)
    kube.add_pod(NS, "web-a-1", owner="web", restarts=1)
    kube.add_pod(NS, "web-a-2", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, "current\n")
    kube.set_pod_log(NS, "web-a-1", None, "crash 1\ncrash 2\n", previous=True)
    async with running_hub(kube) as hub:
        await synced(hub, 2)
        run = follow(hub, options=LogOptions(tail=None, previous=True))
        await asyncio.wait_for(run.task, 10)  # a previous log is complete: nothing to follow
        assert run.texts() == ["crash 1", "crash 2"]
        assert run.markers() == ['— web-a-2: previous terminated container "web" in pod "web-a-2" not found —']
        assert kube.log_follower_count == 0


async def test_adapter_stream_ends_say_why(kube: KubeEmulator):
    """The adapter alone: lines come in batches; a refused request and a vanished pod are
    `LogEnded`s."""
    kube.add_deployment(NS, "web")
    kube.add_pod(NS, "web-a-1", owner="web")
    kube.set_pod_log(NS, "web-a-1", None, "only\n")
    async with running_hub(kube) as hub:
        await synced(hub, 1)
        adapter = hub.adapters[Source.K3S]
        target = LogTarget(hub.store.instances_of(WEB)[0])
        got = [item async for item in adapter.logs(target, LogOptions(tail=None, follow=False))]
        # Lines come in batches (lists); the stream had one line.
        lines = [line for batch in got for line in batch]
        assert [type(i) for i in got] == [list] and [type(i) for i in lines] == [LogLine] and lines[0].text == "only"
        missing = LogTarget(target.instance, container="sidecar")
        got = [item async for item in adapter.logs(missing, LogOptions(follow=False))]
        assert got == [LogEnded("container sidecar is not valid for pod web-a-1")]
        kube.delete_object("pods", NS, "web-a-1")
        got = [item async for item in adapter.logs(target, LogOptions())]
        assert got == [LogEnded("pod deleted", final=True)]


async def test_close_ends_every_stream_and_a_small_buffer_stays_bounded(kube: KubeEmulator):
    kube.add_deployment(NS, "web", replicas=3)
    for n in range(1, 4):
        kube.add_pod(NS, f"web-a-{n}", owner="web")
        kube.set_pod_log(NS, f"web-a-{n}", None, numbered(f"pod{n}", 1, 400))
    async with running_hub(kube) as hub:
        await synced(hub, 3)
        run = follow(hub, buffer=LogBuffer(max_lines=100))
        await kube.wait_for_log_followers(3)
        buffer = run.follower.buffer
        await until(lambda: buffer.end == 1200, "every line through the buffer")
        assert len(buffer) == 100 and buffer.dropped == 1100
        await run.close()
        await run.close()  # idempotent
        await no_followers(kube)
        assert run.follower.followed == []
