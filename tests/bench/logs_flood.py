"""One container flooding its log: lines/s that Ferryman shows next to `docker logs -f`,
key press -> repaint during the flood, and peak RSS after 1,000,000 lines.

    .venv/bin/python -m tests.bench.logs_flood [--seconds 30] [--key-seconds 20] [--lines 1000000]

A real compose project on the real engine (the busybox test image), two services:
  flood  a shell loop writing numbered lines as fast as it can for the whole run:
         `flood 123456 GET /api/orders 200 12ms user=42 trace=abcdef0123456789` (~70 bytes);
  quiet  writes 100,000 such lines at start, then nothing (the baseline view below).
The engine's default log driver (json-file) stores the lines; every reader below reads them
back through the engine's API while the flood container keeps writing.

Phases, one after the other, the flood container running throughout:
  docker logs   `docker logs -f --tail 0 <flood>`, stdout piped to a counting thread of this
                process (newlines counted in 1 MB reads: the stand-in for `> /dev/null`), for
                --seconds / 2 before Ferryman and again after it; lines/s = lines / seconds
                over both windows (a machine that slows down in between shows in both).
  Ferryman      `FerrymanApp(Hub([ComposeAdapter()]), readonly=True, freeze_startup=True)` (as
                the command line runs it) in this process under
                `run_test(size=(200, 50))`, the log view opened on the flood container the
                way `l` on its row does (`app.open_logs`; default config: tail 500, a
                100,000-line buffer). After 3 s to settle, --seconds without keys:
                  buffer   lines appended to the view's LogBuffer (`buffer.end`) per second;
                  shown    how fast the index of the newest *painted* line advances (the
                           body's `render_line` is wrapped; a frame is `App._display`): the
                           figure the target is about;
                  lag      how far the painted line is behind the buffer, and behind what the
                           container has written (its line numbers).
                Then --key-seconds of keys during the flood, in cycles: `f` (pause), 3 x up,
                2 x down, up, pagedown, `/`, three digits typed into the search, Esc (search
                cleared), `f` (follow again), 0.5 s of following. Each key is put on the app's
                queue as the driver does (`_common.send_key`); the clock stops at the first
                frame that shows its effect (FrameProbe, `settled=False`: in a flood some
                repaint of the body is always in flight): paused / following, the cursor on
                the expected line and in view, the prompt open and focused, the search applied,
                the prompt closed with no search. Meanwhile a task sleeping 20 ms at a time
                records how late it wakes (the event loop's lag).
  memory        this process's RSS (psutil, sampled 10/s; and ru_maxrss) from before the app
                until at least --lines lines have passed through the flood view since it
                opened (it keeps following after the keys).
  baseline keys the same key plan for --key-seconds on a view of the *quiet* container, its
                100,000 lines loaded (tail: all), while the flood container keeps writing:
                the same machine load and the same search over 100,000 lines, without the
                ingestion. The difference is what following the flood costs the keys.

Also shown: the container's own write rate, this process's CPU (% of one core: the loop
and every thread), and how busy the machine was (2 cores: the container, dockerd and the
reader share them).
Targets: shown lines/s >= 50 % of `docker logs -f`; key p95 < 100 ms; peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

from backends.compose import ComposeAdapter
from backends.hub import Hub
from backends.logfollow import LogFollower
from backends.logs import LogKind, LogOptions, targets_of
from backends.logtext import LogBuffer
from backends.model import RunState
from tests.bench._common import (
    KEY_TIMEOUT,
    CpuMeter,
    CpuWindow,
    FrameProbe,
    KeyTimer,
    MachineLoad,
    all_times,
    emit_summary,
    fmt_ms,
    load_note,
    machine_line,
    percentile,
    ratio,
    run_main,
    stats_line,
    summary,
)
from tests.support.dockerenv import TEST_IMAGE, ComposeProject, ensure_test_image
from tests.support.pilot import wait_for
from tui.app import FerrymanApp
from tui.widgets.log_lines import LogLines
from tui.widgets.log_view import LogScreen

SIZE = (200, 50)
TARGET_RATIO = 0.5
TARGET_KEY_P95_MS = 100.0
TARGET_RSS_MB = 300.0
SETTLE_SECONDS = 3.0
QUIET_LINES = 100_000
LINE = 'echo "flood $$i GET /api/orders 200 12ms user=42 trace=abcdef0123456789"'  # "$$": Compose's "$"
FLOOD = f"i=0; while :; do i=$$((i+1)); {LINE}; done"
QUIET = f"i=0; while [ $$i -lt {QUIET_LINES} ]; do i=$$((i+1)); {LINE}; done; exec sleep 100000"
NUMBER = re.compile(rb"flood (\d+) ")
KEY_KINDS = ("f pause", "up", "pagedown", "down", "open search /", "search char", "escape (clear search)", "f follow")
MB = 2**20


# ---- the containers ---------------------------------------------------------------------------


def written(client: docker.DockerClient, cid: str) -> int:
    """How many lines the container has written so far (its last line's number)."""
    found = NUMBER.findall(client.api.logs(cid, stdout=True, stderr=False, tail=1))
    return int(found[-1]) if found else 0


@dataclass
class Producer:
    """The flood container's write rate over a phase."""

    start: int = 0
    end: int = 0
    seconds: float = float("nan")

    @property
    def rate(self) -> float:
        return (self.end - self.start) / self.seconds if self.seconds else float("nan")


# ---- docker logs -f ---------------------------------------------------------------------------


@dataclass
class DockerLogs:
    lines: int = 0
    seconds: float = 0.0
    behind: int = 0  # lines the container had written that `docker logs` had not shown at the end
    producer: Producer = field(default_factory=Producer)
    machine: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else float("nan")


def run_docker_logs(client: docker.DockerClient, cid: str, seconds: float) -> DockerLogs:
    result = DockerLogs()
    proc = subprocess.Popen(["docker", "logs", "-f", "--tail", "0", cid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    counted = {"lines": 0, "tail": b""}

    def count() -> None:
        while chunk := os.read(fd, 1 << 20):
            counted["lines"] += chunk.count(b"\n")
            counted["tail"] = chunk[-200:]

    reader = threading.Thread(target=count, daemon=True, name="docker-logs-counter")
    load = MachineLoad([os.getpid(), proc.pid]).start()
    result.producer.start = written(client, cid)
    t0 = time.perf_counter()
    reader.start()
    try:
        time.sleep(seconds)
        lines, tail = counted["lines"], counted["tail"]
        result.seconds = time.perf_counter() - t0
        result.producer.end = written(client, cid)
        result.producer.seconds = result.seconds
        result.machine = load.stop()
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
    result.lines = lines
    numbers = NUMBER.findall(tail)
    result.behind = max(0, result.producer.end - int(numbers[-1])) if numbers else -1
    return result


def combined(runs: list[DockerLogs]) -> DockerLogs:
    return DockerLogs(lines=sum(r.lines for r in runs), seconds=sum(r.seconds for r in runs))


# ---- Ferryman ---------------------------------------------------------------------------------


class RssSampler:
    """This process's RSS, sampled from a thread (10/s): the peak and the latest value."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = self.now()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="rss").start()

    def now(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.now())

    def close(self) -> None:
        self._stop.set()


class Painted:
    """The newest line index the log body has rendered, as of the last frame: the body's
    `render_line` is wrapped (it notes the index it draws), a frame commits it."""

    def __init__(self, app, body: LogLines) -> None:  # noqa: ANN001
        self.rendering = -1
        self.index = -1  # as of the last frame
        render_line = body.render_line

        def wrapped(y: int):  # noqa: ANN202
            rows = body._layout()
            if y < len(rows):
                self.rendering = max(self.rendering, body.index_at(rows[y][0]))
            return render_line(y)

        body.render_line = wrapped  # type: ignore[method-assign]
        display = app._display

        def frame(screen, renderable) -> None:  # noqa: ANN001
            display(screen, renderable)
            if renderable is not None and not app._batch_count:
                self.index = max(self.index, self.rendering)

        app._display = frame


class LoopLag:
    """How late a task sleeping 20 ms at a time wakes: what any callback waits for the loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []  # ms
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.02)
            self.samples.append((time.perf_counter() - t - 0.02) * 1000)

    async def stop(self) -> list[float]:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.samples


@dataclass
class Keys:
    """Key press -> painted frame on one view, and what the process and the loop did meanwhile."""

    times: dict[str, list[float]] = field(default_factory=dict)
    timeouts: int = 0
    lag: list[float] = field(default_factory=list)
    cpu: CpuWindow = field(default_factory=CpuWindow)
    buffer_rate: float = float("nan")

    def all(self) -> list[float]:
        return all_times(self.times)


@dataclass
class Ferryman:
    seconds: float = float("nan")
    buffer_lines: int = 0
    shown_lines: int = 0
    view_behind: list[int] = field(default_factory=list)  # buffer.end - 1 - painted, sampled 10/s
    behind_producer: int = 0  # lines written by the container and not painted, at the end
    producer: Producer = field(default_factory=Producer)
    cpu: CpuWindow = field(default_factory=CpuWindow)
    keys: Keys = field(default_factory=Keys)
    baseline: Keys = field(default_factory=Keys)
    rss_before: int = 0
    rss_at_lines: int = 0
    rss_peak: int = 0
    maxrss: int = 0
    lines_through: int = 0
    memory_seconds: float = float("nan")
    buffer_len: int = 0
    buffer_bytes: int = 0
    dropped: int = 0
    markers: list[str] = field(default_factory=list)

    @property
    def buffer_rate(self) -> float:
        return self.buffer_lines / self.seconds if self.seconds else float("nan")

    @property
    def shown_rate(self) -> float:
        return self.shown_lines / self.seconds if self.seconds else float("nan")


def number_of(text: str) -> int:
    found = NUMBER.search(text.encode())
    return int(found.group(1)) if found else 0


async def press_keys(app, screen: LogScreen, probe: FrameProbe, seconds: float, rng: random.Random) -> Keys:  # noqa: ANN001
    body, search, buffer = screen.body, screen._search_input, screen.session.buffer
    result = Keys()
    timer = KeyTimer(app, probe, rng, result.times, KEY_TIMEOUT)

    def in_view(index: int) -> bool:
        top = int(body.scroll_y)
        return top <= body.position_of(index) < top + body.visible_height

    def cursor_up(before: int):  # noqa: ANN202
        # A line evicted meanwhile (a flood turns the buffer over every few seconds): the
        # cursor moves to the oldest retained line, and that is the key's effect then.
        want = before - 1
        return lambda: (body.cursor is not None and body.cursor == max(want, buffer.first)
                        and not body.following and in_view(body.cursor))

    def cursor_down(before: int, delta: int):  # noqa: ANN202
        # Clamped at the last line the view had when the key was handled (lines keep coming).
        return lambda: (body.cursor is not None and before < body.cursor <= before + delta
                        and not body.following and in_view(body.cursor))

    async def press(kind: str, key: str, widgets: list, predicate) -> None:  # noqa: ANN001
        if await timer.press(kind, key, probe.waiter(widgets, predicate)) is None:
            result.timeouts += 1
            print(f"    timeout: {kind} {key!r} not on screen after {KEY_TIMEOUT:g}s", flush=True)

    lag = LoopLag()
    meter = CpuMeter(probe).start()
    end0, t0 = buffer.end, time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        await press("f pause", "f", [body], lambda: not body.following and body.cursor is not None)
        # Up first: paused at the last line, down has nowhere to go on a quiet view.
        for _ in range(3):
            await press("up", "up", [body], cursor_up(body.cursor))
        for _ in range(2):
            await press("down", "down", [body], cursor_down(body.cursor, 1))
        await press("up", "up", [body], cursor_up(body.cursor))
        await press("pagedown", "pagedown", [body], cursor_down(body.cursor, body.visible_height))
        await press("open search /", "slash", [search], lambda: search.display and search.has_focus)
        typed = ""
        for char in rng.choice(("999", "123", "777", "405")):
            typed += char
            await press("search char", char, [body], lambda want=typed: body.query == want)
        # The body's repaint shows it (the hidden prompt renders nothing: it is not watched).
        await press("escape (clear search)", "escape", [body], lambda: not search.display and body.query == "")
        await press("f follow", "f", [body], lambda: body.following)
        await asyncio.sleep(0.5)
    result.cpu = meter.stop()
    result.buffer_rate = (buffer.end - end0) / (time.perf_counter() - t0)
    result.lag = await lag.stop()
    return result


async def open_view(app, pilot, open_it) -> LogScreen:  # noqa: ANN001
    open_it()
    await wait_for(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.query(LogLines), 30, "the log view")
    return app.screen  # type: ignore[return-value]


async def close_view(app, pilot) -> None:  # noqa: ANN001
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, LogScreen), 30, "the log view closed")


