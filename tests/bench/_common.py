"""Shared helpers of the benchmark scripts: statistics, clean-up on signals, the
frame probe that says when a change has reached a painted frame, key injection and
timing, a paced load, CPU windows, the bare DataTable baseline, machine facts and the
one-line summary `run_all` collects.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import platform
import random
import signal
import threading
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.pilot import key_event, send_key  # noqa: F401 - shared with the tests

SUMMARY_PREFIX = "BENCH-SUMMARY "


# ---- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): a value that was actually observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "median": math.nan, "p95": math.nan, "max": math.nan, "min": math.nan}
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "max": max(values),
    }


def steer(kind: str, key: str, cursor: int, rows: int) -> tuple[str, str]:
    """A navigation key that would do nothing at the table's edge becomes one that moves
    (a key with no visible effect would never paint, so it cannot be timed)."""
    if kind == "top" and cursor == 0:
        return "down", "down"
    if kind == "down" and cursor >= rows - 1:
        return "up", "up"
    if kind == "up" and cursor <= 0:
        return "down", "down"
    if kind == "pagedown" and cursor >= rows - 60:
        return "up", "up"
    return kind, key


def fmt_ms(value: float) -> str:
    return "   n/a" if value is None or math.isnan(value) else f"{value:7.1f}"


def stats_line(label: str, values_ms: Sequence[float], width: int = 40) -> str:
    s = summary(values_ms)
    return (
        f"  {label:<{width}} n={s['n']:<4} median {fmt_ms(s['median'])}  p95 {fmt_ms(s['p95'])}"
        f"  max {fmt_ms(s['max'])}  (ms)"
    )


def ratio(a: float, b: float) -> str:
    if b is None or a is None or math.isnan(a) or math.isnan(b) or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def emit_summary(name: str, data: dict[str, Any]) -> None:
    """One machine-readable line for run_all (NaN becomes null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    print(SUMMARY_PREFIX + json.dumps({"bench": name, **clean(data)}), flush=True)


# ---- clean-up on signals ----------------------------------------------------------------


def exit_cleanly_on_signals() -> None:
    """SIGTERM/SIGHUP raise KeyboardInterrupt like Ctrl-C does, so `finally` blocks that
    take down compose projects and tmux sessions always run."""

    def handler(signum, _frame):  # noqa: ANN001
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_main(main: Callable[[], int]) -> int:
    """Run a benchmark's main(); an interrupt (after its clean-up ran) exits with 130."""
    exit_cleanly_on_signals()
    try:
        return main()
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); cleaned up", file=sys.stderr, flush=True)
        return 130


# ---- machine facts ----------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    import textual

    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores (usable {len(os.sched_getaffinity(0))}), "
        f"Python {platform.python_version()}, Textual {textual.__version__}, load avg {load_average()}"
    )


# ---- keys -------------------------------------------------------------------------------

KEY_TIMEOUT = 30.0
CURSOR_AND_FILTER_KINDS = ("top", "down", "up", "pagedown", "open filter /", "filter char", "escape (clear filter)")


def cursor_keys(ups: int) -> list[tuple[str, str]]:
    """(kind, key) pairs of the cursor part of a key cycle: top, 6 down, 2 pagedown, `ups` up.
    One definition, so that the benchmarks that compare cursor keys time the same moves."""
    return [("top", "ctrl+home")] + [("down", "down")] * 6 + [("pagedown", "pagedown")] * 2 + [("up", "up")] * ups


def filter_keys(word: str) -> list[tuple[str, str]]:
    """`/`, `word` typed a character at a time, Esc: the filter part of a key cycle (Esc
    closes the prompt and clears the filter, so every row comes back)."""
    return [("open filter /", "slash")] + [("filter char", c) for c in word] + [("escape (clear filter)", "escape")]


def all_times(by_kind: dict[str, list[float]]) -> list[float]:
    """Every key time of a {kind: times} record, for the "ALL keys" figures."""
    return [v for vs in by_kind.values() for v in vs]


def cursor_in_view(table: Any) -> bool:
    """The cursor row is scrolled into view: a cursor key's effect is only on screen then,
    so key waiters ask this as well as where the cursor is."""
    header = table.header_height if table.show_header else 0
    view_rows = table.scrollable_content_region.height - header
    return table.scroll_y <= table.cursor_row < table.scroll_y + view_rows


