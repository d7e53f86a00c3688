"""2,000 rows under 50 changes per second: key press -> repaint, CPU, first full table.

    .venv/bin/python -m tests.bench.large_table [--keys 200] [--cpu-seconds 15]

Ferryman runs in this process under `run_test(size=(160, 50))` with a ScriptedAdapter
(tests/support/scripted.py): 100 projects x 20 services x 1 container = 2,000 containers
and 2,000 workloads. Both views are measured, each in its own app: `:ctr` (2,000 container
rows) and the default workloads view (2,000 service rows). The app's clock runs from
scripted.FIXED_NOW at real speed, so uptime cells tick as they would.

Load: a task emits 50 `InstanceChanged` per second (random container: running <-> exited,
health flips, restarts + 1), on an absolute schedule, for the whole measurement.

Figures, each per view:
  first full table  `Snapshot` of 2,000 instances emitted -> the `_flush` (wrapped) that
                    leaves 2,000 rows in the DataTable -> first frame painted with them.
  CPU               process CPU seconds / wall seconds over --cpu-seconds of load with no
                    key presses (time.process_time: all threads of this process, which also
                    runs the load generator and the terminal-output emulation).
  key -> repaint    200 keys in cycles of: ctrl+home (top), 6 x down, 2 x pagedown, 4 x up, `/`, 4 filter
                    characters (a service or project number), Esc (closes the prompt and
                    clears the filter: all rows come back), 2 x down. Each Key event is
                    put on the app's queue exactly as the driver (and Pilot) do; the
                    clock stops at the first frame that shows its effect: cursor on the
                    expected row *and visible*, prompt open, filter text applied, filter
                    cleared with all rows back. "Frame shows it" is decided by
                    FrameProbe (_common.py): the watched widget posted a repaint after the
                    effect, rendered its lines, nothing of it still queued, then `App._display`.
                    Pilot.press is not used for timing: it waits on CPU-idle heuristics.
                    Headless: each frame is also rendered to the escape-code string the Linux
                    driver would write (cost counted, string discarded).

Baseline in the same run: a bare Textual app with one DataTable holding the same 2,000 rows
(same cell texts and styles, rows added pre-sorted), the same 50 updates/s applied directly
with `update_cell`, and a naive `/` filter that clears the table and re-adds matching rows.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input

from backends.hub import Hub
from backends.model import Health, Instance, InstanceChanged, RunState, Snapshot, Source
from backends.rows import INSTANCE_COLUMNS, instance_row
from tests.bench._common import (
    CURSOR_AND_FILTER_KINDS,
    KEY_TIMEOUT,
    CpuMeter,
    CpuWindow,
    FrameProbe,
    KeyTimer,
    Paced,
    all_times,
    bare_data_table,
    cursor_in_view,
    cursor_keys,
    emit_summary,
    filter_keys,
    machine_line,
    paint_bare_rows,
    percentile,
    ratio,
    run_main,
    stats_line,
    steer,
    summary,
)
from tests.support.scripted import FIXED_NOW, ScriptedAdapter, make_instance
from tui.app import FerrymanApp
from tui.views.table import ResourceView, cell_text
from tui.widgets.chrome import Crumbs
from tui.widgets.prompt import Prompt

SIZE = (160, 50)
TARGET_KEY_P95_MS = 50.0


def build_instances(projects: int, services: int, replicas: int, rng: random.Random) -> list[Instance]:
    out = []
    for p in range(projects):
        for s in range(services):
            for r in range(1, replicas + 1):
                out.append(
                    make_instance(
                        f"proj{p:03d}",
                        f"svc{s:02d}",
                        r,
                        health=rng.choice((Health.HEALTHY, Health.HEALTHY, Health.NO_CHECK, Health.STARTING)),
                        started_minutes_ago=rng.uniform(0.5, 3000),
                        host_port=(20000 + len(out)) if rng.random() < 0.3 else None,
                    )
                )
    return out


def mutate(inst: Instance, rng: random.Random) -> Instance:
    roll = rng.random()
    if roll < 0.4:
        if inst.running:
            return replace(inst, state=RunState.EXITED, health=Health.STOPPED, exit_code=rng.choice((0, 1, 137)))
        return replace(inst, state=RunState.RUNNING, health=Health.STARTING, exit_code=None,
                       started_at=FIXED_NOW - timedelta(seconds=1))
    if roll < 0.8 and inst.running:
        options = [h for h in (Health.HEALTHY, Health.UNHEALTHY, Health.STARTING) if h != inst.health]
        return replace(inst, health=rng.choice(options))
    return replace(inst, restarts=inst.restarts + 1)


def random_changes(emit: Callable[[Instance], None], instances: list[Instance], rate: float, rng: random.Random) -> Paced:
    """Emits `rate` changes per second (a random instance of `instances`, mutated in place)
    on an absolute schedule until stopped."""

    def change() -> None:
        i = rng.randrange(len(instances))
        instances[i] = mutate(instances[i], rng)
        emit(instances[i])

    return Paced(rate, change)


@dataclass
class Result:
    name: str
    first_table_data_ms: float = float("nan")
    first_table_frame_ms: float = float("nan")
    cpu: CpuWindow = field(default_factory=CpuWindow)  # under load, no keys
    load_rate: float = float("nan")
    keys: dict[str, list[float]] = field(default_factory=dict)
    timeouts: int = 0

    def all_keys(self) -> list[float]:
        return all_times(self.keys)


def key_plan(rng: random.Random, count: int, projects: int, services: int) -> list[tuple[str, str]]:
    """(kind, key) pairs; one cycle: cursor moves, a page, a filter typed and cleared."""
    plan: list[tuple[str, str]] = []
    while len(plan) < count:
        plan += cursor_keys(4)
        word = rng.choice((f"svc{rng.randrange(services):02d}", f"j{rng.randrange(projects):03d}"))[-4:]
        plan += filter_keys(word)
        plan += [("down", "down")] * 2
    return plan[:count]


async def measure_keys(app, probe: FrameProbe, plan, surface, rng: random.Random, result: Result) -> None:  # noqa: ANN001
    """`surface` adapts the app under test: table(), prompt(), filter_text(), total_rows(), extra_widgets()."""
    typed = ""
    timer = KeyTimer(app, probe, rng, result.keys, KEY_TIMEOUT)
    for kind, key in plan:
        table = surface.table()
        before = table.cursor_row
        rows = table.row_count
        kind, key = steer(kind, key, before, rows)

        def visible() -> bool:
            return cursor_in_view(surface.table())

        if kind == "down":
            want = before + 1
            predicate = lambda want=want: surface.table().cursor_row == want and visible()  # noqa: E731
            widgets = [table]
        elif kind == "up":
            want = before - 1
            predicate = lambda want=want: surface.table().cursor_row == want and visible()  # noqa: E731
            widgets = [table]
        elif kind == "top":
            predicate = lambda: surface.table().cursor_row == 0 and visible()  # noqa: E731
            widgets = [table]
        elif kind == "pagedown":
            predicate = lambda before=before: surface.table().cursor_row > before and visible()  # noqa: E731
            widgets = [table]
        elif kind == "open filter /":
            typed = ""
            prompt = surface.prompt()
            predicate = lambda prompt=prompt: prompt.display and prompt.has_focus  # noqa: E731
            widgets = [prompt]
        elif kind == "filter char":
            typed += key
            predicate = lambda want=typed: surface.filter_text() == want  # noqa: E731
            widgets = [table, *surface.extra_widgets()]
        else:  # escape: prompt closed, filter cleared, all rows back
            prompt = surface.prompt()
            total = surface.total_rows()
            predicate = lambda prompt=prompt, total=total: (  # noqa: E731
                not prompt.display and surface.filter_text() == "" and surface.table().row_count == total
            )
            widgets = [table, *surface.extra_widgets()]
        if await timer.press(kind, key, probe.waiter(widgets, predicate)) is None:
            result.timeouts += 1
            print(f"    timeout: {kind} {key!r} not on screen after {KEY_TIMEOUT}s", flush=True)


async def measure_cpu(seconds: float, probe: FrameProbe, load: Paced, result: Result) -> None:
    sent0 = load.sent
    meter = CpuMeter(probe).start()
    await asyncio.sleep(seconds)
    result.cpu = meter.stop()
    result.load_rate = (load.sent - sent0) / result.cpu.seconds


# ---- Ferryman -------------------------------------------------------------------------------


class FerrymanSurface:
    def __init__(self, app: FerrymanApp) -> None:
        self.app = app

    def table(self) -> DataTable:
        return self.app.current_view.table

    def prompt(self) -> Prompt:
        return self.app.query_one(Prompt)

    def filter_text(self) -> str:
        return self.app.current_view.row_filter.text

    def total_rows(self) -> int:
        return len(self.app.current_view._objects)

    def extra_widgets(self) -> list:
        return [self.app.query_one(Crumbs)]


async def run_ferryman(view: str, args: argparse.Namespace, instances: list[Instance]) -> Result:
    result = Result(f"Ferryman {view}")
    rng = random.Random(args.seed)
    adapter = ScriptedAdapter()
    t_start = time.monotonic()
    app = FerrymanApp(Hub([adapter]), clock=lambda: FIXED_NOW + timedelta(seconds=time.monotonic() - t_start))
    expected_rows = len(instances) if view == "containers" else len({i.workload for i in instances})
    flush_state = {"full_at": None, "seconds": 0.0, "calls": 0}
    original_flush = ResourceView._flush

    def flush(self: ResourceView, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - pass-through
        t = time.perf_counter()
        original_flush(self, *args, **kwargs)
        flush_state["seconds"] += time.perf_counter() - t
        flush_state["calls"] += 1
        if flush_state["full_at"] is None and self.table.row_count == expected_rows:
            flush_state["full_at"] = time.perf_counter()

    ResourceView._flush = flush  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot:
            probe = FrameProbe(app).install()
            if view == "containers":
                await pilot.press(":", "c", "t", "r", "enter")
            await pilot.pause()
            adapter.emit(adapter.connected())
            await pilot.pause()
            table = app.current_view.table
            waiter = probe.waiter([table], lambda: app.current_view.table.row_count == expected_rows)
            t0 = time.perf_counter()
            adapter.emit(Snapshot(Source.COMPOSE, tuple(instances)))
            t_frame = await asyncio.wait_for(waiter.future, 60)
            result.first_table_data_ms = (flush_state["full_at"] - t0) * 1000
            result.first_table_frame_ms = (t_frame - t0) * 1000

            live = list(instances)
            load = random_changes(lambda inst: adapter.emit(InstanceChanged(inst)), live, args.rate, random.Random(args.seed + 1))
            load_task = asyncio.create_task(load.run())
            await asyncio.sleep(2)  # settle: the load is running, nothing else
            calls0, secs0 = flush_state["calls"], flush_state["seconds"]
            await measure_cpu(args.cpu_seconds, probe, load, result)
            calls, secs = flush_state["calls"] - calls0, flush_state["seconds"] - secs0
            print(
                f"    [{view}] during the CPU window: {calls} flushes, mean {secs / max(calls, 1) * 1000:.2f} ms, "
                f"{result.cpu.frames_per_s:.1f} frames/s, load {result.load_rate:.1f} changes/s",
                flush=True,
            )
            plan = key_plan(rng, args.keys, args.projects, args.services)
            await measure_keys(app, probe, plan, FerrymanSurface(app), rng, result)
            load.stop()
            await load_task
    finally:
        ResourceView._flush = original_flush  # type: ignore[method-assign]
    return result


# ---- the bare baseline -----------------------------------------------------------------------


class BareTableApp(App[None]):
    """One DataTable, an Input for a naive filter; nothing else."""

    CSS = "DataTable { height: 1fr; } Input { dock: bottom; display: none; } Input.-open { display: block; }"
    BINDINGS = [Binding("slash", "filter", "Filter")]

    def __init__(self, rows: dict[str, tuple[Text, ...]]) -> None:
        super().__init__()
        self.rows = rows  # key -> rendered cells, kept in sync with the updates
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield bare_data_table(INSTANCE_COLUMNS)
        yield Input(id="filter")

    def action_filter(self) -> None:
        box = self.query_one(Input)
        box.value = ""
        box.add_class("-open")
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._apply(event.value)

    def on_key(self, event) -> None:  # noqa: ANN001
        box = self.query_one(Input)
        if event.key == "escape" and box.display:
            event.stop()
            box.display = False
            box.remove_class("-open")
            self._apply("")
            self.query_one(DataTable).focus()

    def _apply(self, text: str) -> None:
        if text == self.filter_text:
            return
        self.filter_text = text
        table = self.query_one(DataTable)
        pattern = re.compile(re.escape(text), re.IGNORECASE)
        table.clear()
        for key, cells in self.rows.items():
            if not text or any(pattern.search(c.plain) for c in cells):
                table.add_row(*cells, key=key)


class BareSurface:
    def __init__(self, app: BareTableApp) -> None:
        self.app = app

    def table(self) -> DataTable:
        return self.app.query_one(DataTable)

    def prompt(self) -> Input:
        return self.app.query_one(Input)

    def filter_text(self) -> str:
        return self.app.filter_text

    def total_rows(self) -> int:
        return len(self.app.rows)

    def extra_widgets(self) -> list:
        return []


async def run_bare(args: argparse.Namespace, instances: list[Instance]) -> Result:
    result = Result("bare DataTable")
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    now = lambda: FIXED_NOW + timedelta(seconds=time.monotonic() - t_start)  # noqa: E731
    ordered = sorted(instances, key=lambda i: (str(i.workload).lower(), i.name.lower()))
    rows = {i.key: tuple(cell_text(c) for c in instance_row(i, now())) for i in ordered}
    app = BareTableApp({})
    async with app.run_test(size=SIZE) as pilot:
        app.rows = rows
        probe, result.first_table_data_ms, result.first_table_frame_ms = await paint_bare_rows(app, pilot, rows, 60)
        table = app.query_one(DataTable)

        columns = [c.key for c in INSTANCE_COLUMNS]

        def apply(inst: Instance) -> None:
            cells = tuple(cell_text(c) for c in instance_row(inst, now()))
            old = app.rows[inst.key]
            app.rows[inst.key] = cells
            if inst.key not in table.rows:
                return
            for column, a, b in zip(columns, old, cells, strict=True):
                if a != b:
                    table.update_cell(inst.key, column, b)

        live = list(instances)
        load = random_changes(apply, live, args.rate, random.Random(args.seed + 1))
        load_task = asyncio.create_task(load.run())
        await asyncio.sleep(2)
        await measure_cpu(args.cpu_seconds, probe, load, result)
        print(
            f"    [bare] during the CPU window: {result.cpu.frames_per_s:.1f} frames/s, load {result.load_rate:.1f} changes/s",
            flush=True,
        )
        plan = key_plan(rng, args.keys, args.projects, args.services)
        await measure_keys(app, probe, plan, BareSurface(app), rng, result)
        load.stop()
        await load_task
    return result


# ---- report ----------------------------------------------------------------------------------


def report(results: list[Result], args: argparse.Namespace) -> dict:
    base = results[0]
    print()
    print(
        f"large_table: {args.projects * args.services * args.replicas} instances "
        f"({args.projects} projects x {args.services} services x {args.replicas}), {args.rate:g} changes/s, "
        f"terminal {SIZE[0]}x{SIZE[1]}"
    )
    out: dict = {}
    for r in results:
        print(f"\n {r.name}:")
        print(
            f"  first full table: rows in table {r.first_table_data_ms:8.1f} ms, painted {r.first_table_frame_ms:8.1f} ms"
            + ("" if r is base else f"   (painted vs bare: {ratio(r.first_table_frame_ms, base.first_table_frame_ms)})")
        )
        print(
            f"  CPU under load, no keys: {r.cpu.cpu_percent:5.1f} % of one core ({r.load_rate:.1f} changes/s achieved)"
            + ("" if r is base else f"   (vs bare: {ratio(r.cpu.cpu_percent, base.cpu.cpu_percent)})")
        )
        print(
            f"    {r.cpu.frames_per_s:.1f} frames/s painted, {r.cpu.ms_per_frame:.0f} ms CPU per frame, "
            f"{r.cpu.output_share:.0f} % of the CPU in the emulated terminal output; "
            f"other processes used {r.cpu.others_cores:.2f} cores meanwhile"
        )
        print("  key press -> painted frame:")
        for kind in CURSOR_AND_FILTER_KINDS:
            if kind in r.keys:
                line = stats_line(kind, r.keys[kind], 24)
                if r is not base and kind in base.keys:
                    line += f"  p95 vs bare {ratio(percentile(r.keys[kind], 95), percentile(base.keys[kind], 95))}"
                print(line)
        allk = r.all_keys()
        line = stats_line("ALL keys", allk, 24)
        if r is not base:
            line += f"  p95 vs bare {ratio(percentile(allk, 95), percentile(base.all_keys(), 95))}"
        print(line)
        if r.timeouts:
            print(f"  !! {r.timeouts} key(s) never reached the screen within {KEY_TIMEOUT:g}s")
        out[r.name] = {
            "first_table_ms": r.first_table_frame_ms,
            "cpu_percent": r.cpu.cpu_percent,
            "frames_per_s": r.cpu.frames_per_s,
            "others_cores": r.cpu.others_cores,
            "keys": summary(allk),
            "keys_by_kind": {k: summary(v) for k, v in r.keys.items()},
            "timeouts": r.timeouts,
        }
    print()
    for r in results[1:]:
        p95 = percentile(r.all_keys(), 95)
        print(f" target {r.name}: key p95 < {TARGET_KEY_P95_MS:.0f} ms: {'MET' if p95 < TARGET_KEY_P95_MS and not r.timeouts else 'MISSED'} (p95 {p95:.1f} ms)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--cpu-seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--views", default="bare,containers,workloads", help="comma list; bare is the baseline")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print("large_table:", machine_line(), flush=True)
    instances = build_instances(args.projects, args.services, args.replicas, random.Random(args.seed))
    results: list[Result] = []
    for name in args.views.split(","):
        print(f"  running {name}...", flush=True)
        if name == "bare":
            results.append(asyncio.run(run_bare(args, instances)))
        else:
            results.append(asyncio.run(run_ferryman(name, args, instances)))
    summary_data = report(results, args)
    emit_summary("large_table", summary_data)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
