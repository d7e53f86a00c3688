"""5,000 pods in 50 namespaces under 50 pod changes per second: first full table,
key press -> repaint, memory, CPU — Ferryman with the real KubeAdapter.

    .venv/bin/python -m tests.bench.kube_pods [--seconds 20] [--rate 50] [--cpu-seconds 5]

The cluster is the emulated API server (tests/support/kube_emulator.py) in a *separate
process*, so its CPU and memory are not Ferryman's: 50 namespaces (ns-00..ns-49), each
with 2 Deployments (`api`, `worker`: the same names in every namespace, as with one app
per team or stage — the hybrid view then has 2 name groups of 50 workloads) owning 50
pods each through their ReplicaSet, all Running and Ready, their creation times spread over
30 days as in a long-lived cluster (--ages). Ferryman runs in this process
under `run_test(size=(200, 50))`: `FerrymanApp(Hub([ScriptedAdapter(), KubeAdapter(...)]))`,
kr8s over real HTTP to the emulator, the Compose side connected and empty.

Load: the emulator process changes 50 pods per second on an absolute schedule (kubelet-like
status writes: readiness flips, restart count bumps, CrashLoopBackOff, and ~6 % pod
deletes/creates of a Deployment's pods), which reach Ferryman as watch events.

Figures:
  first full table  app start (run_test entered) -> the first frame painted with all 5,000
                    pod rows, `:pods` being the start view (ui.default_view). Broken down:
                    k3s connected, Snapshot applied by the store, `_flush` leaving 5,000
                    rows in the table. Separately (a second app, after the first): app
                    start -> the workloads (hybrid) view painted with all 100 rows.
  CPU               process CPU / wall (time.process_time, all threads; includes the
                    emulated terminal output and the benchmark's probes) over --cpu-seconds
                    of load without keys, and over the key phase; the emulator process's
                    CPU over the same windows, separately.
  key -> repaint    for --seconds, in cycles: ctrl+home, 6 down, 2 pagedown, 3 up, `/` + 4
                    filter characters (a namespace, or part of a pod name) + Esc (clears the
                    filter: 5,000 rows come back), 2 down, then `:pods` typed + Enter (a new
                    5,000-row pods view). Keys are put on the app's queue as the driver does
                    (_common.send_key), 30-80 ms apart; the clock stops at the first frame
                    that shows the effect (_common.FrameProbe), as in large_table.py.
  memory            this process's RSS (psutil, sampled 10/s): before the app, at the first
                    full table, peak during the load; the emulator process's RSS apart.

Baselines in the same run: (1) the least a client spends to have the pods at all — one
plain httpx client LISTing all pods from the emulator in pages of 500 (what kubectl and the
adapter ask for) and decoding the JSON; no mapping, no table. (2) A bare Textual app with
one DataTable holding the pods view's last rows (same texts and styles, added pre-sorted),
no load: rows added -> painted, and --bare-seconds of the cursor keys (ctrl+home, down,
pagedown, up) — Textual's own cost at this size.

Options: --ages fresh makes every pod just created (each AGE cell then changes on every
uptime tick: the worst case, e.g. right after a cluster-wide rollout); --uptime-refresh
sets ui.uptime_refresh_seconds (e.g. 3600 to see the figures without the tick).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.bench._common import (
    CURSOR_AND_FILTER_KINDS,
    KEY_TIMEOUT,
    CpuWindow,
    FrameProbe,
    FrameWaiter,
    all_times,
)

SIZE = (200, 50)
TARGET_KEY_P95_MS = 50.0
DEPLOYMENT_NAMES = ("api", "worker", "web", "cache", "db", "queue")


# ==== the emulator process ====================================================================


@dataclasses.dataclass
class _Pod:
    namespace: str
    name: str
    deployment: str
    image: str
    ready: bool = True
    restarts: int = 0


def _suffix(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _backdate(kube, namespace: str, name: str, rng: random.Random) -> None:  # noqa: ANN001
    """Give a pod a creation/start time as in a long-lived cluster: 10 % under 10 minutes
    old, 20 % under 10 hours, the rest up to 30 days. The API has no way to set these
    (the server owns them), so the stored object is edited in place (bench only)."""
    roll = rng.random()
    age = rng.uniform(0, 600) if roll < 0.1 else rng.uniform(600, 36_000) if roll < 0.3 else \
        rng.uniform(36_000, 30 * 86_400)
    when = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rt = kube.resource_type("pods")
    raw = kube._objects[kube._key(rt, namespace, name)].last.raw  # noqa: SLF001 - test support internals
    raw["metadata"]["creationTimestamp"] = when
    raw["status"]["startTime"] = when


async def _serve_emulator(args: argparse.Namespace) -> int:
    """Child process: populate the emulator, write the kubeconfig, then obey JSON lines on
    stdin (`churn`, `stop`, `quit`), answering each with one JSON line on stdout."""
    from tests.bench._common import Paced
    from tests.support.kube_emulator import KubeEmulator

    rng = random.Random(args.seed)
    out = sys.stdout

    def say(data: dict) -> None:
        out.write(json.dumps(data) + "\n")
        out.flush()

    async with KubeEmulator() as kube:
        t0 = time.perf_counter()
        pods: list[_Pod] = []
        replicasets: dict[tuple[str, str], str] = {}
        per = args.pods_per_namespace // args.deployments
        for n in range(args.namespaces):
            ns = f"ns-{n:02d}"
            kube.add_namespace(ns, labels={"team": f"team-{n % 7}"})
            for d in DEPLOYMENT_NAMES[: args.deployments]:
                image = f"registry.example.com/{d}:1.{n}"
                kube.add_deployment(ns, d, replicas=per, image=image, ports=[8080])
                rs = kube._replicaset_for(ns, d)["metadata"]["name"]  # noqa: SLF001 - test support
                replicasets[ns, d] = rs
                for _ in range(per):
                    name = f"{rs}-{_suffix(rng)}"
                    kube.add_pod(ns, name, owner=d)
                    if args.ages == "mixed":
                        _backdate(kube, ns, name, rng)
                    pods.append(_Pod(ns, name, d, image))
        kube.write_kubeconfig(args.kubeconfig)
        say({"ready": True, "url": kube.url, "pods": len(pods), "deployments": len(replicasets),
             "seconds": time.perf_counter() - t0})

        from tests.bench._common import stdin_commands

        commands = stdin_commands()
        stats: dict[str, Any] = {}
        pacer: Paced | None = None
        churn_task: asyncio.Task | None = None
        deleted: list[_Pod] = []

        def change() -> str:
            roll = rng.random()
            if roll >= 0.94:  # replace pods as a controller would: delete one, later add one
                if deleted and (roll >= 0.97 or len(pods) <= 1):
                    gone = deleted.pop(0)
                    rs = replicasets[gone.namespace, gone.deployment]
                    pod = _Pod(gone.namespace, f"{rs}-{_suffix(rng)}", gone.deployment, gone.image)
                    kube.add_pod(pod.namespace, pod.name, owner=pod.deployment)
                    pods.append(pod)
                    return "add"
                i = rng.randrange(len(pods))
                pods[i], pods[-1] = pods[-1], pods[i]
                pod = pods.pop()
                kube.delete_object("pods", pod.namespace, pod.name)
                deleted.append(pod)
                return "delete"
            pod = pods[rng.randrange(len(pods))]
            if roll < 0.40 or not pod.ready:  # readiness flip (a crash-looping pod recovers)
                pod.ready = not pod.ready
                kube.set_pod_status(pod.namespace, pod.name, phase="Running", ready=pod.ready, restarts=pod.restarts)
                return "ready flip"
            if roll < 0.70:
                pod.restarts += 1
                kube.set_pod_status(pod.namespace, pod.name, restarts=pod.restarts)
                return "restart +1"
            pod.ready = False
            pod.restarts += 1
            kube.set_pod_status(pod.namespace, pod.name, phase="Running", ready=False, container_statuses=[{
                "name": pod.deployment, "image": pod.image, "imageID": "", "ready": False, "started": False,
                "restartCount": pod.restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 10s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
            }])
            return "crashloop"

        def timed_change() -> None:
            t = time.perf_counter()
            kind = change()
            stats["write_seconds"] += time.perf_counter() - t
            stats["by_kind"][kind] = stats["by_kind"].get(kind, 0) + 1

        async def churn(pacer: Paced) -> None:
            t_start = time.perf_counter()
            await pacer.run()
            stats.update(sent=pacer.sent, late=pacer.late, seconds=time.perf_counter() - t_start,
                         write_ms_mean=stats.pop("write_seconds") / max(pacer.sent, 1) * 1000)

        while True:
            command = await commands.get()
            if command is None or command["cmd"] == "quit":
                break
            if command["cmd"] == "churn":
                stats.clear()
                stats.update(write_seconds=0.0, by_kind={})
                pacer = Paced(float(command["rate"]), timed_change)
                churn_task = asyncio.create_task(churn(pacer))
                say({"ok": "churn"})
            elif command["cmd"] == "stop":
                if pacer is not None:
                    pacer.stop()
                if churn_task is not None:
                    await churn_task
                    churn_task = None
                say({**stats, "pods": len(pods)})
        if pacer is not None:
            pacer.stop()
        if churn_task is not None:
            await churn_task
    return 0


class Emulator:
    """The emulator child process, seen from the benchmark."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.kubeconfig = workdir / "kubeconfig"
        argv = [sys.executable, "-m", "tests.bench.kube_pods", "--serve-emulator",
                "--namespaces", str(args.namespaces), "--pods-per-namespace", str(args.pods_per_namespace),
                "--deployments", str(args.deployments), "--seed", str(args.seed), "--ages", args.ages,
                "--kubeconfig", str(self.kubeconfig)]
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(argv, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        import psutil

        self.ps = psutil.Process(self.proc.pid)
        self.info = self._read(600)

    def _read(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            raise RuntimeError(f"the emulator process did not answer (exit code {self.proc.poll()})")
        return json.loads(box[0])

    def ask(self, cmd: str, **params: Any) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **params}) + "\n")
        self.proc.stdin.flush()
        return self._read(60)

    @property
    def url(self) -> str:
        return self.info["url"]

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


