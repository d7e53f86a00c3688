"""The headless CLI, run as a user runs it: the installed `ferryman` console script."""

from __future__ import annotations

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


@pytest.mark.docker
def test_status_table_and_json_show_the_running_project(compose_project):
    project = compose_project({"web": httpd_service(port=0, healthcheck=False), "jobs": sleeper_service()})
    table = ferryman("status")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["PROJECT", "SERVICE", "STATE", "HEALTH", "READY", "PORTS", "IMAGE", "UPTIME", "RESTARTS"]
    mine = [line.split() for line in lines if line.startswith(project.name + " ")]
    assert [row[:3] for row in mine] == [[project.name, "jobs", "running"], [project.name, "web", "running"]]

    done = ferryman("status", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["sources"][0]["state"] == "connected"
    web = next(w for w in doc["workloads"] if w["group"] == project.name and w["name"] == "web")
    assert (web["running"], web["desired"], web["health"]) == (1, 1, "no healthcheck")
    assert web["ports"][0]["container_port"] == 8080 and web["ports"][0]["host_port"]
    assert web["instances"][0]["state"] == "running"


@pytest.mark.docker
def test_status_reads_the_endpoint_from_docker_host(compose_project):
    project = compose_project({"jobs": sleeper_service()})
    env = {**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"}
    done = ferryman("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["sources"][0]["endpoint"] == "unix:///var/run/docker.sock"
    assert any(w["group"] == project.name for w in doc["workloads"])
