"""`ferryman promote SERVICE --dry-run`, run as a user runs it: manifests on stdout,
warnings on stderr, the compose files found from a running service's labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.dockerenv import httpd_service
from tests.test_cli import ferryman

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


def documents(stdout: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(stdout) if d]


def test_dry_run_prints_the_manifests_and_says_the_rest_on_stderr():
    done = ferryman("promote", "web", "-f", str(FIXTURES / "webapp" / "docker-compose.yml"), "--dry-run")
    assert done.returncode == 0, done.stderr
    docs = documents(done.stdout)
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Deployment", "web") in kinds and ("Service", "web") in kinds and ("Secret", "web-env") in kinds
    assert {d["metadata"]["namespace"] for d in docs} == {"webapp"}  # the project's name
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ferryman" for d in docs)
    # Warnings and the checklist go to stderr, never into the YAML.
    assert "warning: depends_on: db (healthy), redis (started)" in done.stderr
    assert "forward: localhost:8080 will keep answering" in done.stderr
    assert "checklist:" in done.stderr and "checklist" not in done.stdout


def test_namespace_and_image_flags():
    done = ferryman("promote", "web", "-f", str(FIXTURES / "webapp" / "docker-compose.yml"), "--dry-run",
                    "--ns", "staging", "--image", "registry.local/web:ferryman-0123456789ab")
    assert done.returncode == 0, done.stderr
    deployment = next(d for d in documents(done.stdout) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["metadata"]["namespace"] == "staging"
    assert container["image"] == "registry.local/web:ferryman-0123456789ab"
    assert container["imagePullPolicy"] == "IfNotPresent"  # a delivered image is never pulled again


@pytest.mark.parametrize(("args", "code", "said"), [
    (["nope", "-f", str(FIXTURES / "webapp" / "docker-compose.yml"), "--dry-run"], 1, "no service 'nope' in project"),
    (["web", "-f", str(FIXTURES / "broken" / "docker-compose.yml"), "--dry-run"], 1, "compose file does not parse"),
    (["web", "-f", str(FIXTURES / "webapp" / "docker-compose.yml")], 2, "add --yes to go ahead, or --dry-run"),
])
def test_bad_input_is_said_and_nothing_is_printed(args: list[str], code: int, said: str):
    done = ferryman("promote", *args)
    assert done.returncode == code
    assert said in done.stderr and done.stdout == ""


@pytest.mark.docker
def test_the_compose_files_of_a_running_service_are_found_from_its_labels(compose_project, tmp_path: Path):
    project = compose_project({"web": httpd_service(port=0)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = ferryman("promote", "web", "-p", project.name, "--dry-run")
    assert done.returncode == 0, done.stderr
    deployment = next(d for d in documents(done.stdout) if d["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == project.name
    assert deployment["metadata"]["annotations"]["ferryman.io/compose-project"] == project.name