# ==== Ferryman ===================================================================================


class RssSampler:
    """This process's RSS, sampled from a thread (10/s): the peak and the latest value."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")
        self._thread.start()

    def now(self) -> int:
        return self.process.memory_info().rss

    def reset_peak(self) -> None:
        self.peak = self.now()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.now())

    def close(self) -> None:
        self._stop.set()


@dataclasses.dataclass
class Window(CpuWindow):
    """CPU over one window: ours (process_time) and the emulator's, and what happened."""

    emulator_cpu_percent: float = float("nan")
    store_share: float = float("nan")
    flush_share: float = float("nan")
    tick_share: float = float("nan")
    flushes: int = 0
    flush_ms_mean: float = float("nan")
    store_events_per_s: float = float("nan")
    calls: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # what -> durations (ms)


@dataclasses.dataclass
class Result:
    list_floor_ms: float = float("nan")
    list_floor_pods: int = 0
    start_connected_ms: float = float("nan")
    start_snapshot_ms: float = float("nan")
    snapshot_apply_ms: float = float("nan")
    start_rows_ms: float = float("nan")
    start_painted_ms: float = float("nan")
    wk_start_painted_ms: float = float("nan")
    wk_rows: int = 0
    rss_before: int = 0
    rss_first_table: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    emulator_rss: int = 0
    quiet: Window = dataclasses.field(default_factory=Window)
    keyed: Window = dataclasses.field(default_factory=Window)
    wk_quiet: Window = dataclasses.field(default_factory=Window)
    keys: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    timeouts: int = 0
    churn: dict = dataclasses.field(default_factory=dict)
    rows: dict = dataclasses.field(default_factory=dict)  # the pods view's last rows, for the baseline
    bare_first_ms: float = float("nan")
    bare_keys: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def all_keys(self) -> list[float]:
        return all_times(self.keys)