class KeyTimer:
    """Times key presses the same way in every benchmark: the key goes on the app's queue as
    the driver puts it (`send_key`; Pilot.press would wait on CPU-idle heuristics), the clock
    stops at the first painted frame that shows its effect (a FrameWaiter), and then comes a
    typist's pause of 30-80 ms, so keys are not in lock-step with the app's timers.

    A key whose effect is not on screen within `timeout` is not timed: its waiter is
    cancelled and `press` returns None, for the caller to count and say."""

    def __init__(self, app: Any, probe: FrameProbe, rng: random.Random, into: dict[str, list[float]],
                 timeout: float = KEY_TIMEOUT) -> None:
        self.app = app
        self.probe = probe
        self.rng = rng
        self.into = into  # kind -> milliseconds
        self.timeout = timeout

    async def press(self, kind: str, key: str,
                    waiter: FrameWaiter | Callable[[], Awaitable[FrameWaiter]]) -> float | None:
        """Milliseconds from the key to the frame that shows it, or None after a timeout.
        `waiter` may be a coroutine function that gives the waiter once it can be made (when
        the key mounts the widget to watch); its wait is bounded by the same timeout."""
        t0 = time.perf_counter()
        send_key(self.app, key)
        try:
            if not isinstance(waiter, FrameWaiter):
                waiter = await asyncio.wait_for(waiter(), self.timeout)
            t1 = await asyncio.wait_for(asyncio.shield(waiter.future), self.timeout)
        except TimeoutError:
            if isinstance(waiter, FrameWaiter):
                self.probe.cancel(waiter)
            return None
        ms = (t1 - t0) * 1000
        self.into.setdefault(kind, []).append(ms)
        await asyncio.sleep(self.rng.uniform(0.03, 0.08))
        return ms


# ---- the frame probe --------------------------------------------------------------------


@dataclass(eq=False)
class FrameWaiter:
    """Resolves with the perf_counter time of the first frame that shows an effect.

    The effect is `predicate()`; `widgets` are the widgets whose repaint shows it."""

    widgets: tuple
    predicate: Callable[[], bool]
    future: asyncio.Future
    created: float = field(default_factory=time.perf_counter)
    posted: set = field(default_factory=set)  # widgets that sent a repaint with the effect in
    rendered: set = field(default_factory=set)  # ... and have rendered lines since
    frame_wall_ns: int | None = None  # time.time_ns() of the resolving frame


