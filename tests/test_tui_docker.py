"""End to end: the TUI on the real Docker engine with real compose projects.

What the user does in another terminal (`docker stop`, `docker-compose down`, a
healthcheck failing, the daemon restarting) must reach the table by itself, fed by
the Docker events stream.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from textual.pilot import Pilot

from backends.compose import ComposeAdapter
from backends.hub import Hub
from backends.logs import LogKind
from tests.support.dockerenv import httpd_service, sleeper_service
from tests.support.logs import buffer_texts
from tests.support.pilot import wait_for
from tui.app import FerrymanApp
from tui.views.table import ResourceView
from tui.widgets.chrome import Banner, Header
from tui.widgets.log_view import LogScreen

pytestmark = pytest.mark.docker
SIZE = (160, 40)
TIMEOUT = 20


def make_app(host: str | None = None) -> FerrymanApp:
    return FerrymanApp(Hub([ComposeAdapter(host=host, reconnect_min=0.2, reconnect_max=1.0)]))


def cells(app: FerrymanApp, key: str) -> list[str] | None:
    row = app.current_view.shown_rows().get(key)
    return [c.text for c in row] if row else None


def cell(app: FerrymanApp, key: str, column: int) -> str | None:
    row = cells(app, key)
    return row[column] if row else None


def service_key(app: FerrymanApp, project: str, service: str) -> str | None:
    """The workloads row of `project`'s `service`: "name:web", or "name:web@compose/<project>"
    while another project on the engine has a `web` too."""
    return next(
        (key for key, row in app.current_view.shown_rows().items()
         if row[NAME].text == service and row[GROUP].text == project),
        None,
    )


def service_cells(app: FerrymanApp, project: str, service: str) -> list[str] | None:
    key = service_key(app, project, service)
    return cells(app, key) if key else None


def service_cell(app: FerrymanApp, project: str, service: str, column: int) -> str | None:
    row = service_cells(app, project, service)
    return row[column] if row else None


def move_cursor_to(app: FerrymanApp, key: str | None) -> ResourceView:
    """Put the current view's cursor on row `key`; returns that view."""
    view = app.current_view
    view.table.move_cursor(row=view.shown_keys.index(key))
    return view


async def select_service(pilot: Pilot, app: FerrymanApp, project: str, service: str) -> None:
    """Wait for `project`'s `service` row, then put the cursor on it."""
    await wait_for(pilot, lambda: service_key(app, project, service), TIMEOUT, f"{service} row")
    move_cursor_to(app, service_key(app, project, service))


# Workloads (one row per logical service) and instance tables (one row per container).
NAME, LOCATION, GROUP, COMPOSE, K3S, HEALTH, PORTS = range(7)
STATE = 3  # instance tables: NAME, WHERE, SERVICE, STATE, ...


async def test_a_running_project_appears_and_follows_docker_commands(compose_project, docker_client):
    project = compose_project({"web": httpd_service(port=0), "worker": sleeper_service()})
    app = make_app()

    def web(column: int) -> str | None:
        return service_cell(app, project.name, "web", column)

    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: web(HEALTH) == "healthy", TIMEOUT, "web healthy")
        assert service_cells(app, project.name, "worker")[:6] == [
            "worker", "compose", project.name, "running 1/1", "-", "no healthcheck",
        ]
        assert "→8080/tcp" in web(PORTS)
        assert "engine 20." in str(app.query_one(Header).render()) or "engine" in str(app.query_one(Header).render())

        # The cursor sits on worker while web changes underneath it.
        view = move_cursor_to(app, service_key(app, project.name, "worker"))
        (web_id,) = project.container_ids(docker_client, "web")
        subprocess.run(["docker", "stop", "-t", "1", web_id], check=True, capture_output=True)
        code = docker_client.api.inspect_container(web_id)["State"]["ExitCode"]
        await wait_for(pilot, lambda: web(COMPOSE) == f"exited ({code}) 0/1", TIMEOUT, "web stopped")
        assert view.selected_key == service_key(app, project.name, "worker")

        subprocess.run(["docker", "start", web_id], check=True, capture_output=True)
        await wait_for(pilot, lambda: web(COMPOSE) == "running 1/1", TIMEOUT, "web running again")
        await wait_for(pilot, lambda: web(HEALTH) == "healthy", TIMEOUT, "web healthy again")

        worker_key = service_key(app, project.name, "worker")
        project.down()
        await wait_for(pilot, lambda: all(service_cells(app, project.name, svc) is None for svc in ("web", "worker")),
                       TIMEOUT, "rows gone")
        assert view.selected_key != worker_key


async def test_a_project_brought_up_while_ferryman_runs_appears_by_itself(compose_project):
    project = compose_project({"api": sleeper_service(), "db": sleeper_service()}, up=False)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.hub.store.status, TIMEOUT, "connected")
        project.up()
        for svc in ("api", "db"):
            await wait_for(
                pilot, lambda svc=svc: service_cell(app, project.name, svc, COMPOSE) == "running 1/1", TIMEOUT,
                f"{svc} appears",
            )
        project.cli("up", "-d", "--scale", "api=3", "api")
        await wait_for(
            pilot, lambda: service_cell(app, project.name, "api", COMPOSE) == "running 3/3", TIMEOUT, "scaled"
        )


