"""Idle CPU: the real `ferryman` in a real terminal (tmux), 20 running containers, nothing
changing — how much CPU does it burn just sitting there?

    .venv/bin/python -m tests.bench.idle [--seconds 30] [--containers 20] [--steady-age 130]

A compose project of 20 sleeper services (tests/support/dockerenv.py) is brought up; then
`.venv/bin/ferryman --readonly` is the command of a detached tmux session (`tmux new-session
-d -x 160 -y 48`, so it has a real pty and Textual's Linux driver), with its own XDG config
(`ui.default_view: containers`, i.e. it starts in `:ctr`; no keys are sent — read-only
because the engine is shared and keys must never act on anybody's containers). The script
waits until `tmux capture-pane` shows all 20 containers "running". Two windows: "young",
2 s after that, and "steady", once the containers are --steady-age seconds old. Each reads
the ferryman process's CPU times (psutil: user + system, all threads) and again --seconds
later: CPU-seconds / wall-seconds, as % of one core. `tmux pipe-pane` counts the bytes the
app wrote to its terminal meanwhile. The engine is shared: a thread counts the Compose
container events of *other* projects during each window (Ferryman receives those too).

Baseline in the same run, same way, same tmux geometry: the bare Textual app
(tests/bench/_bare_app.py: App + Header + Static) idle for the same time.

Why two windows: Ferryman re-renders the uptime column every ui.uptime_refresh_seconds (2 s);
while the containers are under 2 minutes old those cells change on every tick (the text is
in seconds); after that they change once a minute.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import docker
import psutil

from backends.compose import parse_docker_time
from tests.bench._common import ForeignEvents, MachineLoad, emit_summary, load_note, machine_line, ratio, run_main
from tests.support.dockerenv import ComposeProject, ensure_test_image, sleeper_service

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
FERRYMAN = ROOT / ".venv" / "bin" / "ferryman"
TARGET_PERCENT = 1.0


def tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", *args], check=check, capture_output=True, text=True)


def capture(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session, check=False).stdout


def wait_until(condition, timeout: float, what: str, session: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}; screen:\n{capture(session)}")
        time.sleep(0.2)


class TmuxApp:
    """A command as the only process of a detached tmux session."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], output: Path) -> None:
        self.session = name
        self.output = output
        assignments = [f"{k}={v}" for k, v in env.items()]
        # `env` execs the command, so the pane's process is the app itself.
        # -u: the tmux server's environment (whoever started it) must not leak in.
        unset = ["-u", "DOCKER_HOST", "-u", "FERRYMAN_CONFIG", "-u", "DOCKER_CONTEXT"]
        command = " ".join(["exec", "env", *unset, *map(_quote, assignments), *map(_quote, argv)])
        tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "48", "-c", str(ROOT), command)
        tmux("set-option", "-t", name, "remain-on-exit", "on", check=False)
        # Everything the app writes to its terminal is also appended to `output`.
        tmux("pipe-pane", "-o", "-t", name, f"cat >> {_quote(str(output))}", check=False)
        pid = int(tmux("display-message", "-p", "-t", name, "#{pane_pid}").stdout.strip())
        self.process = psutil.Process(pid)

    def cpu_seconds(self) -> float:
        t = self.process.cpu_times()
        return t.user + t.system

    def measure(self, seconds: float, foreign: ForeignEvents) -> dict:
        screen_before = capture(self.session)
        machine = MachineLoad([self.process.pid]).start()
        foreign.total = foreign.state = 0
        foreign.counting = True
        b0 = self.output_bytes()
        c0, w0 = self.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        c1, w1 = self.cpu_seconds(), time.monotonic()
        b1 = self.output_bytes()
        foreign.counting = False
        load = machine.stop()
        screen_after = capture(self.session)
        return {
            "percent": (c1 - c0) / (w1 - w0) * 100,
            "cpu_seconds": c1 - c0,
            "wall_seconds": w1 - w0,
            "terminal_bytes": b1 - b0,
            "threads": self.process.num_threads(),
            "rss_mib": self.process.memory_info().rss / 2**20,
            "screen_changed": screen_before != screen_after,
            "load": load,
            "foreign_events": foreign.total,
            "foreign_state_events": foreign.state,
        }

    def output_bytes(self) -> int:
        try:
            return self.output.stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        tmux("kill-session", "-t", self.session, check=False)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument(
        "--steady-age", type=float, default=130.0,
        help="second window once the containers are this old (s): uptimes show minutes; 0 = skip",
    )
    parser.add_argument("--steady-only", action="store_true", help="skip the first (young) window")
    args = parser.parse_args(argv)
    if not shutil.which("tmux"):
        print("idle: tmux is not installed", file=sys.stderr)
        return 2
    print("idle:", machine_line(), flush=True)
    client = docker.from_env()
    ensure_test_image(client)
    tmp = Path(tempfile.mkdtemp(prefix="ferryman-bench-idle-"))
    (tmp / "xdg" / "ferryman").mkdir(parents=True)
    (tmp / "xdg" / "ferryman" / "config.yaml").write_text("ui:\n  default_view: containers\n")
    tag = f"{random.randrange(16**8):08x}"
    services = {f"s{i:02d}": sleeper_service() for i in range(1, args.containers + 1)}
    project = ComposeProject(tmp, services, name=f"fmbenchidle{tag}")
    apps: list[TmuxApp] = []
    foreign = ForeignEvents(client, project.name)
    results: dict[str, dict] = {}
    env = {"TERM": "xterm-256color", "XDG_CONFIG_HOME": str(tmp / "xdg"), "LANG": "C.UTF-8"}
    try:
        project.up()
        print(f"  {args.containers} containers up (project {project.name})", flush=True)

        # Baseline first: the bare Textual app, same terminal, same wait.
        bare = TmuxApp(f"fmbench-bare-{tag}", [str(PYTHON), "-m", "tests.bench._bare_app"], env, tmp / "bare.out")
        apps.append(bare)
        wait_until(lambda: "bare textual app" in capture(bare.session), 30, "the bare app", bare.session)
        time.sleep(2)
        print(f"  bare app: measuring {args.seconds:g} s...", flush=True)
        results["bare textual"] = bare.measure(args.seconds, foreign)
        bare.close()

        fm = TmuxApp(f"fmbench-ferryman-{tag}", [str(FERRYMAN), "--readonly"], env, tmp / "ferryman.out")
        apps.append(fm)
        row = re.compile(rf"{re.escape(project.name)}_s\d+_1\b.*\brunning\b")

        def all_rows() -> bool:
            return sum(1 for line in capture(fm.session).splitlines() if row.search(line)) == args.containers

        wait_until(all_rows, 60, f"{args.containers} running containers on screen", fm.session)
        started = [
            parse_docker_time(client.api.inspect_container(c)["State"]["StartedAt"])
            for c in project.container_ids(client)
        ]
        youngest = min(started)

        def age() -> float:
            return (datetime.now(UTC) - youngest).total_seconds() if youngest else float("nan")

        time.sleep(2)
        phases = [("ferryman, young", 0.0)] if not args.steady_only else []
        if args.steady_age > 0:
            phases.append(("ferryman, steady", args.steady_age))
        for name, min_age in phases:
            if age() < min_age:
                print(f"  waiting {min_age - age():.0f} s until the containers are {min_age:g} s old...", flush=True)
                time.sleep(min_age - age())
            print(
                f"  {name}: measuring {args.seconds:g} s (containers {age():.0f} s old at the start)...", flush=True
            )
            results[name] = fm.measure(args.seconds, foreign)
            results[name]["container_age_s"] = age() - args.seconds
        if not all_rows():
            print("  !! the table no longer shows all containers at the end", flush=True)
        screen = capture(fm.session)
        fm.close()
    finally:
        for app in apps:
            app.close()
        foreign.close()
        project.down()
        shutil.rmtree(tmp, ignore_errors=True)
        client.close()

    print()
    print(f"Idle CPU over {args.seconds:g} s in tmux 160x48, {args.containers} running containers, nothing changing")
    base = results["bare textual"]["percent"]
    for name, r in results.items():
        extra = "" if name == "bare textual" else f"   ratio to bare: {ratio(r['percent'], base)}"
        print(
            f"  {name:<17} {r['percent']:6.2f} % of one core ({r['cpu_seconds']:.2f} CPU-s / {r['wall_seconds']:.1f} s), "
            f"{r['threads']} threads, RSS {r['rss_mib']:.0f} MiB, wrote {r['terminal_bytes'] / 1024:.0f} KiB to the terminal"
            + extra
        )
        print(
            f"  {'':<17} {load_note(r['load'])}; Compose container events of other projects: "
            f"{r['foreign_events']} ({r['foreign_state_events']} not exec_*)"
        )
    print()
    verdicts = {}
    for name, r in results.items():
        if name.startswith("ferryman"):
            verdicts[name] = r["percent"] < TARGET_PERCENT
            print(
                f" target: {name} idle < {TARGET_PERCENT:g} % of one core: "
                f"{'MET' if verdicts[name] else 'MISSED'} ({r['percent']:.2f} %, containers {r['container_age_s']:.0f} s old)"
            )
    print("\n Ferryman's screen at the end (first 8 lines):")
    for line in screen.splitlines()[:8]:
        print("   " + line.rstrip())
    emit_summary("idle", {"seconds": args.seconds, **results, "target_met": verdicts})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
