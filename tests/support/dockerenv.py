"""Real Docker for the tests: the busybox test image and throw-away compose projects.

No image can be pulled on these machines, so the test image is imported from the
static busybox binary (see ../shared/TESTING.md). Every project gets a unique name so
that tests never see each other's containers.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import docker
import yaml

TEST_IMAGE = "ferryman-test/busybox:1"
APPLETS = (
    "sh", "httpd", "wget", "sleep", "echo", "cat", "ls", "true", "false", "kill", "ps",
    "env", "printf", "seq", "date", "yes", "head", "nc", "tail", "grep", "mkdir", "rm", "test",
)


def engine_problem() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return f"{type(exc).__name__}: {exc}"


def ensure_test_image(client: docker.DockerClient) -> str:
    """Import the busybox image once per machine (a second call is a cheap lookup)."""
    try:
        client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    except docker.errors.ImageNotFound:
        pass
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise RuntimeError("/bin/busybox is missing: run tests/support/engine.sh")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "www", "tmp"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        page = b"ferryman test page\n"
        info = tarfile.TarInfo("www/index.html")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    subprocess.run(
        ["docker", "import", "-", TEST_IMAGE], input=buf.getvalue(), check=True, capture_output=True
    )
    return TEST_IMAGE


def compose_cli() -> list[str]:
    """The compose CLI on this machine: v2 plugin if present, else v1."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("no compose CLI: run tests/support/engine.sh")


class ComposeProject:
    """A compose project in a temp dir, driven through the real compose CLI."""

    def __init__(self, root: Path, services: dict, name: str | None = None) -> None:
        self.name = name or f"fmtest{uuid.uuid4().hex[:8]}"
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = self.dir / "docker-compose.yml"
        self.file.write_text(yaml.safe_dump({"version": "3.8", "services": services}, sort_keys=False))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [*compose_cli(), "-p", self.name, "-f", str(self.file), *args]
        return subprocess.run(argv, cwd=self.dir, check=check, capture_output=True, text=True)

    def up(self, *services: str) -> None:
        self.cli("up", "-d", *services)

    def down(self) -> None:
        self.cli("down", "-v", "--remove-orphans", "-t", "1", check=False)

    def container_ids(self, client: docker.DockerClient, service: str | None = None) -> list[str]:
        labels = [f"com.docker.compose.project={self.name}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return [c.id for c in client.containers.list(all=True, filters={"label": labels})]


def httpd_service(port: int | None = None, healthcheck: bool = True, **extra) -> dict:
    """A busybox httpd service; `port` publishes 8080 on that host port (0 = any)."""
    svc: dict = {"image": TEST_IMAGE, "command": ["httpd", "-f", "-p", "8080", "-h", "/www"]}
    if port is not None:
        svc["ports"] = [f"{port}:8080" if port else "8080"]
    if healthcheck:
        svc["healthcheck"] = {
            "test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"],
            "interval": "1s",
            "timeout": "2s",
            "retries": 2,
        }
    svc.update(extra)
    return svc


def sleeper_service(**extra) -> dict:
    svc: dict = {"image": TEST_IMAGE, "command": ["sleep", "100000"], "stop_grace_period": "1s"}
    svc.update(extra)
    return svc


async def require_compose_cli() -> None:
    """The compose CLI that promotion resolves services with is here, or the test fails
    (where Docker must run: CI) or is skipped (elsewhere), saying why."""
    import pytest

    from backends.promote import PromoteError, compose_cli as find_compose_cli

    try:
        await find_compose_cli()
    except PromoteError as exc:
        if must_run_docker():
            pytest.fail(f"{exc}; run tests/support/engine.sh", pytrace=False)
        pytest.skip(str(exc))


def must_run_docker() -> bool:
    """In CI (or when asked) a missing engine is a failure, never a silent skip."""
    return bool(os.environ.get("CI") or os.environ.get("FERRYMAN_REQUIRE_DOCKER"))


def container_ip(container_id: str) -> str:
    """The container's address on its (compose project's) network: reachable from the host."""
    client = docker.from_env()
    try:
        networks = client.api.inspect_container(container_id)["NetworkSettings"]["Networks"]
    finally:
        client.close()
    return next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))


def wait_listening(address: tuple[str, int], timeout: float = 30.0) -> None:
    """Block until something accepts TCP connections at `address` (a server in a fresh container)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


__all__ = [
    "TEST_IMAGE", "ComposeProject", "compose_cli", "container_ip", "engine_problem", "ensure_test_image",
    "httpd_service", "must_run_docker", "require_compose_cli", "sleeper_service", "wait_listening",
]
