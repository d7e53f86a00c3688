"""Start-up: process spawn -> first painted frame on a real pseudo-terminal, Ferryman next to
a bare Textual app, measured in the same run.

    .venv/bin/python -m tests.bench.startup [--runs 10]

Every run is a fresh process on a fresh pty (160x50, TERM=xterm-256color, the pty is its
controlling terminal), so Textual uses its real Linux driver. This script reads the master
side; the clock starts just before `subprocess.Popen` and stops at:
  first paint     the first read that carries screen content: a cursor-position sequence
                  (CSI row;col H) followed by text, after the driver's set-up sequences
                  (alt screen, mouse modes, ...);
  screen complete every one of the 50 rows has been written at least once.
Then Ctrl+C is sent; a child still alive after 3 s is killed (not timed).

Subjects, alternated run by run (the starting subject rotates each round):
  bare                       `.venv/bin/python -m tests.bench._bare_app` (App + Header + Static)
  ferryman, no socket        `.venv/bin/ferryman`, DOCKER_HOST=unix://<path that does not exist>
  ferryman, docker answers   `.venv/bin/ferryman`, DOCKER_HOST=unix:///var/run/docker.sock
  ferryman, socket silent    `.venv/bin/ferryman`, DOCKER_HOST=unix://<socket that accepts and
                             never answers> — a first frame that awaited Docker would never come
Ferryman reads no user config (XDG_CONFIG_HOME is an empty temporary directory).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench._common import emit_summary, machine_line, ratio, run_main, summary

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
FERRYMAN = ROOT / ".venv" / "bin" / "ferryman"
ROWS, COLS = 50, 160
TARGET_RATIO = 1.5
# A cursor position (CSI row;col H), optional colour/style sequences, then a character:
# something is being painted on that row.
PAINT = re.compile(rb"\x1b\[(\d+);(\d+)H(?:\x1b\[[0-9;:]*m)*[^\x1b\r\n]")


@dataclass
class Run:
    first_paint_ms: float
    complete_ms: float | None


class SilentSocket:
    """A unix socket that accepts connections and never says a word."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.held: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="silent-socket").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.closed = True
        self.server.close()
        for conn in self.held:
            conn.close()


def child_env(xdg: Path, docker_host: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCKER_", "TEXTUAL", "FERRYMAN_")) and k not in ("COLUMNS", "LINES")
    }
    env.update(TERM="xterm-256color", XDG_CONFIG_HOME=str(xdg), LANG=env.get("LANG", "C.UTF-8"))
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def _make_controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def measure_once(argv: list[str], env: dict[str, str], timeout: float = 30.0) -> Run:
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
        preexec_fn=_make_controlling_tty, close_fds=True,
    )
    os.close(slave)
    first: float | None = None
    complete: float | None = None
    rows_seen: set[int] = set()
    tail = b""
    try:
        deadline = t0 + timeout
        while complete is None:
            now = time.perf_counter()
            if now > deadline:
                break
            ready, _, _ = select.select([master], [], [], min(0.05, deadline - now))
            if not ready:
                if first is not None and now - first > 3:
                    break  # painted, but some rows never written: report first paint only
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:
                break
            t = time.perf_counter()
            buf = tail + data
            for m in PAINT.finditer(buf):
                if first is None:
                    first = t
                rows_seen.add(int(m.group(1)))
            if first is not None and len(rows_seen & set(range(1, ROWS + 1))) == ROWS:
                complete = t
            tail = buf[-64:]
    finally:
        try:
            os.write(master, b"\x03")  # Ctrl+C: Ferryman and Textual quit on it
        except OSError:
            pass
        end = time.monotonic() + 3
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 1 << 16)
                except OSError:
                    pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    if first is None:
        raise RuntimeError(f"no frame within {timeout}s from {' '.join(argv)}")
    return Run((first - t0) * 1000, (complete - t0) * 1000 if complete else None)


def import_profile(env: dict[str, str], top: int = 12) -> list[tuple[float, str]]:
    """`python -X importtime` of what `ferryman` imports before its first frame."""
    code = "import tui.cli, tui.app, backends.headless"
    out = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    ).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # 0 = imported by the -c code
        if depth <= 1:
            rows.append((int(cumulative) / 1000, ("  " * depth) + name.strip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per subject (>= 10 recommended)")
    parser.add_argument("--no-imports", action="store_true", help="skip the import-time breakdown")
    args = parser.parse_args(argv)
    print("startup:", machine_line(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="ferryman-bench-startup-"))
    xdg = tmp / "xdg"
    xdg.mkdir()
    silent = SilentSocket(tmp / "silent.sock")
    subjects = {
        "bare textual": ([str(PYTHON), "-m", "tests.bench._bare_app"], child_env(xdg, None)),
        "ferryman, no socket": ([str(FERRYMAN)], child_env(xdg, f"unix://{tmp / 'missing.sock'}")),
        "ferryman, docker answers": ([str(FERRYMAN)], child_env(xdg, "unix:///var/run/docker.sock")),
        "ferryman, socket silent": ([str(FERRYMAN)], child_env(xdg, f"unix://{tmp / 'silent.sock'}")),
    }
    names = list(subjects)
    runs: dict[str, list[Run]] = {n: [] for n in names}
    try:
        # One unmeasured run each: the page cache and .pyc files are warm for everybody.
        for name in names:
            measure_once(*subjects[name])
        for i in range(args.runs):
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                runs[name].append(measure_once(*subjects[name]))
            print(f"  round {i + 1}/{args.runs}: " + ", ".join(
                f"{n.split(',')[-1].strip()} {runs[n][-1].first_paint_ms:.0f}" for n in names) + " ms", flush=True)
    finally:
        silent.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"Spawn -> first painted frame on a {COLS}x{ROWS} pty, {args.runs} runs each (ms)")
    base_first = statistics.median(r.first_paint_ms for r in runs[names[0]])
    complete_base = [r.complete_ms for r in runs[names[0]] if r.complete_ms is not None]
    base_complete = statistics.median(complete_base) if complete_base else float("nan")
    result: dict = {}
    for name in names:
        firsts = [r.first_paint_ms for r in runs[name]]
        completes = [r.complete_ms for r in runs[name] if r.complete_ms is not None]
        s, c = summary(firsts), summary(completes)
        line = (
            f"  {name:<26} first paint median {s['median']:6.0f}  min {s['min']:6.0f}  max {s['max']:6.0f}"
            f"   screen complete median {c['median']:6.0f} (n={c['n']})"
        )
        if name != names[0]:
            line += f"   ratio to bare: first {ratio(s['median'], base_first)}, complete {ratio(c['median'], base_complete)}"
        print(line)
        result[name] = {"first_paint": s, "complete": c}
    print()
    worst = max(statistics.median(r.first_paint_ms for r in runs[n]) for n in names[1:])
    verdict = "MET" if worst / base_first <= TARGET_RATIO else "MISSED"
    print(f" target: Ferryman/bare first paint <= {TARGET_RATIO}x: {verdict} (worst Ferryman median {worst / base_first:.2f}x)")
    result["ratio_worst"] = worst / base_first
    result["target_met"] = worst / base_first <= TARGET_RATIO

    if not args.no_imports:
        print("\n Where Ferryman's start-up goes: `python -X importtime` of tui.cli + tui.app + backends.headless,")
        print(" largest cumulative import times (ms, one cold-ish run, modules up to depth 2):")
        for ms, mod in import_profile(child_env(Path(tempfile.gettempdir()), None)):
            print(f"   {ms:7.1f}  {mod}")
    emit_summary("startup", result)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