async def test_a_healthcheck_turning_unhealthy_reaches_the_row(compose_project, docker_client):
    check = {"test": ["CMD", "test", "-f", "/tmp/ok"], "interval": "1s", "timeout": "1s", "retries": 1}
    project = compose_project({"app": sleeper_service(healthcheck=check)})
    (cid,) = project.container_ids(docker_client)
    subprocess.run(["docker", "exec", cid, "sh", "-c", "echo > /tmp/ok"], check=True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: service_cell(app, project.name, "app", HEALTH) == "healthy", TIMEOUT, "healthy")
        subprocess.run(["docker", "exec", cid, "rm", "/tmp/ok"], check=True)
        await wait_for(
            pilot, lambda: service_cell(app, project.name, "app", HEALTH) == "unhealthy", TIMEOUT, "unhealthy"
        )


async def test_drill_down_and_restart_through_the_ui(compose_project, docker_client):
    project = compose_project({"web": httpd_service(port=0)})
    (cid,) = project.container_ids(docker_client)
    started_before = docker_client.api.inspect_container(cid)["State"]["StartedAt"]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await select_service(pilot, app, project.name, "web")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_view.crumb == "web (compose)")
        assert app.current_view.kind.name == "instances"
        assert app.current_view.shown_keys == [f"compose/{cid}"]
        await pilot.press("r", "y")
        await wait_for(
            pilot,
            lambda: docker_client.api.inspect_container(cid)["State"]["StartedAt"] != started_before,
            TIMEOUT,
            "container restarted",
        )
        await wait_for(pilot, lambda: cell(app, f"compose/{cid}", STATE) == "running", TIMEOUT)


async def test_stopped_project_shows_its_services_as_stopped(compose_project, docker_client):
    project = compose_project({"api": sleeper_service(), "db": sleeper_service()})
    project.cli("stop", "-t", "1")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        for svc in ("api", "db"):
            await wait_for(
                pilot, lambda svc=svc: (service_cell(app, project.name, svc, COMPOSE) or "").endswith(" 0/1"), TIMEOUT,
                f"{svc} 0/1",
            )
            row = service_cells(app, project.name, svc)
            # sleep ignores SIGTERM: killed after 1 s
            assert (row[COMPOSE], row[HEALTH]) == ("exited (137) 0/1", "stopped")


async def test_daemon_stopping_shows_a_banner_and_restart_resyncs(private_dockerd):
    daemon = private_dockerd
    cid = daemon.run_service_container("shop", "api")
    app = make_app(daemon.host)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: service_cell(app, "shop", "api", COMPOSE) == "running 1/1", TIMEOUT, "api running"
        )
        daemon.stop()
        banner = app.query_one(Banner)
        await wait_for(pilot, lambda: banner.display, TIMEOUT, "banner")
        assert f"Docker: unreachable at {daemon.host}" in str(banner.render())
        await pilot.press("colon", *"ctr", "enter")  # the app keeps working meanwhile
        await wait_for(pilot, lambda: app.current_view.crumb == "containers")
        daemon.start()
        await wait_for(pilot, lambda: not banner.display, TIMEOUT, "banner gone")
        # Without live-restore the container stopped with the daemon: the resync says so.
        await wait_for(pilot, lambda: cell(app, f"compose/{cid}", STATE) in ("exited", "exited (OOMKilled)"),
                       TIMEOUT, "resynced state")
        assert app.current_view.shown_keys.count(f"compose/{cid}") == 1


async def test_logs_of_a_service_follow_it_across_a_restart(compose_project, docker_client):
    script = 'i=0; while true; do i=$$((i+1)); echo "tick $$i"; sleep 0.2; done'  # $$: Compose's escape
    project = compose_project({"ticker": sleeper_service(command=["sh", "-c", script])})
    (cid,) = project.container_ids(docker_client)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await select_service(pilot, app, project.name, "ticker")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogScreen), TIMEOUT, "log view")
        buffer = app.screen.session.buffer
        await wait_for(pilot, lambda: len(buffer_texts(buffer)) >= 3, TIMEOUT, "ticks")
        assert buffer_texts(buffer)[:3] == ["tick 1", "tick 2", "tick 3"]
        await asyncio.to_thread(docker_client.api.restart, cid, timeout=1)
        await wait_for(pilot, lambda: any("restarted" in m for m in buffer_texts(buffer, LogKind.MARKER)), TIMEOUT,
                       "restart marker")
        # The exit is said: in the restart marker, or in an "exited (137)" one just before it.
        markers = buffer_texts(buffer, LogKind.MARKER)
        restarted = next(i for i, m in enumerate(markers) if "restarted" in m)
        assert any("137" in m for m in markers[: restarted + 1]), markers
        # After the marker the new run's lines arrive in the same view, from "tick 1" again.
        await wait_for(pilot, lambda: buffer_texts(buffer).count("tick 1") == 2, TIMEOUT, "the new run's lines")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LogScreen), TIMEOUT, "closed")
