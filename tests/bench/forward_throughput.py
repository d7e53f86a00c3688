"""Port-forward throughput (MB/s) next to a direct TCP connection to the same target, and
the time a forward takes to re-attach after its pod is replaced.

    .venv/bin/python -m tests.bench.forward_throughput [--mb 64] [--runs 5] [--replacements 10]

Needs Docker (nothing is pulled: the busybox test image is imported from /bin/busybox).

The path of every forwarded byte: a client process -> Ferryman's forward (this process:
`Hub([KubeAdapter(...)])` and its ForwardManager) -> kr8s's websocket -> the emulated API
server (tests/support/kube_emulator.py, in a child process of its own, so that its CPU is
not Ferryman's) -> a real TCP connection to a busybox container on the real engine.
The direct path: the same client process -> the same container (its IP on the Compose
network), no hop between. Each transfer is a fresh client process (blocking sockets, 1 MiB
reads; the clock runs from connect to the last byte, not the process start), direct and
forwarded runs alternating so that both see the same machine.

Figures:
  download   GET of a --mb MiB file from busybox httpd (pod -> local client).
  upload     --mb MiB sent to `nc -e sh -c 'head -c N >/dev/null; echo done'` (local
             client -> pod), the clock stops at its "done".
  CPU        per forwarded MB: this process (Ferryman) and the emulator child, over the
             forwarded runs (what the relay costs, and where).
  re-attach  --replacements rounds: the emulator child deletes the pod and creates its
             replacement, Running and Ready at once (a controller that is instantaneous:
             what is left is Ferryman's part — the watch event, the store, the forward's
             choice, a new stream). From the deletion (CLOCK_MONOTONIC in the child) to the
             first HTTP answer from the new pod through the forward, with a client that
             keeps connecting; for a forward to the Deployment and one to the first pod
             by name (which follows its replacements through its workload).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NS = "bench"
HTTP_PORT, SINK_PORT = 8080, 9001
MB = 1_000_000  # MB/s are decimal megabytes; sizes are MiB


# ---- the client (a child process per transfer) ------------------------------------------------


def _client(args: argparse.Namespace) -> int:
    host, port = args.host, args.port
    buf = bytearray(1 << 20)
    received = 0
    started = time.perf_counter()
    with socket.create_connection((host, port)) as sock:
        if args.client == "download":
            sock.sendall(f"GET {args.path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        else:
            chunk = bytes(1 << 20)
            left = args.bytes
            while left > 0:
                sock.sendall(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        while n := sock.recv_into(buf):
            received += n
    seconds = time.perf_counter() - started
    print(json.dumps({"received": received, "seconds": seconds}), flush=True)
    return 0


async def transfer(kind: str, host: str, port: int, *, path: str = "/big", size: int = 0) -> tuple[int, float]:
    """(bytes received, seconds) of one transfer by a client process; the loop keeps
    serving the forward meanwhile."""
    argv = [sys.executable, "-m", "tests.bench.forward_throughput", "--client", kind, "--host", host,
            "--port", str(port), "--path", path, "--bytes", str(size)]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client failed ({proc.returncode})")
    result = json.loads(out)
    return result["received"], result["seconds"]


ROOT = Path(__file__).resolve().parents[2]


# ---- the emulated API server (a child process) ---------------------------------------------------


async def _serve_emulator(args: argparse.Namespace) -> int:
    """Child: one Deployment `web` with one pod relayed to the containers; then obey JSON
    lines on stdin (`replace`, `quit`), answering each with one JSON line."""
    from tests.support.kube_emulator import KubeEmulator

    targets = json.loads(args.targets)

    def say(data: dict) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    async with KubeEmulator() as kube:
        kube.add_deployment(NS, "web", ports=[HTTP_PORT, SINK_PORT])
        number = 0

        def new_pod(color: str) -> str:
            nonlocal number
            number += 1
            name = f"web-5f7c9-{number:05d}"
            kube.add_pod(NS, name, owner="web")
            kube.set_portforward_target(NS, name, HTTP_PORT, *targets[color])
            kube.set_portforward_target(NS, name, SINK_PORT, *targets["sink"])
            return name

        pod = new_pod("blue")
        kube.write_kubeconfig(args.kubeconfig)
        say({"ready": True, "url": kube.url, "pod": pod})
        from tests.bench._common import stdin_commands

        commands = stdin_commands()
        while (command := await commands.get()) is not None and command["cmd"] != "quit":
            if command["cmd"] == "replace":
                old = pod
                kube.delete_object("pods", NS, old)
                deleted_at = time.monotonic()  # system-wide: comparable with the parent's
                pod = new_pod(command["color"])
                say({"old": old, "new": pod, "deleted_at": deleted_at})
    return 0


class Emulator:
    """The emulator child, driven over its stdin/stdout from the parent's event loop."""

    def __init__(self, proc: asyncio.subprocess.Process, info: dict) -> None:
        self.proc = proc
        self.info = info
        import psutil

        self.ps = psutil.Process(proc.pid)

    @classmethod
    async def start(cls, kubeconfig: Path, targets: dict[str, tuple[str, int]]) -> Emulator:
        argv = [sys.executable, "-m", "tests.bench.forward_throughput", "--serve-emulator",
                "--kubeconfig", str(kubeconfig), "--targets", json.dumps(targets)]
        proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        emulator = cls(proc, {})
        emulator.info = await emulator._read()
        return emulator

    async def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the emulator process ended (exit code {self.proc.returncode})")
        return json.loads(line)

    async def ask(self, cmd: str, **params: Any) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **params}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read()

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 10)
            except (OSError, TimeoutError):
                self.proc.kill()
                await self.proc.wait()


