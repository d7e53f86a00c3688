"""The headless CLI, run as a user runs it: the installed `ferryman` console script."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dockerenv import httpd_service, sleeper_service

FERRYMAN = str(Path(sys.executable).with_name("ferryman"))


def ferryman(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FERRYMAN, *args], capture_output=True, text=True, timeout=60, env=env)


def test_version():
    done = ferryman("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("ferryman 0.")


def test_a_malformed_config_is_named_with_its_line(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("ui:\n  readonly: maybe\n  them: dark\n")
    done = ferryman("--config", str(bad), "status")
    assert done.returncode == 2
    assert f"{bad}:2: ui.readonly" in done.stderr
    assert f"{bad}:3: ui.them: unknown key (did you mean 'theme'?)" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_with_no_engine_says_why_and_fails(tmp_path):
    sock = tmp_path / "nothing.sock"
    done = ferryman("--docker-host", f"unix://{sock}", "status", "--timeout", "5")
    assert done.returncode == 1
    assert f"Docker: unreachable at unix://{sock}" in done.stderr
    assert "socket not found" in done.stderr
    assert "Traceback" not in done.stderr


def table_rows(stdout: str) -> tuple[list[str], list[list[str]]]:
    """(status lines, table rows split on runs of 2+ spaces) of `ferryman status`."""
    head, _, table = stdout.partition("\n\n")
    header, *lines = table.splitlines()
    assert header.split() == [
        "NAME", "LOCATION", "PROJECT/NS", "COMPOSE", "K3S", "HEALTH", "PORTS", "IMAGE", "UPTIME", "RESTARTS",
    ]
    starts = [header.index(title) for title in header.split()]
    rows = [[line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)] for line in lines]
    return head.splitlines(), rows


@pytest.mark.docker
def test_status_table_and_json_show_the_running_project(compose_project):
    project = compose_project({"web": httpd_service(port=0, healthcheck=False), "jobs": sleeper_service()})
    table = ferryman("--no-kube", "status")
    assert table.returncode == 0, table.stderr
    statuses, rows = table_rows(table.stdout)
    assert statuses[0].startswith("compose: connected unix:///var/run/docker.sock")
    mine = [row for row in rows if row[2] == project.name]
    assert [row[:5] for row in mine] == [
        ["jobs", "compose", project.name, "running 1/1", "-"],
        ["web", "compose", project.name, "running 1/1", "-"],
    ]

    done = ferryman("--no-kube", "status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [(s["source"], s["state"]) for s in doc["sources"]] == [("compose", "connected")]
    service = next(s for s in doc["services"] if s["compose"] and s["compose"]["group"] == project.name
                   and s["name"] == "web")
    web = service["compose"]
    assert service["location"] == "compose" and service["k3s"] is None
    assert (web["running"], web["desired"], web["health"]) == (1, 1, "no healthcheck")
    assert web["health_reason"] == "no healthcheck" and service["health_reason"] == "no healthcheck"
    assert web["ports"][0]["container_port"] == 8080 and web["ports"][0]["host_port"]
    assert web["instances"][0]["state"] == "running"


@pytest.mark.docker
async def test_status_joins_compose_and_kubernetes(compose_project, kube):
    project = compose_project({"web": sleeper_service()})
    kube.add_namespace(project.name)
    kube.add_deployment(project.name, "web", replicas=1)
    kube.add_pod(project.name, "web-abc-1", owner="web")
    kube.add_deployment("default", "only-k3s", replicas=0)
    # The emulator answers from this event loop: the CLI must run beside it, not block it.
    done = await asyncio.to_thread(ferryman, "status")
    assert done.returncode == 0, done.stderr
    statuses, rows = table_rows(done.stdout)
    assert f"k3s: connected emulated @ {kube.url} (v1.31.4+k3s1), all namespaces" in statuses
    web = next(row for row in rows if row[0] == "web" and project.name in row[2])
    assert web[1:5] == ["both", project.name, "running 1/1", "running 1/1"]  # project = namespace: said once
    assert next(row for row in rows if row[0] == "only-k3s")[1:5] == ["k3s", "default", "-", "scaled to 0 0/0"]
    doc = json.loads((await asyncio.to_thread(ferryman, "status", "--json", "-n", project.name)).stdout)
    k3s = next(s for s in doc["sources"] if s["source"] == "k3s")
    assert k3s["scope"] == f"namespace {project.name}"
    assert {s["name"] for s in doc["services"] if s["k3s"]} == {"web"}


async def test_status_without_kubeconfig_is_compose_only_and_not_a_failure(tmp_path):
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "absent"), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    done = await asyncio.to_thread(ferryman, "status", "--timeout", "3", env=env)
    assert "k3s: not configured (no kubeconfig" in done.stdout
    assert "k3s" not in done.stderr  # only Docker's absence is a problem here


@pytest.mark.docker
def test_status_reads_the_endpoint_from_docker_host(compose_project):
    project = compose_project({"jobs": sleeper_service()})
    env = {**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"}
    done = ferryman("--no-kube", "status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["sources"][0]["endpoint"] == "unix:///var/run/docker.sock"
    assert any(s["compose"]["group"] == project.name for s in doc["services"] if s["compose"])


@pytest.mark.parametrize("argv", [
    ["--kubeconfig", "/k", "--context", "dev", "-n", "shop", "status"],
    ["status", "--kubeconfig", "/k", "--context", "dev", "-n", "shop"],
])
def test_kubernetes_flags_beat_the_config_file_before_or_after_status(argv):
    from backends.config import Config
    from tui.cli import build_parser, with_flags

    config = with_flags(Config(), build_parser().parse_args(argv))
    assert (config.kubernetes.kubeconfig, config.kubernetes.context, config.kubernetes.namespace) == (
        "/k", "dev", "shop")
    assert config.kubernetes.enabled
    everything = with_flags(config, build_parser().parse_args(["-A", "--no-kube"]))
    assert everything.kubernetes.namespace is None and not everything.kubernetes.enabled
