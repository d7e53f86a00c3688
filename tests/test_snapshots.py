"""SVG snapshots of the main screens (pytest-textual-snapshot).

Data comes from scripted adapters (Compose and Kubernetes) and the clock is fixed, so
every run draws the same pixels. Update after an intended change with `pytest
tests/test_snapshots.py --snapshot-update` and look at the report before committing.
"""

from __future__ import annotations

from datetime import timedelta

from backends.hub import Hub
from backends.model import (
    ConnState,
    ForwardSpec,
    ForwardState,
    ObjectChanged,
    PortForward,
    Snapshot,
    Source,
    SourceStatus,
)
from tests.support.pilot import wait_for
from tests.support.scripted import FIXED_NOW, ScriptedAdapter, demo_instances
from tests.support.scripted_kube import ScriptedKube, demo_kube
from tui.app import FerrymanApp

SIZE = (150, 24)
# Compose: 7 services; k3s: web and api in both worlds, cache in k3s only.
ROWS = 8


def scripted_app() -> tuple[FerrymanApp, ScriptedAdapter, ScriptedKube]:
    compose, kube = ScriptedAdapter(), ScriptedKube()
    return FerrymanApp(Hub([compose, kube]), clock=lambda: FIXED_NOW), compose, kube


def loaded(app: FerrymanApp, compose: ScriptedAdapter, kube: ScriptedKube, *then: str):
    async def run_before(pilot) -> None:
        compose.emit(compose.connected(), Snapshot(Source.COMPOSE, tuple(demo_instances())))
        kube.emit(kube.connected(), demo_kube())
        await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == ROWS)
        for command in then:
            await pilot.press("colon", *command, "enter")
            await wait_for(pilot, lambda: app.current_view.table.row_count > 0)

    return run_before


def test_workloads_view(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube))


def test_containers_and_pods_of_a_hybrid_workload(snap_compare):
    app, compose, kube = scripted_app()
    # api (the first row): 2 containers in Compose and a crash-looping pod in k3s
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube), press=["enter"])


def test_filter_prompt(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube), press=["slash", *"shop"])


def test_help(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=(150, 46), run_before=loaded(app, compose, kube),
                        press=["question_mark"])


def test_pods_view(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube, "pods"))


def test_deployments_view(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube, "deploy"))


def test_events_view(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube, "events"))


def test_health_view(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube, "health"))


def test_health_pane(snap_compare):
    app, compose, kube = scripted_app()
    # api: an unhealthy Compose container with its probe runs, and a crash-looping pod
    assert snap_compare(app, terminal_size=(150, 40), run_before=loaded(app, compose, kube), press=["h"])


def test_forwards_view(snap_compare):
    app, compose, kube = scripted_app()
    load = loaded(app, compose, kube)

    async def run_before(pilot) -> None:
        await load(pilot)
        # A forward that followed a rollout (no listener: the view is what is pictured).
        spec = ForwardSpec("shop", "service", "web", 80, 8080)
        app.hub.store.apply(ObjectChanged(PortForward(
            spec, ForwardState.ACTIVE, pod="web-7d4b9c6f5d-q9w4z", pod_port=8080, connections=1,
            total_connections=12, bytes_in=48_213, bytes_out=3_904, started_at=FIXED_NOW - timedelta(minutes=7),
            previous_pod="web-7d4b9c6f5d-x2x7k", switched_at=FIXED_NOW - timedelta(minutes=2))))
        await pilot.press("colon", *"pf", "enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "forwards" and app.current_view.table.row_count)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_forward_dialog(snap_compare):
    app, compose, kube = scripted_app()
    # deploy ▸ the third row, web: its Compose side publishes 8080, which is offered
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube, "deploy"),
                        press=["down", "down", "F"])


def test_yaml_viewer(snap_compare):
    app, compose, kube = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, compose, kube, "deploy"),
                        press=["y", "slash", *"web", "enter"])


def test_docker_unreachable(snap_compare):
    app, compose, kube = scripted_app()

    async def run_before(pilot) -> None:
        compose.emit(SourceStatus(Source.COMPOSE, ConnState.UNREACHABLE, compose.endpoint,
                                  message="Docker: unreachable at unix:///var/run/docker.sock — permission denied"))
        kube.emit(SourceStatus(Source.K3S, ConnState.ABSENT, "~/.kube/config",
                               message="k3s: no kubeconfig (~/.kube/config not found; set KUBECONFIG or --kubeconfig)"))
        await wait_for(pilot, lambda: app.query_one("#banner").display)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