async def run_ferryman(args: argparse.Namespace, client: docker.DockerClient, ids: dict[str, str],
                       names: dict[str, str], rss: RssSampler) -> Ferryman:
    result = Ferryman()
    rng = random.Random(args.seed)
    result.rss_before = rss.now()
    # Read-only: the engine is shared, and no key must ever act on anybody's containers.
    # freeze_startup as the command line runs it (see tui.app.freeze_startup_objects).
    app = FerrymanApp(Hub([ComposeAdapter()]), readonly=True, freeze_startup=True)
    async with app.run_test(size=SIZE) as pilot:
        # Not `settled`: in a flood some refresh of the body is always in flight (FrameProbe).
        probe = FrameProbe(app, settled=False).install()
        store = app.hub.store
        keys = {svc: f"compose/{cid}" for svc, cid in ids.items()}

        def running() -> bool:
            return all(k in store.instances and store.instances[k].state == RunState.RUNNING for k in keys.values())

        await wait_for(pilot, running, 30, "both containers in the store")

        def of(service: str):  # noqa: ANN202 - what `l` on the container's row selects
            return lambda s: [i for i in [s.instances.get(keys[service])] if i]

        # -- the flood --
        screen = await open_view(app, pilot, lambda: app.open_logs(names["flood"], of("flood")))
        body, buffer = screen.body, screen.session.buffer
        painted = Painted(app, body)
        await asyncio.sleep(SETTLE_SECONDS)

        meter = CpuMeter(probe).start()
        end0, shown0, t0 = buffer.end, painted.index, time.perf_counter()
        result.producer.start = await asyncio.to_thread(written, client, ids["flood"])
        while time.perf_counter() < t0 + args.seconds:
            await asyncio.sleep(0.1)
            result.view_behind.append(buffer.end - 1 - painted.index)
        end1, shown1, t1 = buffer.end, painted.index, time.perf_counter()
        result.cpu = meter.stop()
        result.producer.end = await asyncio.to_thread(written, client, ids["flood"])
        result.producer.seconds = result.seconds = t1 - t0
        result.buffer_lines, result.shown_lines = end1 - end0, shown1 - shown0
        try:
            result.behind_producer = result.producer.end - number_of(buffer.line(shown1).text)
        except IndexError:
            result.behind_producer = -1

        print(f"  Ferryman: {result.shown_rate:,.0f} lines/s shown; keys for {args.key_seconds:g} s...", flush=True)
        result.keys = await press_keys(app, screen, probe, args.key_seconds, rng)

        print(f"  until {args.lines:,} lines have passed through the view...", flush=True)
        t0 = time.perf_counter()
        while buffer.end < args.lines and time.perf_counter() < t0 + args.memory_timeout:
            await asyncio.sleep(0.2)
        result.memory_seconds = time.perf_counter() - t0
        result.lines_through = buffer.end  # the buffer counts from 0 when the view opens
        result.rss_at_lines = rss.now()
        result.rss_peak = max(rss.peak, result.rss_at_lines)
        result.maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result.buffer_len, result.buffer_bytes, result.dropped = len(buffer), buffer.bytes, buffer.dropped
        result.markers = [line.text for line in buffer.lines(buffer.first, buffer.end) if line.kind == LogKind.MARKER]
        await close_view(app, pilot)

        # -- the baseline: the same keys on a view of the quiet container, all its lines --
        def quiet_view() -> None:
            follower = LogFollower(app.hub, lambda s: targets_of(of("quiet")(s)), LogOptions(tail=None),
                                   buffer=LogBuffer(max_lines=app.config.logs.buffer_lines))
            app.push_screen(LogScreen(names["quiet"], follower))

        screen = await open_view(app, pilot, quiet_view)
        await wait_for(pilot, lambda: screen.session.buffer.end >= QUIET_LINES, 60, "the quiet container's lines")
        await asyncio.sleep(1)
        print(f"  baseline: keys on the quiet view for {args.key_seconds:g} s...", flush=True)
        result.baseline = await press_keys(app, screen, probe, args.key_seconds, rng)
        await close_view(app, pilot)
    return result


