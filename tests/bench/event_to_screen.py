"""Docker event -> row on screen: how long after dockerd reports a container's death or
start does Ferryman's table show it?

    .venv/bin/python -m tests.bench.event_to_screen [--cycles 60] [--view workloads|containers]

A real compose project (3 sleeper services) on the real engine; Ferryman
(`FerrymanApp(Hub([ComposeAdapter()]))`) runs in this process under `run_test(size=(160, 50))`.
Each cycle kills (SIGKILL) or stops (`stop -t 0`, alternating) one container from a thread
with the docker SDK, waits for the row to show it, then starts it again and waits again.

The clock starts at the Docker event's own `timeNano` (read by a separate
`client.events(since=...)` subscription in a thread of this script) and stops at:
  table data  the `ResourceView._flush` call (wrapped by this script) that changed the row's
              STATE cell to the new text (time.time_ns() after it returned);
  after-refresh  a `call_after_refresh` callback scheduled from inside that flush ran
              (Textual's own notion of "the screen has been refreshed");
  painted     the first frame (`App._display`) that contains the table's repaint after that
              flush — see FrameProbe in _common.py; headless, so the update is rendered to
              the terminal escape-code string and discarded instead of written to a tty.
Baseline measured in the same run ("SDK floor"): the same event as received by a plain docker
SDK event subscriber plus one `inspect_container` in that thread — the least any
event-driven client must wait before it can know the new state.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import docker

from backends.compose import ComposeAdapter
from backends.hub import Hub
from backends.model import InstanceChanged, RunState
from tests.bench._common import (
    ForeignEvents,
    FrameProbe,
    emit_summary,
    run_main,
    machine_line,
    percentile,
    ratio,
    stats_line,
    summary,
)
from tests.support.dockerenv import ComposeProject, ensure_test_image, sleeper_service
from tests.support.pilot import wait_for
from tui.app import FerrymanApp
from tui.views.table import ResourceView

STATE = 2  # the STATE column, in both views
SERVICES = ("alpha", "bravo", "charlie")
TARGET_P95_MS = 200.0


# ---- the script's own view of Docker's events -------------------------------------------


@dataclass
class SeenEvent:
    container: str
    action: str
    time_nano: int  # dockerd's timestamp
    received_ns: int  # when this script's SDK thread got it
    inspected_ns: int | None = None  # after one inspect_container in that thread


class EventLog:
    """A plain SDK subscriber in a thread: every container event of the project."""

    def __init__(self, client: docker.DockerClient, project: str, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.events: list[SeenEvent] = []
        self.lock = threading.Lock()
        self.changed = asyncio.Event()
        self.stream = client.events(
            decode=True,
            since=int(time.time()) - 1,
            filters={"type": "container", "label": [f"com.docker.compose.project={project}"]},
        )
        self.thread = threading.Thread(target=self._run, name="bench-docker-events", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.stream:
                received = time.time_ns()
                action = str(raw.get("Action") or raw.get("status") or "")
                seen = SeenEvent(str(raw.get("id") or raw["Actor"]["ID"]), action, int(raw["timeNano"]), received)
                if action in ("die", "start"):
                    try:
                        self.client.api.inspect_container(seen.container)
                        seen.inspected_ns = time.time_ns()
                    except docker.errors.APIError:
                        pass
                with self.lock:
                    self.events.append(seen)
                try:
                    self.loop.call_soon_threadsafe(self.changed.set)
                except RuntimeError:
                    return
        except Exception:  # noqa: BLE001 - closed at the end
            return

    def find(self, container: str, action: str, after_ns: int) -> SeenEvent | None:
        with self.lock:
            for ev in self.events:
                if ev.container == container and ev.action == action and ev.time_nano >= after_ns:
                    return ev
        return None

    async def wait(self, container: str, action: str, after_ns: int, timeout: float = 15) -> SeenEvent:
        deadline = time.monotonic() + timeout
        while (ev := self.find(container, action, after_ns)) is None:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {action} event for {container[:12]}")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass
        return ev

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001
            pass


# ---- instrumentation of the product ------------------------------------------------------


@dataclass
class Expectation:
    key: str  # the row key
    running: bool  # the new state: STATE shows "running", or anything else (exited (137), stopped...)
    container: str
    shown: str | None = None  # the STATE text the row changed to
    flush_ns: int | None = None
    after_refresh_ns: int | None = None
    frame_ns: int | None = None
    store_ns: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, text: str) -> bool:
        return (text == "running") == self.running

    def complete(self) -> bool:
        return None not in (self.flush_ns, self.after_refresh_ns, self.frame_ns)


class Instruments:
    """Wraps ResourceView._flush (class level, restored at the end), the store's apply and
    App._display (through FrameProbe)."""

    def __init__(self) -> None:
        self.expect: Expectation | None = None
        self.probe: FrameProbe | None = None
        self.flush_calls = 0
        self.flush_seconds = 0.0
        self._original_flush = ResourceView._flush

    def install(self) -> None:
        original = self._original_flush
        instruments = self

        def flush(view: ResourceView, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - pass-through
            exp = instruments.expect
            before = view._cells.get(exp.key) if exp else None
            t = time.perf_counter()
            original(view, *args, **kwargs)
            instruments.flush_calls += 1
            instruments.flush_seconds += time.perf_counter() - t
            if exp is None or exp.flush_ns is not None or view is not view.app.current_view:
                return
            after = view._cells.get(exp.key)
            if after is None or not exp.matches(after[STATE].text):
                return
            if before is not None and exp.matches(before[STATE].text):
                return
            exp.flush_ns = time.time_ns()
            exp.shown = after[STATE].text

            def after_refresh() -> None:
                exp.after_refresh_ns = time.time_ns()
                instruments._check(exp)

            view.call_after_refresh(after_refresh)
            waiter = instruments.probe.waiter([view.table], lambda: True)

            def painted(fut: asyncio.Future) -> None:
                if not fut.cancelled():
                    exp.frame_ns = waiter.frame_wall_ns
                    instruments._check(exp)

            waiter.future.add_done_callback(painted)

        ResourceView._flush = flush  # type: ignore[method-assign]

    def watch_store(self, app: FerrymanApp) -> None:
        store = app.hub.store
        original = store.apply
        instruments = self

        def apply(event):  # noqa: ANN001, ANN202
            change = original(event)
            exp = instruments.expect
            if (
                exp is not None
                and exp.store_ns is None
                and isinstance(event, InstanceChanged)
                and event.instance.id == exp.container
                and (event.instance.state == RunState.RUNNING) == exp.running
                and change
            ):
                exp.store_ns = time.time_ns()
            return change

        store.apply = apply

    def _check(self, exp: Expectation) -> None:
        if exp.complete():
            exp.done.set()

    def uninstall(self) -> None:
        ResourceView._flush = self._original_flush  # type: ignore[method-assign]


# ---- the run -------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str  # "die (kill)", "die (stop -t 0)", "start"
    event_to_flush: float
    event_to_after_refresh: float
    event_to_frame: float
    event_to_store: float
    sdk_receive: float
    sdk_inspect: float | None
    shown: str = ""


def row_key(view_name: str, project: str, service: str, container_id: str) -> str:
    return f"compose/{project}/{service}" if view_name == "workloads" else f"compose/{container_id}"


async def measure(args: argparse.Namespace, project: ComposeProject, client: docker.DockerClient) -> list[Sample]:
    ids = {svc: project.container_ids(client, svc)[0] for svc in SERVICES}
    loop = asyncio.get_running_loop()
    log = EventLog(client, project.name, loop)
    instruments = Instruments()
    instruments.install()
    samples: list[Sample] = []
    rng = random.Random(args.seed)
    try:
        # Read-only: the engine is shared, and no key must ever act on anybody's containers.
        app = FerrymanApp(Hub([ComposeAdapter()]), readonly=True)
        foreign = ForeignEvents(client, project.name)
        foreign.counting = True
        async with app.run_test(size=(160, 50)) as pilot:
            instruments.probe = FrameProbe(app).install()
            instruments.watch_store(app)
            if args.view == "containers":
                await pilot.press(":", "c", "t", "r", "enter")
            keys = {svc: row_key(args.view, project.name, svc, ids[svc]) for svc in SERVICES}

            def all_running() -> bool:
                view = app.current_view
                rows = view.shown_rows() if view else {}
                return all(k in rows and rows[k][STATE].text == "running" for k in keys.values())

            await wait_for(pilot, all_running, 30, "the three rows running")
            print(f"  Ferryman shows the 3 rows ({args.view} view); {args.cycles} cycles...", flush=True)

            for cycle in range(args.cycles):
                svc = SERVICES[cycle % len(SERVICES)]
                cid = ids[svc]
                use_kill = (cycle // len(SERVICES)) % 2 == 0
                for running_after in (False, True):
                    exp = Expectation(keys[svc], running_after, cid)
                    instruments.expect = exp
                    t_action = time.time_ns()
                    if running_after:
                        await asyncio.to_thread(client.api.start, cid)
                        kind, action = "start", "start"
                    elif use_kill:
                        await asyncio.to_thread(client.api.kill, cid)
                        kind, action = "die (kill)", "die"
                    else:
                        await asyncio.to_thread(client.api.stop, cid, timeout=0)
                        kind, action = "die (stop -t 0)", "die"
                    try:
                        await asyncio.wait_for(exp.done.wait(), 20)
                    except TimeoutError:
                        raise RuntimeError(
                            f"cycle {cycle}: row {exp.key} never showed {'running' if exp.running else 'a stopped state'} "
                            f"(flush={exp.flush_ns}, after_refresh={exp.after_refresh_ns}, frame={exp.frame_ns})"
                        ) from None
                    ev = await log.wait(cid, action, t_action - 5_000_000)
                    instruments.expect = None
                    ms = lambda t: (t - ev.time_nano) / 1e6 if t is not None else float("nan")  # noqa: E731
                    samples.append(
                        Sample(
                            kind,
                            ms(exp.flush_ns),
                            ms(exp.after_refresh_ns),
                            ms(exp.frame_ns),
                            ms(exp.store_ns),
                            ms(ev.received_ns),
                            ms(ev.inspected_ns),
                            exp.shown or "",
                        )
                    )
                    # Not in lock-step with Textual's timers.
                    await asyncio.sleep(rng.uniform(0.05, 0.15))
                if (cycle + 1) % 20 == 0:
                    print(f"  ... {cycle + 1} cycles", flush=True)
            print(
                f"  Compose container events of other projects during the run (shared engine): "
                f"{foreign.total} ({foreign.state} not exec_*)",
                flush=True,
            )
            print(
                f"  frames painted: {instruments.probe.frames}, flushes: {instruments.flush_calls} "
                f"(mean {instruments.flush_seconds / max(1, instruments.flush_calls) * 1000:.2f} ms each), "
                f"terminal output emulation: {instruments.probe.output_seconds * 1000:.0f} ms total",
                flush=True,
            )
    finally:
        instruments.uninstall()
        log.close()
        if foreign is not None:
            foreign.close()
    return samples


def report(samples: list[Sample], args: argparse.Namespace) -> dict:
    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_kind[s.kind].append(s)
        by_kind["die (all)" if s.kind.startswith("die") else "start (all)"].append(s)
    by_kind["all events"] = samples
    print()
    print(f"Docker event (timeNano) -> Ferryman table, {args.view} view, {len(samples)} events")
    result: dict = {}
    for kind in ("die (kill)", "die (stop -t 0)", "die (all)", "start (all)", "all events"):
        group = by_kind.get(kind, [])
        if not group:
            continue
        print(f" {kind}:  (STATE changed to: {', '.join(sorted({s.shown for s in group}))})")
        print(stats_line("event -> painted frame", [s.event_to_frame for s in group]))
        print(stats_line("event -> row state in table data", [s.event_to_flush for s in group]))
        print(stats_line("event -> call_after_refresh ran", [s.event_to_after_refresh for s in group]))
        print(stats_line("  breakdown: event -> store change", [s.event_to_store for s in group]))
        print(stats_line("  baseline: event -> SDK thread got it", [s.sdk_receive for s in group]))
        floor = [s.sdk_inspect for s in group if s.sdk_inspect is not None]
        print(stats_line("  baseline: event -> SDK + 1 inspect", floor))
        frame = summary([s.event_to_frame for s in group])
        base = summary(floor)
        print(
            f"  ratio painted/baseline(SDK+inspect): median {ratio(frame['median'], base['median'])}, "
            f"p95 {ratio(frame['p95'], base['p95'])}"
        )
        result[kind] = {
            "painted": frame,
            "table_data": summary([s.event_to_flush for s in group]),
            "after_refresh": summary([s.event_to_after_refresh for s in group]),
            "sdk_floor": base,
        }
    p95 = percentile([s.event_to_frame for s in samples], 95)
    verdict = "MET" if p95 < TARGET_P95_MS else "MISSED"
    print(f"\n target: p95 event -> painted < {TARGET_P95_MS:.0f} ms: {verdict} (p95 {p95:.1f} ms)")
    result["target_met"] = p95 < TARGET_P95_MS
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=60, help="stop/start cycles (2 events each)")
    parser.add_argument("--view", choices=("workloads", "containers"), default="workloads")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("event_to_screen:", machine_line(), flush=True)
    client = docker.from_env()
    print(f"  Docker engine {client.version().get('Version')}", flush=True)
    ensure_test_image(client)
    tmp = Path(tempfile.mkdtemp(prefix="ferryman-bench-"))
    project = ComposeProject(tmp, {svc: sleeper_service() for svc in SERVICES}, name=f"fmbench{random.randrange(16**8):08x}")
    try:
        project.up()
        samples = asyncio.run(measure(args, project, client))
        result = report(samples, args)
        emit_summary("event_to_screen", {"view": args.view, **result})
    finally:
        project.down()
        shutil.rmtree(tmp, ignore_errors=True)
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