class FrameProbe:
    """Knows when a frame is painted, and when a given change is in a painted frame.

    A frame is one `App._display` call (Textual: compositor update -> terminal). Under
    `run_test` the app is headless and `_display` writes nothing; with `emulate_output`
    the probe does the one step it skips — `CompositorUpdate.render_segments`, turning
    the update into the escape-code string the Linux driver would write — so its cost
    is counted; the string is discarded.

    A waiter resolves at the first frame such that:
      1. its predicate holds (the effect is in the widgets' state),
      2. a watched widget posted a repaint to the screen while the predicate held
         (Widget._check_refresh with a repaint/layout/scroll flag set), and rendered
         lines (render_lines) after that, and
      3. no watched widget still has a refresh on its way: no repaint/layout/scroll flag
         set, and no Update/Layout/UpdateScroll message for it queued to the screen.
    (3) can make a waiter wait one extra frame when an unrelated refresh of the same
    widget is in flight at that instant: a conservative error, never an optimistic one.
    Under a continuous stream of refreshes (a log view in a flood repaints 20 times a
    second) some refresh is in flight at nearly every frame and (3) would wait for a lull
    that does not come: `settled=False` leaves (3) out, for widgets that draw from their
    current state whenever they render (line-API widgets such as the log view's body,
    whose rows come from `scroll_y` at render time), where (2) alone means the frame
    shows the effect.
    """

    def __init__(self, app, *, emulate_output: bool = True, settled: bool = True) -> None:  # noqa: ANN001
        self.app = app
        self.emulate_output = emulate_output
        self.settled = settled
        self.frames = 0
        self.frame_times: list[float] = []
        self.output_chars = 0
        self.output_seconds = 0.0
        self.keep_frame_times = False
        self._waiters: list[FrameWaiter] = []
        self._watched: set[int] = set()
        self._installed = False

    def install(self) -> FrameProbe:
        if self._installed:
            return self
        from textual._compositor import CompositorUpdate

        app = self.app
        original = app._display

        def display(screen, renderable) -> None:  # noqa: ANN001
            original(screen, renderable)
            if renderable is None or app._batch_count:
                return
            if self.emulate_output and app.is_headless and isinstance(renderable, CompositorUpdate):
                t = time.perf_counter()
                self.output_chars += len(renderable.render_segments(app.console))
                self.output_seconds += time.perf_counter() - t
            now = time.perf_counter()
            self.frames += 1
            if self.keep_frame_times:
                self.frame_times.append(now)
            if self._waiters:
                self._check(now)

        app._display = display
        self._installed = True
        return self

    def watch(self, *widgets) -> None:  # noqa: ANN002
        for widget in widgets:
            if id(widget) in self._watched:
                continue
            self._watched.add(id(widget))
            self._wrap(widget)

    def _wrap(self, widget) -> None:  # noqa: ANN001
        check_refresh = widget._check_refresh
        render_lines = widget.render_lines

        def wrapped_check_refresh() -> None:
            had = widget._repaint_required or widget._layout_required or widget._scroll_required
            check_refresh()
            if had:
                for w in self._waiters:
                    if widget in w.widgets and w.predicate():
                        w.posted.add(widget)
                        w.rendered.discard(widget)

        def wrapped_render_lines(crop):  # noqa: ANN001, ANN202
            for w in self._waiters:
                if widget in w.posted:
                    w.rendered.add(widget)
            return render_lines(crop)

        widget._check_refresh = wrapped_check_refresh
        widget.render_lines = wrapped_render_lines

    def waiter(self, widgets: Iterable, predicate: Callable[[], bool]) -> FrameWaiter:
        widgets = tuple(widgets)
        self.watch(*widgets)
        waiter = FrameWaiter(widgets, predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        return waiter

    def cancel(self, waiter: FrameWaiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    def _pending(self, widget) -> bool:  # noqa: ANN001
        from textual import messages

        if widget._repaint_required or widget._layout_required or widget._scroll_required:
            return True
        try:
            queued = list(self.app.screen._message_queue._queue)  # asyncio.Queue's deque
        except Exception:  # noqa: BLE001
            return False
        for message in queued:
            if isinstance(message, messages.UpdateScroll):
                return True
            if isinstance(message, (messages.Update, messages.Layout)) and message.widget is widget:
                return True
        return False

    def _check(self, now: float) -> None:
        for w in list(self._waiters):
            if w.future.done():
                self._waiters.remove(w)
                continue
            if not w.posted or not w.posted <= w.rendered:
                continue
            if not w.predicate() or (self.settled and any(self._pending(x) for x in w.widgets)):
                continue
            self._waiters.remove(w)
            w.frame_wall_ns = time.time_ns()
            w.future.set_result(now)


# ---- load and CPU windows ---------------------------------------------------------------


class Paced:
    """Calls `step()` `rate` times a second on an absolute schedule until `stop()`: a late
    step does not push back the ones after it, so the rate holds on average, and the steps
    that came late are counted (`late`) instead of silently lowering the rate."""

    def __init__(self, rate: float, step: Callable[[], object]) -> None:
        self.rate = rate
        self.step = step
        self.sent = 0
        self.late = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        period = 1 / self.rate
        next_at = time.perf_counter()
        while not self._stop.is_set():
            self.step()
            self.sent += 1
            next_at += period
            delay = next_at - time.perf_counter()
            if delay < 0:
                self.late += 1
            await asyncio.sleep(max(0.0, delay))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class CpuWindow:
    """What one stretch of wall time cost this process: CPU, frames painted, the share of the
    CPU spent emulating terminal output, and the cores other processes used meanwhile (a
    figure from a busy machine reads differently)."""

    seconds: float = math.nan
    cpu_seconds: float = math.nan
    cpu_percent: float = math.nan  # of one core
    frames: int = 0
    frames_per_s: float = math.nan
    output_share: float = math.nan  # % of cpu_seconds
    others_cores: float = math.nan

    @property
    def ms_per_frame(self) -> float:
        return self.cpu_seconds / max(self.frames, 1) * 1000


class CpuMeter:
    """Measures a CpuWindow: `start()`, let the work run, `stop()`. Garbage is collected
    first, so a collection owed to what came before is not billed to the window."""

    def __init__(self, probe: FrameProbe, own_pids: Iterable[int] = ()) -> None:
        self.probe = probe
        self.own_pids = list(own_pids)

    def start(self) -> CpuMeter:
        gc.collect()
        self._machine = MachineLoad(self.own_pids).start()
        self._frames0, self._output0 = self.probe.frames, self.probe.output_seconds
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        return self

    def stop(self, into: CpuWindow | None = None) -> CpuWindow:
        """The figures since start(), written into `into` (a CpuWindow or a subclass with more
        figures) or a new CpuWindow."""
        cpu_s, wall = time.process_time() - self._cpu0, time.perf_counter() - self._wall0
        window = CpuWindow() if into is None else into
        window.seconds = wall
        window.cpu_seconds = cpu_s
        window.cpu_percent = cpu_s / wall * 100
        window.others_cores = self._machine.stop()["others_busy_cores"]
        window.frames = self.probe.frames - self._frames0
        window.frames_per_s = window.frames / wall
        window.output_share = (self.probe.output_seconds - self._output0) / max(cpu_s, 1e-9) * 100
        return window


def process_cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    return time.process_time()


class MachineLoad:
    """CPU used by the whole machine (/proc/stat) over a window, and by other processes:
    the benchmarks share the machine, and this says how much they had to share it."""

    def __init__(self, own_pids: Iterable[int] = ()) -> None:
        self.own_pids = list(own_pids) or [os.getpid()]

    @staticmethod
    def _busy_and_total() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        total = sum(fields[:8])
        return total - idle, total

    def _own_ticks(self) -> int:
        ticks = 0
        for pid in self.own_pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                ticks += int(parts[11]) + int(parts[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                pass
        return ticks

    def start(self) -> MachineLoad:
        self._b0, self._t0 = self._busy_and_total()
        self._o0 = self._own_ticks()
        self._w0 = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        b1, t1 = self._busy_and_total()
        o1 = self._own_ticks()
        wall = time.monotonic() - self._w0
        hz = os.sysconf("SC_CLK_TCK")
        busy_cores = (b1 - self._b0) / hz / wall
        own_cores = (o1 - self._o0) / hz / wall
        return {
            "machine_busy_cores": busy_cores,
            "others_busy_cores": max(0.0, busy_cores - own_cores),
            "cores": os.cpu_count() or 1,
        }


def load_note(stats: dict[str, float]) -> str:
    return (
        f"machine busy {stats['machine_busy_cores']:.2f} of {stats['cores']} cores, "
        f"of which other processes {stats['others_busy_cores']:.2f}"
    )


class ForeignEvents:
    """Counts Compose container events of projects other than ours (a shared engine)."""

    def __init__(self, client, ours: str) -> None:
        self.ours = ours
        self.counting = False
        self.total = 0
        self.state = 0
        self.stream = client.events(
            decode=True, filters={"type": "container", "label": ["com.docker.compose.project"]}
        )
        threading.Thread(target=self._run, daemon=True, name="foreign-events").start()

    def _run(self) -> None:
        try:
            for ev in self.stream:
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                if self.counting and attrs.get("com.docker.compose.project") != self.ours:
                    self.total += 1
                    if not str(ev.get("Action", "")).startswith("exec_"):
                        self.state += 1
        except Exception:  # noqa: BLE001 - closed at the end
            return

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001
            pass


# ---- the bare DataTable baseline ---------------------------------------------------------


def bare_data_table(columns: Iterable) -> Any:
    """The baselines' DataTable: row cursor, no zebra stripes, one column per column spec
    (`.title`, `.key`) of the Ferryman view it stands for, so both draw the same columns."""
    from textual.widgets import DataTable

    table: DataTable = DataTable(cursor_type="row", zebra_stripes=False)
    for column in columns:
        table.add_column(column.title, key=column.key)
    return table


async def paint_bare_rows(app: Any, pilot: Any, rows: dict, timeout: float) -> tuple[FrameProbe, float, float]:
    """Installs a FrameProbe on a bare app and adds `rows` ({key: cells}, pre-sorted) to its
    one DataTable: Textual's own cost of a first full table, next to Ferryman's. Returns the
    probe and the milliseconds from the first add_row to all rows added, and to the first
    frame painted with them."""
    from textual.widgets import DataTable

    probe = FrameProbe(app).install()
    await pilot.pause()
    table = app.query_one(DataTable)
    waiter = probe.waiter([table], lambda: table.row_count == len(rows))
    t0 = time.perf_counter()
    for key, cells in rows.items():
        table.add_row(*cells, key=key)
    t_data = time.perf_counter()
    t_frame = await asyncio.wait_for(waiter.future, timeout)
    return probe, (t_data - t0) * 1000, (t_frame - t0) * 1000


def stdin_commands() -> asyncio.Queue[dict | None]:
    """A child process's commands from its parent: one JSON object a line on stdin, put on
    the returned queue from a reader thread; None once stdin ends (the parent is gone).
    Call from the child's event loop."""
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[dict | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(commands.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True, name="commands").start()
    return commands
