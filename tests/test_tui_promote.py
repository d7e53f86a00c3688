"""`p` on a Compose service of a real project: the promotion preview, planned from the
compose files named in its containers' labels and resolved by the real compose CLI."""

from __future__ import annotations

import socket

import pytest

from tests.support.dockerenv import httpd_service
from tests.support.pilot import wait_for
from tests.test_tui_docker import SIZE, TIMEOUT, make_app, service_key
from tui.widgets.promote_preview import PromotePreviewScreen


@pytest.mark.docker
async def test_p_previews_the_manifests_checklist_and_warnings_with_secrets_masked(compose_project):
    with socket.socket() as probe:  # a fixed host port: a random one is no localhost:PORT to keep
        probe.bind(("127.0.0.1", 0))
        host_port = probe.getsockname()[1]
    web = httpd_service(port=host_port, environment={"API_TOKEN": "s3cr3t-value", "MODE": "demo"})
    project = compose_project({"web": web})
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: service_key(app, project.name, "web") is not None, TIMEOUT, "the web row")
        view = app.current_view
        view.table.move_cursor(row=view.shown_keys.index(service_key(app, project.name, "web")))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PromotePreviewScreen), TIMEOUT, "the preview")
        screen = app.screen
        await wait_for(pilot, lambda: "kind: Deployment" in screen.text, TIMEOUT, "the manifests")
        text = screen.text
        assert f"# Promote compose {project.name}/web to k3s namespace" in text
        assert "# checklist:" in text and "# checklist ✔ health checks" in text
        assert "kind: Service" in text and "app.kubernetes.io/managed-by: ferryman" in text
        assert "API_TOKEN" in text and "s3cr3t-value" not in text  # on screen, a secret is masked
        assert f"# forward: localhost:{host_port} will keep answering" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PromotePreviewScreen), TIMEOUT, "closed")


async def test_p_is_hidden_in_readonly_mode():
    from backends.hub import Hub
    from tests.support.scripted import FIXED_NOW, ScriptedAdapter, demo_instances
    from backends.model import Snapshot, Source
    from tui.app import FerrymanApp

    adapter = ScriptedAdapter()
    app = FerrymanApp(Hub([adapter]), readonly=True, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        adapter.emit(adapter.connected(), Snapshot(Source.COMPOSE, tuple(demo_instances())))
        await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == 7, what="rows")
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, PromotePreviewScreen)


# ---- the whole promotion through the keys: p, a, y … shift-p, s ------------------------------

from backends.config import Config  # noqa: E402
from backends.model import Source, WorkloadKey  # noqa: E402
from backends.promote.names import kube_name  # noqa: E402
from tests.support import hubs  # noqa: E402
from tests.test_promote_pipeline import (  # noqa: E402, F401 - pod_server is a fixture
    COMPOSE_PAGE,
    POD_PAGE,
    eventually_answers,
    free_port,
    new_hub,
    pod_server,
)
from tui.app import FerrymanApp  # noqa: E402
from tui.screens import ChoiceScreen, ConfirmScreen  # noqa: E402
from tui.widgets.promote_progress import PromoteProgressScreen  # noqa: E402


@pytest.mark.docker
async def test_p_a_y_promotes_with_progress_and_shift_p_brings_it_back(
    docker_client, compose_project, kube, pod_server, tmp_path  # noqa: ANN001, F811
):
    port = free_port()
    project = compose_project({"web": httpd_service(port, stop_grace_period="1s")})
    namespace = kube_name(project.name)
    app = FerrymanApp(new_hub(kube), Config(), forwards_file=tmp_path / "forwards.yaml")
    async with app.run_test(size=SIZE) as pilot:
        hub = app.hub
        await wait_for(pilot, lambda: hubs.connected(hub, Source.K3S) and service_key(app, project.name, "web"),
                       TIMEOUT, "k3s connected and the web row")
        await eventually_answers(port, COMPOSE_PAGE, "Compose's web on its host port")
        view = app.current_view
        view.table.move_cursor(row=view.shown_keys.index(service_key(app, project.name, "web")))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PromotePreviewScreen) and app.screen.plan is not None,
                       TIMEOUT, "the plan")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), TIMEOUT, "the confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, PromoteProgressScreen), TIMEOUT, "the progress")
        progress = app.screen
        assert isinstance(progress, PromoteProgressScreen)
        # The test plays the controller: a Ready pod once the Deployment is applied.
        await wait_for(pilot, lambda: kube.get_object("deployments", namespace, "web") is not None, TIMEOUT,
                       "the Deployment applied")
        assert _compose_running(docker_client, project)  # not stopped before the pods are ready
        kube.add_pod(namespace, "web-5d8f7-abcde", owner="web", phase="Running", ready=True)
        kube.set_portforward_target(namespace, "web-5d8f7-abcde", 8080, *pod_server)
        await wait_for(pilot, lambda: progress.finished is not None, 60, "the promotion to end")
        assert progress.finished, progress.outcome
        assert "✔ rollout" in progress.steps_text and "✔ forward" in progress.steps_text
        await eventually_answers(port, POD_PAGE, "localhost:PORT answering from the pod")
        assert not _compose_running(docker_client, project)
        await pilot.press("escape")
        # The row has moved to k3s (its Compose side stopped); shift-p, s: back to Compose.
        def location() -> str | None:  # the row's key may change as other projects' rows come and go
            key = service_key(app, project.name, "web")
            return app.current_view.shown_rows()[key][1].text if key else None

        await wait_for(pilot, lambda: location() == "k3s", TIMEOUT, "web in k3s")
        view = app.current_view
        view.table.move_cursor(row=view.shown_keys.index(service_key(app, project.name, "web")))
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), TIMEOUT, "the demote choice")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromoteProgressScreen), TIMEOUT, "the demote progress")
        demoting = app.screen
        await wait_for(pilot, lambda: demoting.finished is not None, 60, "the demotion to end")
        assert demoting.finished, demoting.outcome
        await eventually_answers(port, COMPOSE_PAGE, "Compose answering on its port again")
        assert kube.get_object("deployments", namespace, "web")["spec"]["replicas"] == 0
        assert WorkloadKey(Source.COMPOSE, project.name, "web").id in hub.store.workloads
        kube.delete_object("pods", namespace, "web-5d8f7-abcde")  # the controller's part of scaling to 0
        await wait_for(pilot, lambda: location() == "compose", TIMEOUT, "the row back in compose")
        # Promoting again: the preview says what would change in the cluster (replicas 0 → 1).
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PromoteProgressScreen), TIMEOUT, "the table")
        view = app.current_view
        view.table.move_cursor(row=view.shown_keys.index(service_key(app, project.name, "web")))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PromotePreviewScreen) and app.screen.plan is not None
                       and "kind: Deployment" in app.screen.text, TIMEOUT, "the preview again")
        text = app.screen.text
        assert "# Against what the cluster has now:" in text
        assert f"# ~ Deployment {namespace}/web: changes" in text and "replicas: 1" in text


def _compose_running(client, project) -> bool:  # noqa: ANN001
    ids = project.container_ids(client, "web")
    return bool(ids) and all(client.api.inspect_container(i)["State"]["Running"] for i in ids)
