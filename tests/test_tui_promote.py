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