# ---- report -----------------------------------------------------------------------------------


def key_report(title: str, keys: Keys, base: Keys | None) -> None:
    print(f"\n {title}")
    for kind in KEY_KINDS:
        if kind in keys.times:
            line = stats_line(kind, keys.times[kind], 24)
            if base is not None and kind in base.times:
                line += f"  p95 vs baseline {ratio(percentile(keys.times[kind], 95), percentile(base.times[kind], 95))}"
            print(line)
    line = stats_line("ALL keys", keys.all(), 24)
    if base is not None:
        line += f"  p95 vs baseline {ratio(percentile(keys.all(), 95), percentile(base.all(), 95))}"
    print(line)
    print(f"  event loop lag (a 20 ms sleep wakes late by): median {fmt_ms(percentile(keys.lag, 50))}"
          f"  p95 {fmt_ms(percentile(keys.lag, 95))}  max {fmt_ms(max(keys.lag, default=float('nan')))} ms")
    print(f"  CPU {keys.cpu.cpu_percent:.0f} % of one core, {keys.cpu.frames_per_s:.1f} frames/s; other processes "
          f"{keys.cpu.others_cores:.2f} cores; the buffer took {keys.buffer_rate:,.0f} lines/s")
    if keys.timeouts:
        print(f"  !! {keys.timeouts} key(s) never reached the screen within {KEY_TIMEOUT:g}s")