class Probes:
    """Class-level wrappers (restored on close): Store.apply, ResourceView._flush,
    refresh_ticking and set_filter time accumulators, the first k3s Snapshot / CONNECTED, and a hook run
    on each view's first `_flush` (in on_mount, before any row is in its table)."""

    def __init__(self) -> None:
        from backends.model import (
            ConnState,
            InstanceChanged,
            InstanceGone,
            Snapshot,
            Source,
            SourceStatus,
        )
        from backends.store import Store
        from tui.views.table import ResourceView

        self.Store, self.ResourceView = Store, ResourceView
        self.store_seconds = 0.0
        self.store_events = 0
        self.flush_seconds = 0.0
        self.flushes = 0
        self.tick_seconds = 0.0
        self.calls: dict[str, list[float]] = {"flush": [], "uptime tick": [], "set_filter": []}
        self.connected_at: float | None = None
        self.snapshot_at: float | None = None
        self.snapshot_seconds = 0.0
        self.on_first_flush = None  # callable(view)
        self.after_flush = None  # callable(view)
        self._seen: set[int] = set()
        self._apply, self._flush, self._tick = Store.apply, ResourceView._flush, ResourceView.refresh_ticking
        self._set_filter = ResourceView.set_filter
        probes = self

        def apply(store, event):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            change = probes._apply(store, event)
            t1 = time.perf_counter()
            probes.store_seconds += t1 - t
            if isinstance(event, (InstanceChanged, InstanceGone)):
                probes.store_events += 1
            elif isinstance(event, Snapshot) and event.source == Source.K3S and probes.snapshot_at is None:
                probes.snapshot_at, probes.snapshot_seconds = t1, t1 - t
            elif (isinstance(event, SourceStatus) and event.source == Source.K3S
                  and event.state == ConnState.CONNECTED and probes.connected_at is None):
                probes.connected_at = t1
            return change

        def flush(view, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            if id(view) not in probes._seen:
                probes._seen.add(id(view))
                if probes.on_first_flush is not None:
                    probes.on_first_flush(view)
            t = time.perf_counter()
            probes._flush(view, *a, **kw)
            took = time.perf_counter() - t
            probes.flush_seconds += took
            probes.calls["flush"].append(took * 1000)
            probes.flushes += 1
            if probes.after_flush is not None:
                probes.after_flush(view)

        def tick(view, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            t = time.perf_counter()
            probes._tick(view, *a, **kw)
            took = time.perf_counter() - t
            probes.tick_seconds += took
            probes.calls["uptime tick"].append(took * 1000)

        def set_filter(view, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202 - includes its _flush
            t = time.perf_counter()
            value = probes._set_filter(view, *a, **kw)
            probes.calls["set_filter"].append((time.perf_counter() - t) * 1000)
            return value

        Store.apply, ResourceView._flush, ResourceView.refresh_ticking = apply, flush, tick
        ResourceView.set_filter = set_filter

    def close(self) -> None:
        self.Store.apply, self.ResourceView._flush, self.ResourceView.refresh_ticking = (
            self._apply, self._flush, self._tick)
        self.ResourceView.set_filter = self._set_filter


def list_floor(url: str) -> tuple[float, int]:
    """A plain client LISTing every pod, 500 a page, JSON decoded: the least any client waits."""
    import httpx

    t0 = time.perf_counter()
    count = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        params: dict[str, Any] = {"limit": 500}
        while True:
            page = client.get("/api/v1/pods", params=params).json()
            count += len(page["items"])
            token = page["metadata"].get("continue")
            if not token:
                break
            params["continue"] = token
    return (time.perf_counter() - t0) * 1000, count


def make_app(emulator: Emulator, default_view: str, uptime_refresh: float | None = None):  # noqa: ANN201
    from backends.config import Config, UiConfig
    from backends.hub import Hub
    from backends.kube import KubeAdapter
    from backends.model import Snapshot, Source
    from tests.support.scripted import ScriptedAdapter
    from tui.app import FerrymanApp

    compose = ScriptedAdapter()
    compose.emit(compose.connected(), Snapshot(Source.COMPOSE, ()))
    k3s = KubeAdapter(kubeconfig=str(emulator.kubeconfig))
    ui = UiConfig(default_view=default_view)
    if uptime_refresh is not None:
        ui = UiConfig(default_view=default_view, uptime_refresh_seconds=uptime_refresh)
    return FerrymanApp(Hub([compose, k3s]), Config(ui=ui))


async def window(seconds: float, emulator: Emulator, probe, probes: Probes, into: Window) -> None:  # noqa: ANN001
    """Measure CPU etc. while `seconds` pass (awaited here)."""
    await _measured(asyncio.sleep(seconds), emulator, probe, probes, into)


async def _measured(work, emulator: Emulator, probe: FrameProbe, probes: Probes, into: Window) -> Any:  # noqa: ANN001
    from tests.bench._common import CpuMeter

    meter = CpuMeter(probe, own_pids=[os.getpid(), emulator.proc.pid]).start()
    s0, fl0, fs0, t0, e0 = (probes.store_seconds, probes.flushes, probes.flush_seconds, probes.tick_seconds,
                            probes.store_events)
    em0 = emulator.cpu_seconds()
    calls0 = {name: len(values) for name, values in probes.calls.items()}
    value = await work
    meter.stop(into)
    wall, cpu = into.seconds, max(into.cpu_seconds, 1e-9)
    into.emulator_cpu_percent = (emulator.cpu_seconds() - em0) / wall * 100
    into.store_share = (probes.store_seconds - s0) / cpu * 100
    into.flush_share = (probes.flush_seconds - fs0) / cpu * 100
    into.tick_share = (probes.tick_seconds - t0) / cpu * 100
    into.flushes = probes.flushes - fl0
    into.flush_ms_mean = (probes.flush_seconds - fs0) / max(into.flushes, 1) * 1000
    into.store_events_per_s = (probes.store_events - e0) / wall
    into.calls = {name: values[calls0[name]:] for name, values in probes.calls.items()}
    return value


def key_plan(rng: random.Random, pod_names: list[str], namespaces: int) -> list[tuple[str, str]]:
    """One cycle: cursor moves, a page, a filter typed and cleared, `:pods` again."""
    from tests.bench._common import cursor_keys, filter_keys

    plan = cursor_keys(3)
    if rng.random() < 0.5:
        word = f"s-{rng.randrange(namespaces):02d}"  # a namespace: 100 rows stay
    else:
        word = rng.choice(pod_names).rsplit("-", 1)[-1][:4]  # part of a pod's name: ~1 row stays
    plan += filter_keys(word)
    plan += [("down", "down")] * 2
    plan += [("open command :", "colon")] + [("command char", c) for c in "pods"] + [("enter :pods", "enter")]
    return plan


async def measure_keys(app, probe, probes: Probes, seconds: float, rng: random.Random, result: Result,  # noqa: ANN001
                       namespaces: int) -> int:
    from tests.bench._common import KeyTimer, cursor_in_view, steer
    from tui.widgets.chrome import Crumbs
    from tui.widgets.prompt import Prompt

    prompt = app.query_one(Prompt)
    crumbs = app.query_one(Crumbs)
    timer = KeyTimer(app, probe, rng, result.keys, KEY_TIMEOUT)
    deadline = time.perf_counter() + seconds
    typed = ""
    sent = 0
    plan: list[tuple[str, str]] = []
    switch: dict[str, Any] = {}

    def first_flush(view) -> None:  # noqa: ANN001 - a new view is being mounted
        if "ready" in switch and "waiter" not in switch:
            switch["waiter"] = probe.waiter(
                [view.table],
                lambda: app.current_view is view and 0 < view.table.row_count == len(view._objects),  # noqa: SLF001
            )
            switch["ready"].set()

    probes.on_first_flush = first_flush

    def visible() -> bool:
        return cursor_in_view(app.current_view.table)

    async def switched() -> FrameWaiter:  # the waiter of `enter :pods`, once the new view is mounted
        await switch["ready"].wait()
        return switch["waiter"]

    while time.perf_counter() < deadline or (plan and plan[0][0] in ("filter char", "escape (clear filter)",
                                                                       "command char", "enter :pods")):
        if not plan:
            names = [v.name for v in list(app.current_view._objects.values())[:2000]]  # noqa: SLF001
            plan = key_plan(rng, names, namespaces)
        kind, key = plan.pop(0)
        view = app.current_view
        table = view.table
        before, rows, before_key = table.cursor_row, table.row_count, view.selected_key
        kind, key = steer(kind, key, before, rows)
        waiter: FrameWaiter | Callable[[], Awaitable[FrameWaiter]]
        if kind == "top":
            waiter = probe.waiter([table], lambda: app.current_view.table.cursor_row == 0 and visible())
        elif kind in ("down", "up", "pagedown"):
            # Pods come and go above the cursor (its row index shifts, the view keeps it on its
            # row): the key's effect is the cursor on another row, in view.
            waiter = probe.waiter([table], lambda before_key=before_key: (
                app.current_view.selected_key != before_key and visible()))
        elif kind == "open filter /":
            typed = ""
            waiter = probe.waiter([prompt], lambda: prompt.display and prompt.has_focus and prompt.mode == "filter")
        elif kind == "filter char":
            typed += key
            waiter = probe.waiter([table, crumbs], lambda want=typed: app.current_view.row_filter.text == want)
        elif kind == "escape (clear filter)":
            waiter = probe.waiter([table, crumbs], lambda: (
                not prompt.display and app.current_view.row_filter.text == ""
                and app.current_view.table.row_count == len(app.current_view._objects)))  # noqa: SLF001
        elif kind == "open command :":
            typed = ""
            waiter = probe.waiter([prompt], lambda: prompt.display and prompt.has_focus and prompt.mode == "command")
        elif kind == "command char":
            typed += key
            waiter = probe.waiter([prompt], lambda want=typed: prompt.value == want)
        else:  # enter :pods: the waiter is made when the new view is mounted
            switch.clear()
            switch["ready"] = asyncio.Event()
            waiter = switched
        sent += 1
        if await timer.press(kind, key, waiter) is None:
            result.timeouts += 1
            print(f"    timeout: {kind} {key!r} not on screen after {KEY_TIMEOUT:g}s", flush=True)
    probes.on_first_flush = None
    return sent


def instrumented_app(args: argparse.Namespace, emulator: Emulator, view: str, expected: int,
                     ) -> tuple[Any, FrameProbe, Probes, dict[str, Any]]:
    """A Ferryman app on the emulator that starts in `view`, with its FrameProbe and the Probes
    installed (close them when done). `first["waiter"]` is made on that view's first flush,
    before any row is in its table, and resolves at the first frame with `expected` rows: the
    end of start -> first full table, for each start view the same way."""
    probes = Probes()
    app = make_app(emulator, view, args.uptime_refresh)
    probe = FrameProbe(app).install()
    first: dict[str, Any] = {}

    def first_flush(mounted) -> None:  # noqa: ANN001
        if mounted.kind.name == view and "waiter" not in first:
            first["waiter"] = probe.waiter([mounted.table], lambda: mounted.table.row_count == expected)

    probes.on_first_flush = first_flush
    return app, probe, probes, first


async def run_pods(args: argparse.Namespace, emulator: Emulator, rss: RssSampler, result: Result) -> None:
    expected = emulator.info["pods"]
    app, probe, probes, first = instrumented_app(args, emulator, "pods", expected)

    def after_flush(view) -> None:  # noqa: ANN001
        if "rows_at" not in first and view.kind.name == "pods" and view.table.row_count == expected:
            first["rows_at"] = time.perf_counter()

    probes.after_flush = after_flush
    try:
        t_start = time.perf_counter()
        async with app.run_test(size=SIZE):
            t_frame = await asyncio.wait_for(first["waiter"].future, 300)
            probes.after_flush = None
            result.rss_first_table = rss.now()
            result.start_painted_ms = (t_frame - t_start) * 1000
            result.start_rows_ms = (first["rows_at"] - t_start) * 1000
            result.start_connected_ms = (probes.connected_at - t_start) * 1000
            result.start_snapshot_ms = (probes.snapshot_at - t_start) * 1000
            result.snapshot_apply_ms = probes.snapshot_seconds * 1000
            print(f"    first full table painted after {result.start_painted_ms:.0f} ms", flush=True)

            emulator.ask("churn", rate=args.rate)
            await asyncio.sleep(2)  # settle: the load is running, nothing else
            await window(args.cpu_seconds, emulator, probe, probes, result.quiet)
            q = result.quiet
            print(f"    no keys, {args.cpu_seconds:g} s (key phase starts now): {q.cpu_percent:.0f} % CPU, {q.store_events_per_s:.1f} pod "
                  f"changes/s reached the store, {q.flushes} flushes (mean {q.flush_ms_mean:.1f} ms), "
                  f"{q.frames_per_s:.1f} frames/s", flush=True)
            sent = await _measured(
                measure_keys(app, probe, probes, args.seconds, random.Random(args.seed), result, args.namespaces),
                emulator, probe, probes, result.keyed)
            print(f"    key phase: {sent} keys in {result.keyed.seconds:.1f} s", flush=True)
            result.churn = emulator.ask("stop")
            view = app.current_view
            result.rows = dict(sorted(view._cells.items(),  # noqa: SLF001
                                      key=lambda kv: (kv[1][0].text.lower(), kv[1][1].text.lower())))
            result.rss_peak = rss.peak
            result.rss_end = rss.now()
            result.emulator_rss = emulator.rss()
    finally:
        probes.close()


async def run_workloads(args: argparse.Namespace, emulator: Emulator, result: Result) -> None:
    app, probe, probes, first = instrumented_app(args, emulator, "workloads", emulator.info["deployments"])
    try:
        t_start = time.perf_counter()
        async with app.run_test(size=SIZE):
            t_frame = await asyncio.wait_for(first["waiter"].future, 300)
            result.wk_start_painted_ms = (t_frame - t_start) * 1000
            result.wk_rows = app.current_view.table.row_count
            emulator.ask("churn", rate=args.rate)
            await asyncio.sleep(1)
            await window(args.cpu_seconds, emulator, probe, probes, result.wk_quiet)
            emulator.ask("stop")
    finally:
        probes.close()


# ==== the bare baseline ==========================================================================


async def run_bare(args: argparse.Namespace, result: Result) -> None:
    """A bare app with one DataTable holding the same pod rows (same texts and styles, added
    pre-sorted), no load: the cursor keys of the cycle, for Textual's own cost at this size."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from backends.kube_rows import POD_COLUMNS
    from tests.bench._common import (
        KeyTimer,
        bare_data_table,
        cursor_in_view,
        cursor_keys,
        paint_bare_rows,
    )
    from tui.views.table import cell_text

    class BareApp(App[None]):
        CSS = "DataTable { height: 1fr; }"

        def compose(self) -> ComposeResult:
            yield bare_data_table(POD_COLUMNS)

    rows = {key: tuple(cell_text(c) for c in cells) for key, cells in result.rows.items()}
    app = BareApp()
    rng = random.Random(args.seed)
    async with app.run_test(size=SIZE) as pilot:
        probe, _, result.bare_first_ms = await paint_bare_rows(app, pilot, rows, 120)
        table = app.query_one(DataTable)
        timer = KeyTimer(app, probe, rng, result.bare_keys, KEY_TIMEOUT)

        def visible() -> bool:
            return cursor_in_view(table)

        deadline = time.perf_counter() + args.bare_seconds
        plan: list[tuple[str, str]] = []
        while time.perf_counter() < deadline:
            if not plan:
                plan = cursor_keys(3)
            kind, key = plan.pop(0)
            before = table.cursor_row
            if kind == "top" and before == 0:
                kind, key = "down", "down"
            want = {"top": 0, "down": before + 1, "up": before - 1}.get(kind)
            if want is None:
                waiter = probe.waiter([table], lambda before=before: table.cursor_row > before and visible())
            else:
                waiter = probe.waiter([table], lambda want=want: table.cursor_row == want and visible())
            await timer.press(kind, key, waiter)  # a timeout is not timed, as in Ferryman's key phase


# ==== report =====================================================================================

KINDS = (*CURSOR_AND_FILTER_KINDS, "open command :", "command char", "enter :pods")


def mb(n: int) -> str:
    return f"{n / 2**20:6.0f} MB"


def report(args: argparse.Namespace, emulator: Emulator, r: Result) -> dict:
    from tests.bench._common import fmt_ms, percentile, ratio, stats_line, summary

    pods, deps = emulator.info["pods"], emulator.info["deployments"]
    print()
    print(f"kube_pods: {pods} pods, {deps} Deployments in {args.namespaces} namespaces, {args.rate:g} pod changes/s, "
          f"terminal {SIZE[0]}x{SIZE[1]}; emulator in its own process (pid {emulator.proc.pid}, "
          f"populated in {emulator.info['seconds']:.1f} s)")
    print(f"  pod ages: {args.ages}; uptime tick every "
          f"{'the shipped 2' if args.uptime_refresh is None else f'{args.uptime_refresh:g}'} s")
    print(f"  baseline: plain httpx LIST of {r.list_floor_pods} pods (500/page, JSON decoded): {r.list_floor_ms:8.0f} ms")
    print(f"  start -> k3s connected              {r.start_connected_ms:8.0f} ms")
    print(f"  start -> Snapshot in the store      {r.start_snapshot_ms:8.0f} ms   (Store.apply of it: "
          f"{r.snapshot_apply_ms:.0f} ms)")
    print(f"  start -> {pods} rows in the table  {r.start_rows_ms:8.0f} ms")
    print(f"  start -> first full table painted   {r.start_painted_ms:8.0f} ms   (vs the LIST floor: "
          f"{ratio(r.start_painted_ms, r.list_floor_ms)})")
    print(f"  baseline: bare DataTable, the same {len(r.rows)} rows added -> painted: {r.bare_first_ms:6.0f} ms")
    print(f"  start -> workloads view, {r.wk_rows} rows painted {r.wk_start_painted_ms:6.0f} ms   (second app)")
    print("  memory (RSS of this process: Ferryman + benchmark probes; psutil, sampled 10/s):")
    print(f"    before the app {mb(r.rss_before)}, at the first full table {mb(r.rss_first_table)}, "
          f"peak under load {mb(r.rss_peak)}, at the end {mb(r.rss_end)}   (emulator process: {mb(r.emulator_rss)})")
    for label, w in (("pods view, no keys", r.quiet), ("pods view, key phase", r.keyed),
                     ("workloads view, no keys", r.wk_quiet)):
        print(f"  CPU {label:<24} {w.cpu_percent:5.1f} % of one core over {w.seconds:4.1f} s; emulator process "
              f"{w.emulator_cpu_percent:4.1f} %; other processes {w.others_cores:.2f} cores")
        print(f"      {w.store_events_per_s:5.1f} pod changes/s reached the store; of our CPU: store {w.store_share:.0f} %, "
              f"table flushes {w.flush_share:.0f} % ({w.flushes} x {w.flush_ms_mean:.1f} ms), uptime tick "
              f"{w.tick_share:.0f} %, terminal output {w.output_share:.0f} %; {w.frames_per_s:.1f} frames/s")
        print("      per call (ms): " + "; ".join(
            f"{name} n={len(v)} median {fmt_ms(summary(v)['median']).strip()} max {fmt_ms(summary(v)['max']).strip()}"
            for name, v in w.calls.items() if v))
    c = r.churn
    if c:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(c.get("by_kind", {}).items()))
        print(f"  load: {c.get('sent')} changes in {c.get('seconds', 0):.1f} s ({kinds}); late {c.get('late')}, "
              f"emulator write mean {c.get('write_ms_mean', 0):.2f} ms; {c.get('pods')} pods at the end")
    print("  key press -> painted frame:")
    for kind in KINDS:
        if kind in r.keys:
            line = stats_line(kind, r.keys[kind], 24)
            if kind in r.bare_keys:
                bare = summary(r.bare_keys[kind])
                line += f"  bare: median {bare['median']:.1f} p95 {bare['p95']:.1f}"
            print(line)
    allk = r.all_keys()
    print(stats_line("ALL keys", allk, 24))
    if r.bare_keys:
        bare_all = all_times(r.bare_keys)
        print(stats_line("bare DataTable, no load", bare_all, 24) + "  (top/down/pagedown/up only)")
    if r.timeouts:
        print(f"  !! {r.timeouts} key(s) never reached the screen within {KEY_TIMEOUT:g}s")
    p95 = percentile(allk, 95)
    met = p95 < TARGET_KEY_P95_MS and not r.timeouts
    print(f"\n target key p95 < {TARGET_KEY_P95_MS:.0f} ms: {'MET' if met else 'MISSED'} (p95 {p95:.1f} ms)")
    return {
        "pods": pods,
        "list_floor_ms": r.list_floor_ms,
        "first_table_ms": r.start_painted_ms,
        "workloads_first_table_ms": r.wk_start_painted_ms,
        "rss_peak_mb": r.rss_peak / 2**20,
        "rss_first_table_mb": r.rss_first_table / 2**20,
        "emulator_rss_mb": r.emulator_rss / 2**20,
        "cpu_percent": r.quiet.cpu_percent,
        "cpu_keys_percent": r.keyed.cpu_percent,
        "keys": summary(allk),
        "keys_by_kind": {k: summary(v) for k, v in r.keys.items()},
        "bare_keys": summary(all_times(r.bare_keys)),
        "bare_first_table_ms": r.bare_first_ms,
        "timeouts": r.timeouts,
        "target_met": met,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="key phase under load")
    parser.add_argument("--cpu-seconds", type=float, default=5.0, help="CPU window without keys")
    parser.add_argument("--rate", type=float, default=50.0, help="pod changes per second")
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--pods-per-namespace", type=int, default=100)
    parser.add_argument("--deployments", type=int, default=2, help="per namespace (they own the pods)")
    parser.add_argument("--bare-seconds", type=float, default=6.0, help="baseline key phase (0: no baseline)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ages", choices=("mixed", "fresh"), default="mixed",
                        help="pod ages: mixed as in a long-lived cluster, or all just created (every AGE cell "
                             "then changes on every uptime tick)")
    parser.add_argument("--uptime-refresh", type=float, default=None,
                        help="ui.uptime_refresh_seconds for Ferryman (default: the shipped value)")
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_emulator:
        return asyncio.run(_serve_emulator(args))

    from tests.bench._common import emit_summary, machine_line

    print("kube_pods:", machine_line(), flush=True)
    result = Result()
    rss = RssSampler()
    with tempfile.TemporaryDirectory(prefix="ferryman-bench-") as tmp:
        print(f"  populating the emulator ({args.namespaces} namespaces x {args.pods_per_namespace} pods)...", flush=True)
        emulator = Emulator(args, Path(tmp))
        try:
            result.list_floor_ms, result.list_floor_pods = list_floor(emulator.url)
            import tui.app  # noqa: F401 - imported before the baseline RSS, like a started process

            gc.collect()
            result.rss_before = rss.now()
            rss.reset_peak()
            print("  running the pods view...", flush=True)
            asyncio.run(run_pods(args, emulator, rss, result))
            print("  running the workloads view...", flush=True)
            asyncio.run(run_workloads(args, emulator, result))
            if args.bare_seconds > 0 and result.rows:
                print("  running the bare DataTable baseline...", flush=True)
                asyncio.run(run_bare(args, result))
        finally:
            rss.close()
            emulator.close()
    emit_summary("kube_pods", report(args, emulator, result))
    return 0


if __name__ == "__main__":
    from tests.bench._common import run_main

    sys.exit(run_main(main))
