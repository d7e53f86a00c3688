"""`ferryman promote SERVICE --dry-run`, run as a user runs it: manifests on stdout,
warnings on stderr, the compose files found from a running service's labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.dockerenv import httpd_service
from tests.test_cli import ferryman
from tests.test_promote_pipeline import pod_server  # noqa: F401 - a fixture

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


def test_yes_needs_both_worlds_connected(tmp_path: Path):
    done = ferryman("promote", "web", "-f", str(FIXTURES / "webapp" / "docker-compose.yml"), "--yes",
                    "--kubeconfig", str(tmp_path / "missing"), "--timeout", "3")
    assert done.returncode == 1
    assert "Docker and Kubernetes must both be connected to promote" in done.stderr


@pytest.mark.docker
async def test_yes_promotes_headless_and_keeps_the_port_answering_until_ctrl_c(compose_project, kube, pod_server):  # noqa: F811
    import asyncio
    import signal
    import subprocess

    from backends.promote.names import kube_name
    from tests.test_cli import FERRYMAN
    from tests.test_promote_pipeline import COMPOSE_PAGE, POD_PAGE, eventually_answers, free_port

    port = free_port()
    project = compose_project({"web": httpd_service(port, stop_grace_period="1s")})
    await eventually_answers(port, COMPOSE_PAGE, "Compose's web")
    namespace = kube_name(project.name)
    proc = subprocess.Popen([FERRYMAN, "promote", "web", "-p", project.name, "--yes", "--kubeconfig",
                             str(kube.kubeconfig)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if kube.get_object("deployments", namespace, "web") is not None or proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        kube.add_pod(namespace, "web-5d8f7-abcde", owner="web", phase="Running", ready=True)
        kube.set_portforward_target(namespace, "web-5d8f7-abcde", 8080, *pod_server)
        await eventually_answers(port, POD_PAGE, "localhost:PORT answering from the pod")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "rollout: done" in err and "forwarding http://localhost:" in err, err
    assert kube.get_object("deployments", namespace, "web")["metadata"]["labels"][
        "app.kubernetes.io/managed-by"] == "ferryman"


def test_the_preview_diff_says_new_unchanged_changed_and_someone_elses():
    from backends.promote.plan import diff_objects

    def deploy(replicas: int, managed: str | None = "ferryman", image: str = "web:1") -> dict:
        labels = {"app": "web"} | ({"app.kubernetes.io/managed-by": managed} if managed else {})
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "labels": labels},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-env", "namespace": "shop"},
              "data": {"TOKEN": "czNjcjN0"}}
    live = deploy(0) | {"status": {"readyReplicas": 0}}
    live["metadata"] |= {"uid": "u-1", "resourceVersion": "42", "managedFields": [{"manager": "ferryman"}]}
    text = diff_objects([secret, deploy(1, image="web:2")], [None, live])
    assert "+ Secret shop/web-env: new" in text
    assert "~ Deployment shop/web: changes" in text
    assert "-    replicas: 0" in text.replace("  -", "-") or "-  replicas: 0" in text
    assert "web:2" in text and "uid" not in text and "readyReplicas" not in text
    assert "czNjcjN0" not in text  # secret values are masked in the preview
    assert diff_objects([deploy(1)], [deploy(1)]) == "= Deployment shop/web: unchanged"
    assert diff_objects([deploy(1)], [deploy(1, managed=None)]).startswith(
        "! Deployment shop/web: exists and is not managed by Ferryman")