def report(args: argparse.Namespace, before: DockerLogs, after: DockerLogs, fm: Ferryman) -> dict:
    base = combined([before, after])
    share = fm.shown_rate / base.rate if base.rate else float("nan")
    keys = fm.keys.all()
    key_p95 = percentile(keys, 95)
    rss_peak_mb = fm.rss_peak / MB
    print()
    print(f"logs_flood: one container writing numbered lines as fast as it can; terminal {SIZE[0]}x{SIZE[1]}")
    print(f"\n docker logs -f --tail 0 (stdout counted):  {base.rate:10,.0f} lines/s "
          f"(before Ferryman {before.rate:,.0f}, after {after.rate:,.0f}; {base.lines:,} lines in {base.seconds:.1f} s)")
    for name, run in (("before", before), ("after", after)):
        print(f"   {name}: the container wrote {run.producer.rate:,.0f} lines/s; docker logs ended {run.behind:,} lines "
              f"behind it; {load_note(run.machine)}")
    print(f"\n Ferryman log view, {fm.seconds:.1f} s without keys:")
    print(f"   lines into the buffer               {fm.buffer_rate:10,.0f} lines/s")
    print(f"   lines shown (newest painted line)   {fm.shown_rate:10,.0f} lines/s   = {share:.0%} of docker logs")
    behind = fm.view_behind or [0]
    print(f"   painted line behind the buffer: median {percentile(behind, 50):,.0f}, p95 {percentile(behind, 95):,.0f} lines; "
          f"behind the container at the end: {fm.behind_producer:,} lines")
    print(f"   the container wrote {fm.producer.rate:,.0f} lines/s meanwhile")
    print(f"   CPU {fm.cpu.cpu_percent:.0f} % of one core, {fm.cpu.frames_per_s:.1f} frames/s, other processes "
          f"(dockerd, the container) {fm.cpu.others_cores:.2f} cores")
    key_report(f"key press -> painted frame during the flood ({args.key_seconds:g} s):", fm.keys, fm.baseline)
    key_report(f"baseline: the same keys on the quiet container's 100,000 lines, the flood still running "
               f"({args.key_seconds:g} s):", fm.baseline, None)
    print(f"\n memory: {fm.lines_through:,} lines through the view ({fm.memory_seconds:.0f} s more after the keys); "
          f"buffer {fm.buffer_len:,} lines (~{fm.buffer_bytes / MB:.0f} MB), {fm.dropped:,} dropped")
    print(f"   RSS before the app {fm.rss_before / MB:.0f} MB, after {fm.lines_through:,} lines {fm.rss_at_lines / MB:.0f} MB, "
          f"peak {rss_peak_mb:.0f} MB (sampled 10/s; ru_maxrss {fm.maxrss / MB:.0f} MB)")
    if fm.markers:
        print(f"   markers in the view: {fm.markers[:5]}")
    ingest_met = share >= TARGET_RATIO
    keys_met = key_p95 < TARGET_KEY_P95_MS and not fm.keys.timeouts
    lines_met = fm.lines_through >= args.lines
    rss_met = rss_peak_mb < TARGET_RSS_MB and lines_met
    print()
    print(f" target ingest: shown >= {TARGET_RATIO:.0%} of docker logs -f: {'MET' if ingest_met else 'MISSED'} "
          f"({fm.shown_rate:,.0f} vs {base.rate:,.0f} lines/s, {share:.0%})")
    print(f" target keys: p95 < {TARGET_KEY_P95_MS:.0f} ms during the flood: {'MET' if keys_met else 'MISSED'} "
          f"(p95 {key_p95:.1f} ms; baseline without the ingestion {percentile(fm.baseline.all(), 95):.1f} ms)")
    print(f" target memory: peak RSS < {TARGET_RSS_MB:.0f} MB after {args.lines:,} lines: {'MET' if rss_met else 'MISSED'} "
          f"({rss_peak_mb:.0f} MB{'' if lines_met else f', only {fm.lines_through:,} lines'})")
    return {
        "docker_logs_lps": base.rate,
        "producer_lps": before.producer.rate,
        "buffer_lps": fm.buffer_rate,
        "shown_lps": fm.shown_rate,
        "ratio": share,
        "cpu_percent": fm.cpu.cpu_percent,
        "keys": summary(keys),
        "keys_by_kind": {k: summary(v) for k, v in fm.keys.times.items()},
        "baseline_keys": summary(fm.baseline.all()),
        "loop_lag_p95_ms": percentile(fm.keys.lag, 95),
        "timeouts": fm.keys.timeouts + fm.baseline.timeouts,
        "lines_through": fm.lines_through,
        "rss_peak_mb": rss_peak_mb,
        "rss_at_lines_mb": fm.rss_at_lines / MB,
        "target_met": {"ingest": ingest_met, "keys": keys_met, "memory": rss_met},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="the ingest window (docker logs: half before, half after)")
    parser.add_argument("--key-seconds", type=float, default=20.0, help="each key phase (flood, baseline)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines through the view for the memory figure")
    parser.add_argument("--memory-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    print("logs_flood:", machine_line(), flush=True)
    rss = RssSampler()
    client = docker.from_env()
    print(f"  Docker engine {client.version().get('Version')}, log driver {client.info().get('LoggingDriver')}", flush=True)
    ensure_test_image(client)
    tmp = Path(tempfile.mkdtemp(prefix="ferryman-bench-"))
    services = {svc: {"image": TEST_IMAGE, "command": ["sh", "-c", script], "stop_grace_period": "1s"}
                for svc, script in (("flood", FLOOD), ("quiet", QUIET))}
    project = ComposeProject(tmp, services, name=f"fmbench{random.randrange(16**8):08x}")
    try:
        project.up()
        ids = {svc: project.container_ids(client, svc)[0] for svc in services}
        names = {svc: client.containers.get(cid).name for svc, cid in ids.items()}
        time.sleep(2)
        print(f"  the container writes; docker logs -f for {args.seconds / 2:g} s...", flush=True)
        before = run_docker_logs(client, ids["flood"], args.seconds / 2)
        print(f"  docker logs: {before.rate:,.0f} lines/s; Ferryman for {args.seconds:g} s...", flush=True)
        fm = asyncio.run(run_ferryman(args, client, ids, names, rss))
        print(f"  docker logs -f again for {args.seconds / 2:g} s...", flush=True)
        after = run_docker_logs(client, ids["flood"], args.seconds / 2)
        emit_summary("logs_flood", report(args, before, after, fm))
    finally:
        rss.close()
        project.down()
        shutil.rmtree(tmp, ignore_errors=True)
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
