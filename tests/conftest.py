"""Shared fixtures: a real Docker engine and real compose projects.

Docker-backed tests carry the `docker` marker. Without an engine they skip on a
developer's machine, but fail in CI (CI=true) or with FERRYMAN_REQUIRE_DOCKER=1:
there, a missing engine is a broken set-up, never a reason to skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dockerenv import ComposeProject, engine_problem, ensure_test_image, must_run_docker
from tests.support.kube_emulator import kube  # noqa: F401 - fixture: the emulated Kubernetes API server
from tests.support.private_dockerd import private_dockerd  # noqa: F401 - fixture: a daemon tests may restart


@pytest.fixture(scope="session")
def docker_client():
    import docker

    problem = engine_problem()
    if problem:
        message = f"no Docker engine ({problem}); run tests/support/engine.sh"
        if must_run_docker():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    client = docker.from_env()
    ensure_test_image(client)
    yield client
    client.close()


@pytest.fixture
def compose_project(docker_client, tmp_path: Path) -> Iterator:
    """Factory: `compose_project({"web": httpd_service(0)})` -> a started ComposeProject.

    Every project made through it is taken down after the test."""
    made: list[ComposeProject] = []

    def make(services: dict, up: bool = True, name: str | None = None) -> ComposeProject:
        project = ComposeProject(tmp_path, services, name=name)
        made.append(project)
        if up:
            project.up()
        return project

    yield make
    for project in made:
        project.down()
