"""A second, throw-away Docker daemon for tests that stop and restart "the" engine.

Reconnect tests must not restart the machine's dockerd: every other test uses it.
`PrivateDockerd` runs its own dockerd (own socket, data root, exec root and managed
containerd) under a short /tmp directory — unix socket paths are limited to 108
bytes, and containerd's socket lives deep inside the exec root, so pytest's long
tmp_path will not do. Flags that make it work next to the main engine:

    --bridge none --iptables=false --ip-masq=false   no second docker0, no NAT rules
    --shutdown-timeout 2                             SIGTERM stops it in ~2 s, not 15
    --config-file <empty>                            ignore /etc/docker/daemon.json

It comes up in about half a second. On SIGTERM it stops its containers and removes
its socket (so clients then see "socket not found"); without --live-restore the
containers are found exited when it starts again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support.dockerenv import TEST_IMAGE


class PrivateDockerd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.log = root / "dockerd.log"
        self._proc: subprocess.Popen | None = None
        (root / "daemon.json").write_text("{}")

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, listen_on: Path | None = None, timeout: float = 30.0) -> None:
        """Start dockerd listening on `listen_on` (default: `self.socket`) and wait until it
        answers. Another socket lets a test change the daemon's world unseen by clients
        of the usual one."""
        if self.running:
            raise RuntimeError("the private dockerd is already running")
        listen = f"unix://{listen_on or self.socket}"
        argv = [
            "dockerd",
            "--host", listen,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "docker.pid"),
            "--config-file", str(self.root / "daemon.json"),
            "--bridge", "none",
            "--iptables=false",
            "--ip-masq=false",
            "--shutdown-timeout", "2",
        ]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited with {self._proc.returncode}:\n{self._log_tail()}")
            if _answers(listen):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"private dockerd did not answer within {timeout}s:\n{self._log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait (it stops its containers first); SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._kill_orphaned_containerd()

    def docker(self, *args: str, host: str | None = None, input: bytes | None = None) -> str:
        """Run the docker CLI against this daemon; stdout, stripped."""
        done = subprocess.run(
            ["docker", "-H", host or self.host, *args], input=input, capture_output=True, check=True
        )
        return done.stdout.decode().strip()

    def load_image(self, image: str = TEST_IMAGE) -> None:
        """Copy an image from the main engine (nothing can be pulled here)."""
        saved = subprocess.run(["docker", "save", image], capture_output=True, check=True).stdout
        self.docker("load", input=saved)

    def run_service_container(self, project: str, service: str, *, host: str | None = None) -> str:
        """A container labelled the way Compose labels one; its id. --init makes it stop
        at once on SIGTERM (sleep as PID 1 would ignore it)."""
        return self.docker(
            "run", "-d", "--init",
            "--name", f"{project}_{service}_1",
            "--label", f"com.docker.compose.project={project}",
            "--label", f"com.docker.compose.service={service}",
            "--label", "com.docker.compose.container-number=1",
            "--label", "com.docker.compose.oneoff=False",
            TEST_IMAGE, "sleep", "100000",
            host=host,
        )

    def cleanup(self) -> None:
        self.stop()
        self._kill_orphaned_containerd()
        _unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_orphaned_containerd(self) -> None:
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _answers(host: str) -> bool:
    # A raw connect first: docker-py leaks the socket of a failed connect.
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(host.removeprefix("unix://"))
        client = docker.DockerClient(base_url=host, timeout=2)
    except (OSError, docker.errors.DockerException):
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False
    finally:
        client.close()


def _unmount_below(root: Path) -> None:
    """Overlay and shm mounts a killed daemon left behind would make rmtree fail."""
    prefix = str(root) + "/"
    with open("/proc/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for target in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture
def private_dockerd(docker_client) -> Iterator[PrivateDockerd]:
    """A started private dockerd with the test image loaded; gone after the test.

    Depends on `docker_client` so that it skips/fails like every Docker test."""
    daemon = PrivateDockerd(Path(tempfile.mkdtemp(prefix="fm-", dir="/tmp")))
    try:
        daemon.start()
        daemon.load_image()
        yield daemon
    finally:
        daemon.cleanup()


__all__ = ["PrivateDockerd", "private_dockerd"]
