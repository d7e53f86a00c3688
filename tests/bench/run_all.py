"""Run every benchmark (each in its own process) and print a compact summary.

    .venv/bin/python -m tests.bench.run_all [--only startup,idle] [--quick]

Each script's full output is shown as it runs; the block at the end collects the headline
figures from the `BENCH-SUMMARY` line each script prints last. --quick uses smaller sample
counts (a smoke run: its figures are not the ones the targets are about).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from tests.bench._common import SUMMARY_PREFIX, cpu_model, load_average, run_main

ROOT = Path(__file__).resolve().parents[2]

BENCHES = {
    "event_to_screen": ([], ["--cycles", "15"]),
    "large_table": ([], ["--keys", "60", "--cpu-seconds", "5"]),
    "startup": ([], ["--runs", "4"]),
    "idle": ([], ["--seconds", "10"]),
    "kube_pods": ([], ["--seconds", "8", "--cpu-seconds", "3", "--bare-seconds", "3"]),
    "logs_flood": ([], ["--seconds", "8", "--key-seconds", "6", "--lines", "300000"]),
    "forward_throughput": ([], ["--mb", "16", "--runs", "2", "--replacements", "3"]),
}


def machine_facts() -> list[str]:
    import textual

    facts = [
        f"CPU        {cpu_model()}",
        f"cores      {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), load avg at start {load_average()}",
        f"Python     {platform.python_version()} ({sys.executable})",
        f"Textual    {textual.__version__}",
    ]
    try:
        import docker

        client = docker.from_env(timeout=5)
        v = client.version()
        facts.append(f"Docker     engine {v.get('Version')} (API {v.get('ApiVersion')}), {v.get('Os')}/{v.get('Arch')}")
        client.close()
    except Exception as exc:  # noqa: BLE001
        facts.append(f"Docker     unreachable: {exc}")
    try:
        compose = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True).stdout.strip()
        facts.append(f"Compose    docker-compose {compose or 'n/a'}")
    except OSError:
        facts.append("Compose    n/a")
    return facts


def run_one(name: str, extra: list[str]) -> tuple[int, dict | None, float]:
    argv = [sys.executable, "-m", f"tests.bench.{name}", *extra]
    print(f"\n===== {name}: {' '.join(argv[1:])}", flush=True)
    t0 = time.monotonic()
    found = None
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if line.startswith(SUMMARY_PREFIX):
                    found = json.loads(line[len(SUMMARY_PREFIX):])
                    continue
                print(line, end="", flush=True)
        except KeyboardInterrupt:
            proc.terminate()  # the script cleans up its projects and sessions on SIGTERM
            proc.wait(timeout=120)
            raise
    return proc.returncode, found, time.monotonic() - t0


def f(value, digits: int = 1) -> str:  # noqa: ANN001
    return "n/a" if value is None else f"{value:.{digits}f}"


def verdict(ok) -> str:  # noqa: ANN001
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def summarize(results: dict[str, dict | None]) -> list[str]:
    lines = []
    e = results.get("event_to_screen")
    if e:
        allev = e.get("all events", {})
        die, start = e.get("die (all)", {}), e.get("start (all)", {})
        lines.append(
            f"event -> painted row ({e.get('view')} view): p95 {f(allev.get('painted', {}).get('p95'))} ms "
            f"[die p95 {f(die.get('painted', {}).get('p95'))}, start p95 {f(start.get('painted', {}).get('p95'))}], "
            f"median {f(allev.get('painted', {}).get('median'))} ms, SDK+inspect floor median "
            f"{f(allev.get('sdk_floor', {}).get('median'))} ms   target p95 < 200 ms: {verdict(e.get('target_met'))}"
        )
    t = results.get("large_table")
    if t:
        bare = t.get("bare DataTable", {})
        for name in ("Ferryman containers", "Ferryman workloads"):
            r = t.get(name)
            if not r:
                continue
            p95 = r["keys"]["p95"]
            lines.append(
                f"{name:<20}: key->frame p95 {f(p95)} ms (bare DataTable {f(bare.get('keys', {}).get('p95'))}), "
                f"CPU at 50 chg/s {f(r.get('cpu_percent'))} % (bare {f(bare.get('cpu_percent'))} %), "
                f"first 2,000-row table {f(r.get('first_table_ms'), 0)} ms (bare {f(bare.get('first_table_ms'), 0)})"
                f"   target p95 < 50 ms: {verdict(None if p95 is None else p95 < 50 and not r.get('timeouts'))}"
            )
    s = results.get("startup")
    if s:
        bare = s.get("bare textual", {}).get("first_paint", {}).get("median")
        parts = [f"bare {f(bare, 0)}"]
        for name in ("ferryman, no socket", "ferryman, docker answers", "ferryman, socket silent"):
            med = s.get(name, {}).get("first_paint", {}).get("median")
            parts.append(f"{name.split(', ')[1]} {f(med, 0)}")
        lines.append(
            f"startup first paint medians (ms): {', '.join(parts)}; worst ratio {f(s.get('ratio_worst'), 2)}x"
            f"   target <= 1.5x: {verdict(s.get('target_met'))}"
        )
    k = results.get("kube_pods")
    if k:
        keys = k.get("keys", {})
        lines.append(
            f"k3s {k.get('pods')} pods at 50 chg/s: key->frame p95 {f(keys.get('p95'))} ms "
            f"(bare DataTable {f(k.get('bare_keys', {}).get('p95'))}), first full table {f(k.get('first_table_ms'), 0)} ms "
            f"(LIST floor {f(k.get('list_floor_ms'), 0)}), workloads {f(k.get('workloads_first_table_ms'), 0)} ms, "
            f"CPU {f(k.get('cpu_percent'))} %, peak RSS {f(k.get('rss_peak_mb'), 0)} MB"
            f"   target p95 < 50 ms: {verdict(k.get('target_met'))}"
        )
    g = results.get("logs_flood")
    if g:
        verdicts = g.get("target_met") or {}
        lines.append(
            f"log flood: {f(g.get('shown_lps'), 0)} lines/s shown vs docker logs -f {f(g.get('docker_logs_lps'), 0)} "
            f"({f((g.get('ratio') or 0) * 100, 0)} %), key->frame p95 {f(g.get('keys', {}).get('p95'))} ms "
            f"(baseline without ingestion {f(g.get('baseline_keys', {}).get('p95'))}), peak RSS {f(g.get('rss_peak_mb'), 0)} MB "
            f"after {g.get('lines_through')} lines   targets >= 50 %: {verdict(verdicts.get('ingest'))}, "
            f"keys p95 < 100 ms: {verdict(verdicts.get('keys'))}, RSS < 300 MB: {verdict(verdicts.get('memory'))}"
        )
    p = results.get("forward_throughput")
    if p:
        reattach = p.get("reattach_ms") or {}
        deploy = reattach.get("deploy/web", {})
        by_name = next((v for k, v in reattach.items() if k.startswith("pod/")), {})
        lines.append(
            f"port-forward: download {f(p.get('download_forward_mbps'), 0)} MB/s (direct TCP "
            f"{f(p.get('download_direct_mbps'), 0)}), upload {f(p.get('upload_forward_mbps'), 0)} MB/s (direct "
            f"{f(p.get('upload_direct_mbps'), 0)}); re-attach after the pod is replaced: median "
            f"{f(deploy.get('median'))} ms, max {f(deploy.get('max'))} ms (deploy), by pod name median "
            f"{f(by_name.get('median'))} ms"
        )
    i = results.get("idle")
    if i:
        bare = i.get("bare textual", {})
        verdicts = i.get("target_met") or {}
        for name in ("ferryman, young", "ferryman, steady"):
            r = i.get(name)
            if not r:
                continue
            lines.append(
                f"idle CPU, {name.split(', ')[1]:<6} ({f(r.get('container_age_s'), 0)} s old containers): "
                f"{f(r.get('percent'), 2)} % of a core (bare {f(bare.get('percent'), 2)} %), "
                f"other projects' events {r.get('foreign_events')} ({r.get('foreign_state_events')} not exec_*)"
                f"   target < 1 %: {verdict(verdicts.get(name))}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma list of " + ", ".join(BENCHES))
    parser.add_argument("--quick", action="store_true", help="small samples: a smoke run")
    args = parser.parse_args(argv)
    facts = machine_facts()
    print("\n".join(facts), flush=True)
    results: dict[str, dict | None] = {}
    codes: dict[str, int] = {}
    took: dict[str, float] = {}
    for name in args.only.split(","):
        full, quick = BENCHES[name]
        codes[name], results[name], took[name] = run_one(name, quick if args.quick else full)
    print("\n" + "=" * 100)
    print("Ferryman benchmarks" + (" (QUICK: small samples)" if args.quick else ""))
    for line in facts:
        print("  " + line)
    print(f"  load avg at end: {load_average()}")
    print("-" * 100)
    for line in summarize(results):
        print("  " + line)
    for name, code in codes.items():
        status = "ok" if code == 0 and results.get(name) else f"FAILED (exit {code})"
        print(f"  [{name}: {status}, {took[name]:.0f} s]")
    print("=" * 100)
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
