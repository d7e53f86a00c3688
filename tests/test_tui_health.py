"""Pilot tests of `:health`, the health pane and the header's summary, through a scripted
adapter (the engines' own health mapping is tested in test_health_docker.py and
test_health_kube.py)."""

from __future__ import annotations

from dataclasses import replace

from backends.model import Health, InstanceChanged, ProbeRun
from tests.support.pilot import rendered_text, wait_for
from tests.support.scripted import FIXED_NOW, demo_instances
from tests.test_tui import SIZE, make_app, row_text, select, started
from tui.widgets.chrome import Crumbs
from tui.widgets.health_pane import HealthScreen


def header_text(app) -> str:  # noqa: ANN001
    return app.query_one(Crumbs).health_text


async def test_health_view_lists_every_service_with_why_and_the_header_counts_them():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        # demo: api unhealthy, web/ledger/postgres/redis healthy, worker without a check, mailer stopped
        await wait_for(pilot, lambda: "compose ✔4 ▲1 ✖1" in header_text(app), what="the summary in the header")
        await pilot.press("colon", *"health", "enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "health" and app.current_view.table.row_count == 7,
                       what=":health with 7 rows")
        assert row_text(app, "name:api")[:3] == ["api", "compose", "unhealthy"]
        assert row_text(app, "name:worker")[2] == "no healthcheck"
        # The health of a service changes: the row, its reason, the timeline and the header follow.
        web = next(i for i in demo_instances() if i.workload.name == "web")
        adapter.emit(InstanceChanged(replace(web, health=Health.UNHEALTHY,
                                             health_reason="healthcheck failed 3 times in a row: exit 1")))
        await wait_for(pilot, lambda: row_text(app, "name:web")[2:4] == [
            "unhealthy", "shop_web_1: healthcheck failed 3 times in a row: exit 1"] or
            row_text(app, "name:web")[2:4] == ["unhealthy", "healthcheck failed 3 times in a row: exit 1"],
            what="web unhealthy with its reason")
        await wait_for(pilot, lambda: "compose ✔3 ▲1 ✖2" in header_text(app), what="the header recounts")
        assert "▁" in row_text(app, "name:web")[5]  # the timeline shows the drop


async def test_h_opens_the_pane_which_follows_the_service_live():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        select(app, "name:web")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HealthScreen), what="the health pane")
        screen = app.screen
        assert isinstance(screen, HealthScreen)
        await wait_for(pilot, lambda: "compose: shop/web" in screen.text, what="the pane's sides")
        web = next(i for i in demo_instances() if i.workload.name == "web")
        probe = ProbeRun(FIXED_NOW, FIXED_NOW, 1, "wget: server returned error: HTTP/1.1 500")
        adapter.emit(InstanceChanged(replace(web, health=Health.UNHEALTHY, health_reason="healthcheck failed",
                                             probes=(probe,))))
        await wait_for(pilot, lambda: "exit 1" in screen.text and "HTTP/1.1 500" in screen.text,
                       what="the new probe run in the pane")
        assert "State changes this session" in screen.text
        await pilot.pause()
        assert "HTTP/1.1 500" in rendered_text(screen.query_one("#health-body"))  # drawn, not just in the model
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HealthScreen), what="back to the table")
        assert app.current_view.kind.name == "workloads"


async def test_enter_on_a_health_row_opens_its_pane():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("colon", *"he", "enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "health" and app.current_view.table.row_count == 7,
                       what=":health")
        select(app, "name:api")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HealthScreen) and "api" in app.screen.text,
                       what="the pane of api")
