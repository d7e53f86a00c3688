"""Regenerate screenshots/*.svg from the real app on the real Docker engine.

    .venv/bin/python -m tests.support.screenshots

Brings up a small demo compose project ("shop": a healthy web server, an API whose
healthcheck fails, a worker without a healthcheck, a database, a migration job that
exited) and, on the emulated Kubernetes API server the tests use (no cluster runs on
these machines), a namespace "shop" where web already runs as a Deployment, a cache as a
StatefulSet and a crash-looping worker. Drives Ferryman (the real Compose and Kubernetes
adapters) through its screens with a Pilot, saves an SVG of each, and takes the project
down again. Only the demo project is shown (a `-l` filter would show in the breadcrumbs,
so other projects are hidden through the store instead).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

from backends.compose import ComposeAdapter
from backends.config import HealthConfig, HealthUrlConfig
from backends.httpprobe import HttpProber
from backends.hub import Hub
from backends.kube import KubeAdapter
from backends.model import ForwardSpec, HttpCheck, InstanceChanged, Snapshot
from tests.support.dockerenv import TEST_IMAGE, ComposeProject, ensure_test_image, httpd_service, sleeper_service
from tests.support.kube_emulator import KubeEmulator
from tui.app import FerrymanApp
from tui.widgets.forward_dialog import ForwardScreen
from tui.widgets.promote_preview import PromotePreviewScreen

OUT = Path(__file__).resolve().parents[2] / "screenshots"
SIZE = (150, 26)
PROJECT = "shop"

def failing_api() -> dict:
    """Two replicas on ephemeral host ports whose healthcheck never passes."""
    api = httpd_service(port=0, healthcheck=False)
    api["healthcheck"] = {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": "1s", "retries": 1}
    return api


SERVICES = {
    "web": httpd_service(port=38080),
    "api": failing_api(),
    "worker": sleeper_service(),
    "db": sleeper_service(healthcheck={"test": ["CMD", "true"], "interval": "1s", "retries": 1}),
    "migrate": {"image": TEST_IMAGE, "command": ["sh", "-c", "echo migrated; exit 3"]},
}


class OnlyDemo(ComposeAdapter):
    """The real adapter, with other projects on this machine left out of the pictures."""

    async def stream(self):  # noqa: ANN201
        async for event in super().stream():
            if isinstance(event, Snapshot):
                event = Snapshot(event.source, tuple(i for i in event.instances if i.workload.group == PROJECT))
            elif isinstance(event, InstanceChanged) and event.instance.workload.group != PROJECT:
                continue
            yield event


async def until(pilot, condition, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the demo project did not reach the expected state")
        await pilot.pause(0.05)


def health(app: FerrymanApp, service: str) -> str | None:
    row = app.current_view.shown_rows().get(f"name:{service}")
    return row[5].text if row else None


def cluster(kube: KubeEmulator) -> None:
    """What already runs in k3s: web (promoted earlier), a cache, a crash-looping worker."""
    kube.add_namespace(PROJECT)
    kube.add_deployment(PROJECT, "web", replicas=2, ports=[8080], image="registry.local/shop/web:sha-1f3e")
    for suffix in ("x2x7k", "q9w4z"):
        kube.add_pod(PROJECT, f"web-7d4b9c6f5d-{suffix}", owner="web")
    kube.add_statefulset(PROJECT, "cache", replicas=1, image="redis:7")
    kube.add_pod(PROJECT, "cache-0", owner="cache", owner_kind="StatefulSet")
    kube.add_deployment(PROJECT, "worker", replicas=1, image="registry.local/shop/worker:sha-1f3e")
    kube.add_pod(PROJECT, "worker-5f6c8d7b9-tr4n8", owner="worker")
    kube.set_container_state(PROJECT, "worker-5f6c8d7b9-tr4n8", state="waiting", reason="CrashLoopBackOff",
                             message="back-off 5m0s restarting failed container=worker", restarts=7,
                             last_reason="Error", last_exit_code=2, phase="Running")
    kube.add_service(PROJECT, "web", ports=[(80, 8080)])
    # Port-forwards to web's pods reach the demo's web container (published on 38080).
    for suffix in ("x2x7k", "q9w4z"):
        kube.set_portforward_target(PROJECT, f"web-7d4b9c6f5d-{suffix}", 8080, "127.0.0.1", 38080)
    kube.add_event(PROJECT, ("Pod", "worker-5f6c8d7b9-tr4n8"), "BackOff",
                   "Back-off restarting failed container worker", type="Warning", count=31)
    kube.add_event(PROJECT, ("Deployment", "web"), "ScalingReplicaSet", "Scaled up replica set web-7d4b9c6f5d to 2")


async def shoot() -> None:
    OUT.mkdir(exist_ok=True)
    async with KubeEmulator() as kube:
        cluster(kube)
        kubeconfig = kube.write_kubeconfig(Path(tempfile.mkdtemp(prefix="ferryman-kube-")) / "config",
                                           context="k3d-dev")
        # HTTP health URLs as a user would configure them: api answers on / but has no /health.
        # (Not web: its k3s side would be probed at an emulated ClusterIP that nothing serves.)
        checks = HealthConfig(interval_seconds=1, urls=[
            HealthUrlConfig(service="api", path="/"), HealthUrlConfig(service="api", path="/health"),
        ])
        app = FerrymanApp(Hub([OnlyDemo(), KubeAdapter(kubeconfig=str(kubeconfig), namespace=PROJECT)],
                              probers=[lambda store: HttpProber(checks, store)]))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: health(app, "web") == "healthy" and health(app, "api") == "unhealthy"
                        and health(app, "db") == "healthy" and app.current_view.table.row_count == 6)
            app.save_screenshot("workloads.svg", str(OUT))
            view = app.current_view
            view.table.move_cursor(row=view.shown_keys.index("name:worker"))
            await pilot.press("enter")
            await until(pilot, lambda: app.current_view.table.row_count == 2)
            app.save_screenshot("containers-and-pods.svg", str(OUT))
            await pilot.press("escape", "slash", *"health")
            await pilot.pause(0.2)
            app.save_screenshot("filter.svg", str(OUT))
            await pilot.press("enter", "escape", "colon", *"pods", "enter")
            await until(pilot, lambda: app.current_view.table.row_count == 4)
            app.save_screenshot("pods.svg", str(OUT))
            await pilot.press("colon", *"deploy", "enter")
            await until(pilot, lambda: app.current_view.table.row_count == 3)
            app.save_screenshot("deployments.svg", str(OUT))
            await pilot.press("down", "d")  # web: its events show at the end
            await until(pilot, lambda: "ScalingReplicaSet" in getattr(app.screen, "text", ""))
            app.save_screenshot("describe.svg", str(OUT))
            await pilot.press("escape", "colon", *"events", "enter")
            await until(pilot, lambda: app.current_view.table.row_count == 2)
            app.save_screenshot("events.svg", str(OUT))
            await pilot.press("colon", *"health", "enter")
            await until(pilot, lambda: app.current_view.kind.name == "health" and app.current_view.table.row_count == 6
                        and len(app.hub.store.objects_of(HttpCheck)) >= 2)
            app.save_screenshot("health.svg", str(OUT))
            view = app.current_view
            view.table.move_cursor(row=view.shown_keys.index("name:api"))
            await pilot.press("enter")  # api: its failing healthcheck runs, in the pane
            await until(pilot, lambda: "healthcheck runs" in getattr(app.screen, "text", ""))
            app.save_screenshot("health-pane.svg", str(OUT))
            await pilot.press("escape", "colon", *"wk", "enter")
            await until(pilot, lambda: app.current_view.kind.name == "workloads")
            view = app.current_view
            view.table.move_cursor(row=view.shown_keys.index("name:api"))
            await pilot.press("p")  # api: the promotion preview, resolved by the compose CLI
            await until(pilot, lambda: isinstance(app.screen, PromotePreviewScreen) and app.screen.plan is not None
                        and "kind: Deployment" in app.screen.text)
            app.save_screenshot("promote-preview.svg", str(OUT))
            await pilot.press("escape", "colon", *"deploy", "enter")
            await until(pilot, lambda: app.current_view.kind.name == "deployments")
            view = app.current_view
            view.table.move_cursor(row=view.shown_keys.index(f"k3s/{PROJECT}/web"))
            await pilot.press("F")
            await until(pilot, lambda: isinstance(app.screen, ForwardScreen))
            app.save_screenshot("forward-dialog.svg", str(OUT))
            await pilot.press("escape")
            # A forward to the Service, used a little, then :pf beside the published ports.
            forward = ForwardSpec(PROJECT, "service", "web", 80, 18080)
            await app.hub.forwards.start(forward)
            async with httpx.AsyncClient() as client:
                for _ in range(3):
                    await client.get(f"{forward.url}/")
            await pilot.press("colon", *"pf", "enter")
            await until(pilot, lambda: app.current_view.kind.name == "forwards" and forward.key in app.current_view.shown_keys
                        and app.hub.store.objects[forward.key].total_connections >= 3)
            await pilot.pause(0.6)  # the byte counters' next publication
            app.save_screenshot("forwards.svg", str(OUT))
            await pilot.press("question_mark")
            await pilot.pause(0.2)
            app.save_screenshot("help.svg", str(OUT))

    missing = FerrymanApp(Hub([
        ComposeAdapter(host="unix:///var/run/no-docker-here.sock"),
        KubeAdapter(kubeconfig="/nonexistent/kubeconfig"),
    ]))
    async with missing.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: missing.query_one("#banner").display)
        missing.save_screenshot("docker-unreachable.svg", str(OUT))


def main() -> int:
    client = docker.from_env()
    ensure_test_image(client)
    project = ComposeProject(Path(tempfile.mkdtemp(prefix="ferryman-shots-")), SERVICES, name=PROJECT)
    try:
        project.up()
        project.cli("up", "-d", "--scale", "api=2", "api")
        asyncio.run(shoot())
    finally:
        project.down()
    print(f"screenshots written to {OUT}: {', '.join(sorted(p.name for p in OUT.glob('*.svg')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
