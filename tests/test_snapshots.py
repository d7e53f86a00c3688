"""SVG snapshots of the main screens (pytest-textual-snapshot).

Data comes from the scripted adapter and the clock is fixed, so every run draws the
same pixels. Update after an intended change with `pytest tests/test_snapshots.py
--snapshot-update` and look at the report before committing.
"""

from __future__ import annotations

from backends.hub import Hub
from backends.model import ConnState, Snapshot, Source, SourceStatus
from tests.support.pilot import wait_for
from tests.support.scripted import FIXED_NOW, ScriptedAdapter, demo_instances
from tui.app import FerrymanApp

SIZE = (150, 24)


def scripted_app() -> tuple[FerrymanApp, ScriptedAdapter]:
    adapter = ScriptedAdapter()
    return FerrymanApp(Hub([adapter]), clock=lambda: FIXED_NOW), adapter


def loaded(app: FerrymanApp, adapter: ScriptedAdapter, rows: int = 7):
    async def run_before(pilot) -> None:
        adapter.emit(adapter.connected(), Snapshot(Source.COMPOSE, tuple(demo_instances())))
        await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == rows)

    return run_before


def test_workloads_view(snap_compare):
    app, adapter = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, adapter))


def test_containers_of_a_workload(snap_compare):
    app, adapter = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, adapter), press=["down", "down", "enter"])


def test_filter_prompt(snap_compare):
    app, adapter = scripted_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=loaded(app, adapter), press=["slash", *"shop"])


def test_help(snap_compare):
    app, adapter = scripted_app()
    assert snap_compare(app, terminal_size=(150, 34), run_before=loaded(app, adapter), press=["question_mark"])


def test_docker_unreachable(snap_compare):
    app, adapter = scripted_app()

    async def run_before(pilot) -> None:
        adapter.emit(SourceStatus(Source.COMPOSE, ConnState.UNREACHABLE, adapter.endpoint,
                                  message="Docker: unreachable at unix:///var/run/docker.sock — permission denied"))
        await wait_for(pilot, lambda: app.query_one("#banner").display)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