# ---- the containers ----------------------------------------------------------------------------------


def httpd(color: str, mib: int) -> dict:
    from tests.support.dockerenv import TEST_IMAGE

    big = f" && head -c {mib * 1024 * 1024} /dev/urandom > /srv/big" if mib else ""
    script = f"mkdir -p /srv && echo {color} > /srv/index.html{big} && exec httpd -f -p {HTTP_PORT} -h /srv"
    return {"image": TEST_IMAGE, "command": ["sh", "-c", script], "stop_grace_period": "1s"}


def sink(size: int) -> dict:
    from tests.support.dockerenv import TEST_IMAGE

    return {"image": TEST_IMAGE, "stop_grace_period": "1s",
            "command": ["nc", "-ll", "-p", str(SINK_PORT), "-e", "sh", "-c", f"head -c {size} >/dev/null; echo done"]}


# ---- measuring -----------------------------------------------------------------------------------------


async def until(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return value


async def page(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    return raw.partition(b"\r\n\r\n")[2].decode().strip()


async def measure(args: argparse.Namespace, targets: dict[str, tuple[str, int]], workdir: Path) -> dict:
    from backends.hub import Hub
    from backends.kube import KubeAdapter
    from backends.model import ForwardSpec, ForwardState, Source
    from tests.support import hubs

    size = args.mb * 1024 * 1024
    emulator = await Emulator.start(workdir / "kubeconfig", targets)
    result: dict[str, Any] = {"mib": args.mb, "runs": args.runs}
    try:
        hub = Hub([KubeAdapter(kubeconfig=str(workdir / "kubeconfig"), api_timeout=5.0)])
        async with hubs.running_hub(hub, wait_connected=Source.K3S):
            forwards = hub.forwards
            first_pod = emulator.info["pod"]
            http = await forwards.start(ForwardSpec(NS, "deployment", "web", HTTP_PORT, 0))
            upload = await forwards.start(ForwardSpec(NS, "deployment", "web", SINK_PORT, 0))
            by_name = await forwards.start(ForwardSpec(NS, "pod", first_pod, HTTP_PORT, 0))
            for pf in (http, upload, by_name):
                await until(lambda pf=pf: forwards.forwards[pf.key].state == ForwardState.ACTIVE, f"{pf.key} active")

            # ---- throughput, direct and forwarded alternating
            rates: dict[str, list[float]] = {k: [] for k in ("download direct", "download forward",
                                                             "upload direct", "upload forward")}
            own_cpu = child_cpu = 0.0
            forwarded_bytes = 0
            paths = {
                "download": {"direct": targets["blue"], "forward": ("127.0.0.1", http.spec.local_port)},
                "upload": {"direct": targets["sink"], "forward": ("127.0.0.1", upload.spec.local_port)},
            }
            for run in range(args.runs + 1):  # the first round warms up (not counted)
                for kind in ("download", "upload"):
                    order = ("direct", "forward") if run % 2 else ("forward", "direct")
                    for how in order:
                        host, port = paths[kind][how]
                        cpu0, child0 = time.process_time(), emulator.cpu_seconds()
                        received, seconds = await transfer(kind, host, port, size=size)
                        if how == "forward" and run:
                            own_cpu += time.process_time() - cpu0
                            child_cpu += emulator.cpu_seconds() - child0
                            forwarded_bytes += size
                        moved = received if kind == "download" else size
                        if kind == "download" and received < size:
                            raise RuntimeError(f"{kind} {how}: {received} bytes, expected {size}+")
                        if kind == "upload" and received != len(b"done\n"):
                            raise RuntimeError(f"{kind} {how}: the sink answered {received} bytes")
                        if run:
                            rates[f"{kind} {how}"].append(moved / seconds / MB)
            result["rates"] = {k: summary(v) for k, v in rates.items()}
            result["cpu_ms_per_mb"] = {"ferryman": own_cpu / (forwarded_bytes / MB) * 1000,
                                       "emulator": child_cpu / (forwarded_bytes / MB) * 1000}
            result["counters"] = {
                "download bytes_in": forwards.forwards[http.key].bytes_in,
                "upload bytes_out": forwards.forwards[upload.key].bytes_out,
            }

            # ---- re-attach after the pod is replaced
            reattach: dict[str, list[float]] = {"deploy/web": [], f"pod/{first_pod} (by name)": []}
            for i in range(args.replacements):
                color = "green" if i % 2 == 0 else "blue"
                answered: dict[str, float] = {}

                async def poll(label: str, port: int, color: str = color, answered: dict = answered) -> None:
                    while await page(port) != color:
                        pass  # answered by the old pod, before its deletion reached us
                    answered[label] = time.monotonic()

                pollers = [asyncio.create_task(poll(label, pf.spec.local_port))
                           for label, pf in zip(reattach, (http, by_name), strict=True)]
                await asyncio.sleep(0.1)  # the pollers are connecting and being answered
                replaced = await emulator.ask("replace", color=color)
                await asyncio.wait_for(asyncio.gather(*pollers), 60)
                for label, times in reattach.items():
                    times.append((answered[label] - replaced["deleted_at"]) * 1000)
                pf = forwards.forwards[by_name.key]
                assert (pf.pod, pf.previous_pod) == (replaced["new"], replaced["old"]), (pf, replaced)
                await asyncio.sleep(0.2)
            result["reattach_ms"] = {k: summary(v) for k, v in reattach.items()}
    finally:
        await emulator.close()
    return result


def summary(values: list[float]) -> dict[str, float]:
    from tests.bench._common import percentile

    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "p95": percentile(values, 95)}


def report(args: argparse.Namespace, r: dict) -> dict:
    from tests.bench._common import ratio

    rates = r["rates"]
    print(f"\nthroughput: {args.mb} MiB per transfer, {args.runs} runs each (after one warm-up round), "
          "direct and forwarded alternating; MB = 10^6 bytes")
    for kind in ("download", "upload"):
        direct, forward = rates[f"{kind} direct"], rates[f"{kind} forward"]
        print(f"  {kind:<9} direct  median {direct['median']:8.1f} MB/s  (min {direct['min']:.1f}, max {direct['max']:.1f})")
        print(f"  {'':<9} forward median {forward['median']:8.1f} MB/s  (min {forward['min']:.1f}, max {forward['max']:.1f})"
              f"   forward/direct {ratio(forward['median'], direct['median'])}")
    cpu = r["cpu_ms_per_mb"]
    print(f"  CPU per forwarded MB: Ferryman {cpu['ferryman']:.1f} ms, emulated API server {cpu['emulator']:.1f} ms")
    print("\nre-attach after the pod is replaced (delete -> first answer from the new pod through the forward):")
    for label, s in r["reattach_ms"].items():
        print(f"  {label:<36} n={s['n']:<3} median {s['median']:7.1f}  p95 {s['p95']:7.1f}  max {s['max']:7.1f}  (ms)")
    print("\nreproduce: .venv/bin/python -m tests.bench.forward_throughput "
          f"--mb {args.mb} --runs {args.runs} --replacements {args.replacements}")
    return {
        "download_direct_mbps": rates["download direct"]["median"],
        "download_forward_mbps": rates["download forward"]["median"],
        "upload_direct_mbps": rates["upload direct"]["median"],
        "upload_forward_mbps": rates["upload forward"]["median"],
        "cpu_ms_per_mb": cpu,
        "reattach_ms": {label: s for label, s in r["reattach_ms"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64, help="MiB per transfer")
    parser.add_argument("--runs", type=int, default=5, help="transfers of each kind and path")
    parser.add_argument("--replacements", type=int, default=10, help="pod replacements timed")
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--targets", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("download", "upload"), help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/big", help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return _client(args)
    if args.serve_emulator:
        return asyncio.run(_serve_emulator(args))

    import docker

    from tests.bench._common import emit_summary, machine_line
    from tests.support.dockerenv import ComposeProject, container_ip, ensure_test_image, wait_listening

    print("forward_throughput:", machine_line(), flush=True)
    size = args.mb * 1024 * 1024
    client = docker.from_env()
    ensure_test_image(client)
    with tempfile.TemporaryDirectory(prefix="ferryman-bench-") as tmp:
        project = ComposeProject(Path(tmp), {"blue": httpd("blue", args.mb), "green": httpd("green", 0),
                                             "sink": sink(size)})
        try:
            print(f"  starting the containers (compose project {project.name})...", flush=True)
            project.up()
            targets = {
                "blue": (container_ip(project.container_ids(client, "blue")[0]), HTTP_PORT),
                "green": (container_ip(project.container_ids(client, "green")[0]), HTTP_PORT),
                "sink": (container_ip(project.container_ids(client, "sink")[0]), SINK_PORT),
            }
            for address in targets.values():
                wait_listening(address)
            print("  measuring...", flush=True)
            result = asyncio.run(measure(args, targets, Path(tmp)))
        finally:
            project.down()
            client.close()
    emit_summary("forward_throughput", report(args, result))
    return 0


if __name__ == "__main__":
    from tests.bench._common import run_main

    sys.exit(run_main(main))
