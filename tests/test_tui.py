"""Pilot tests of the TUI's behaviour, driven through a scripted adapter.

The subject here is the UI: row deltas, cursor stability, the k9s grammar, faults
shown to the user. Docker-backed end-to-end UI tests are in test_tui_docker.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from backends.config import Config
from backends.hub import Hub
from backends.model import ConnState, Health, InstanceChanged, InstanceGone, Snapshot, Source, SourceStatus
from tests.support.pilot import notifications, rendered_text, send_key, wait_for
from tests.support.scripted import FIXED_NOW, ScriptedAdapter, demo_instances, make_instance, stopped
from tui.app import FerrymanApp
from tui.screens import ConfirmScreen, HelpScreen
from tui.widgets.chrome import Banner, Crumbs, Header

SIZE = (150, 32)


def make_app(config: Config | None = None, **kwargs) -> tuple[FerrymanApp, ScriptedAdapter]:
    adapter = ScriptedAdapter()
    return FerrymanApp(Hub([adapter]), config, clock=lambda: FIXED_NOW, **kwargs), adapter


async def started(app: FerrymanApp, adapter: ScriptedAdapter, pilot, instances=None) -> None:
    adapter.emit(adapter.connected(), Snapshot(Source.COMPOSE, tuple(instances or demo_instances())))
    await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == 7, what="7 workloads")


def row_text(app: FerrymanApp, key: str) -> list[str]:
    return [cell.text for cell in app.current_view.shown_rows()[key]]


def select(app: FerrymanApp, key: str) -> None:
    view = app.current_view
    view.table.move_cursor(row=view.shown_keys.index(key))


async def test_workloads_table_shows_every_service_with_its_columns():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        view = app.current_view
        assert view.shown_keys == [
            "name:api", "name:ledger", "name:mailer", "name:postgres", "name:redis", "name:web", "name:worker",
        ]
        assert row_text(app, "name:api") == [
            "api", "compose", "shop", "running 2/2", "-", "unhealthy", "3001→8080/tcp, 3002→8080/tcp",
            "shop/api:dev", "3m", "3",
        ]
        assert row_text(app, "name:mailer")[3:6] == ["exited (137) 0/1", "-", "stopped"]
        assert row_text(app, "name:worker")[5] == "no healthcheck"


async def test_a_change_updates_only_its_row_and_the_cursor_stays_put():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        select(app, "name:postgres")
        web = demo_instances()[0]
        adapter.emit(InstanceChanged(stopped(web)))
        await wait_for(pilot, lambda: row_text(app, "name:web")[3] == "exited (137) 0/1", what="web stopped")
        # A new service sorting above the cursor is inserted; the cursor stays on postgres.
        adapter.emit(InstanceChanged(make_instance("aardvark", "aardvark")))
        await wait_for(pilot, lambda: app.current_view.table.row_count == 8, what="new row")
        assert app.current_view.shown_keys[0] == "name:aardvark"
        assert app.current_view.selected_key == "name:postgres"


async def test_resync_snapshot_that_finds_nothing_new_changes_no_row():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        change = app.hub.store.apply(Snapshot(Source.COMPOSE, tuple(demo_instances())))
        assert not change
        # A resync in which one container vanished removes exactly that one row.
        fewer = tuple(i for i in demo_instances() if i.workload.name != "redis")
        adapter.emit(Snapshot(Source.COMPOSE, fewer))
        await wait_for(pilot, lambda: app.current_view.table.row_count == 6, what="redis gone")
        assert "name:redis" not in app.current_view.shown_keys


async def test_enter_drills_into_containers_and_escape_comes_back_to_the_same_row():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        select(app, "name:api")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_view.crumb == "api (compose)", what="drill-down")
        assert app.current_view.kind.name == "instances"
        assert len(app.current_view.shown_keys) == 2
        assert "workloads  ▸  api (compose)" in str(app.query_one(Crumbs).render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.current_view.crumb == "workloads")
        assert app.current_view.selected_key == "name:api"


async def test_filter_regex_inverse_and_label_selector():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("slash", *"billing", "enter")
        assert app.current_view.shown_keys == ["name:ledger", "name:redis"]
        assert "billing" in str(app.query_one(Crumbs).render())
        await pilot.press("slash", "ctrl+u", *"!billing|api", "enter")
        assert app.current_view.shown_keys == ["name:mailer", "name:postgres", "name:web", "name:worker"]
        app.current_view.set_filter("-l com.docker.compose.service=web")
        await pilot.pause()
        assert app.current_view.shown_keys == ["name:web"]
        # Esc clears the filter first; every row comes back.
        await pilot.press("escape")
        assert app.current_view.table.row_count == 7
        assert app.current_view.crumb == "workloads"


async def test_filter_follows_live_changes_and_invalid_regex_is_said():
    app, adapter = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("slash", *"unhealthy", "enter")
        assert app.current_view.shown_keys == ["name:api"]
        web = demo_instances()[0]
        adapter.emit(InstanceChanged(replace(web, health=Health.UNHEALTHY)))
        await wait_for(pilot, lambda: "name:web" in app.current_view.shown_keys, what="web joins")
        await pilot.press("slash", "ctrl+u", "[", "enter")
        await wait_for(pilot, lambda: any("invalid regex" in n for n in notifications(app)))
        assert app.current_view.table.row_count == 0
        assert "No rows match" in str(app.current_view.query_one(".empty").render())


async def test_command_mode_with_aliases_completion_and_unknown_words():
    app, adapter = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("colon", "c", "t", "r", "enter")
        await wait_for(pilot, lambda: app.current_view.crumb == "containers")
        assert app.current_view.table.row_count == 8
        await pilot.press("colon", "w", "o", "tab")
        assert app.query_one("#prompt").value == "workload"
        await pilot.press("s", "enter")
        await wait_for(pilot, lambda: app.current_view.crumb == "workloads")
        await pilot.press("colon", *"ctr api", "enter")
        await wait_for(pilot, lambda: app.current_view.crumb == "containers")
        assert app.current_view.table.row_count == 2
        await pilot.press("colon", *"nonsense", "enter")
        await wait_for(pilot, lambda: any("Unknown command :nonsense" in n for n in notifications(app)))
        await pilot.press("colon", "up")
        assert app.query_one("#prompt").value == "nonsense"  # history, newest first, as in a shell
        await pilot.press("up")
        assert app.query_one("#prompt").value == "ctr api"
        await pilot.press("ctrl+u", "q", "enter")
        await wait_for(pilot, lambda: app.return_code is not None or not app.is_running, what="quit")


async def test_help_lists_the_active_bindings_and_commands():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {key: description for key, description, _id in app.screen._keys}
        assert keys["r"] == "Restart" and keys["s"] == "Shell" and keys["enter"] == "Containers and pods of the service"
        assert ("r", "Restart", "restart") in app.screen._keys
        assert keys["y"] == "YAML" and keys["d"] == "Describe"
        # Compose rows cannot scale here (Kubernetes workloads do): listed, and said why not.
        assert keys["+"] == "Scale +1 (not for this row)" and keys["S"] == "Scale… (not for this row)"
        assert any(":ctr" in words for words, _ in app.screen._commands)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_restart_asks_then_acts_on_every_container_of_the_service():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        select(app, "name:api")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen._question == "Restart api (2 containers)?"
        await pilot.press("n")
        await pilot.pause()
        assert adapter.performed == []
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: adapter.performed, what="restart performed")
        action, ids = adapter.performed[0]
        assert action == "restart" and len(ids) == 2
        await pilot.press("u")  # start needs no confirmation
        await wait_for(pilot, lambda: len(adapter.performed) == 2)


async def test_a_failing_action_is_reported_not_raised():
    app, adapter = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, adapter, pilot)
        adapter.fail_with = "container shop_web_1 no longer exists"
        await pilot.press("u")
        await wait_for(pilot, lambda: any("no longer exists" in n for n in notifications(app)))
        assert app.is_running


async def test_readonly_hides_every_mutating_action():
    app, adapter = make_app(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("r", "x", "u")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert adapter.performed == []
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {key: description for key, description, _id in app.screen._keys}
        assert "r" not in keys and "x" not in keys and keys["s"] == "Shell"
        assert "[readonly]" in str(app.query_one(Header).render())


async def test_shell_where_the_terminal_cannot_suspend_says_so():
    app, adapter = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, adapter, pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: any("cannot be suspended" in n for n in notifications(app)))
        assert app.is_running


async def test_a_service_removed_while_selected_and_viewed():
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        select(app, "name:api")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_view.crumb == "api (compose)")
        for inst in demo_instances():
            if inst.workload.name == "api":
                adapter.emit(InstanceGone(Source.COMPOSE, inst.id))
        await wait_for(pilot, lambda: app.current_view.table.row_count == 0, what="containers gone")
        assert "api has no containers or pods now" in str(app.current_view.query_one(".empty").render())
        await pilot.press("r", "s")  # nothing selected: nothing happens, nothing breaks
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.current_view.crumb == "workloads")
        assert "name:api" not in app.current_view.shown_keys
        assert app.current_view.selected is not None  # the cursor moved to a neighbour


async def test_an_unreachable_engine_shows_a_banner_and_the_app_keeps_working():
    app, adapter = make_app()
    message = "Docker: unreachable at unix:///var/run/docker.sock — permission denied"
    async with app.run_test(size=SIZE) as pilot:
        adapter.emit(SourceStatus(Source.COMPOSE, ConnState.UNREACHABLE, adapter.endpoint, message=message))
        banner = app.query_one(Banner)
        await wait_for(pilot, lambda: banner.display, what="banner")
        assert message in str(banner.render())
        assert "permission denied" in str(app.current_view.query_one(".empty").render())
        await pilot.press("colon", *"ctr", "enter")  # still usable
        await wait_for(pilot, lambda: app.current_view.crumb == "containers")
        adapter.emit(adapter.connected(), Snapshot(Source.COMPOSE, tuple(demo_instances())))
        await wait_for(pilot, lambda: not banner.display, what="banner gone")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 8)


async def test_keymap_from_config_remaps_and_unknown_ids_warn():
    config = Config.model_validate({"keymap": {"restart": "R", "nope": "z"}})
    app, adapter = make_app(config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, adapter, pilot)
        assert any("unknown binding id(s) nope" in n for n in notifications(app))
        await pilot.press("r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))


@pytest.mark.parametrize("view", ["containers", "ctr"])
async def test_default_view_from_config(view):
    app, adapter = make_app(Config.model_validate({"ui": {"default_view": view}}))
    async with app.run_test(size=SIZE) as pilot:
        adapter.emit(adapter.connected(), Snapshot(Source.COMPOSE, tuple(demo_instances())))
        await wait_for(pilot, lambda: app.current_view.table.row_count == 8)
        assert app.current_view.crumb == "containers"


async def test_unknown_theme_and_view_in_config_warn_and_fall_back():
    app, adapter = make_app(Config.model_validate({"ui": {"theme": "neon-nights", "default_view": "dashboard"}}))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(app, adapter, pilot)
        said = notifications(app)
        assert any("ui.theme: no theme named 'neon-nights'" in n and "textual-dark" in n for n in said)
        views = "workloads, containers, pods, deployments, services, events, health, forwards, namespaces, contexts"
        assert any(f"ui.default_view: no view named 'dashboard' — views: {views}" in n for n in said)
        assert app.current_view.crumb == "workloads"


@pytest.mark.parametrize(("opener", "typed"), [("colon", "ctr"), ("slash", "rxu")])
async def test_keys_typed_fast_after_a_prompt_key_go_to_the_prompt_not_the_table(opener, typed):
    """`:ctr⏎` typed at full speed must open :ctr — never restart the selected service
    (the `r` reaching the table before the prompt has focus, and ⏎ confirming)."""
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        for key in (opener, *typed, "enter"):
            send_key(app, key)
        await wait_for(pilot, lambda: not app.query_one("#prompt").display, what="prompt submitted")
        await pilot.pause(0.1)
        assert adapter.performed == []
        assert not isinstance(app.screen, ConfirmScreen)
        if opener == "colon":
            assert app.current_view.crumb == "containers"
        else:
            assert app.current_view.row_filter.text == typed


async def test_the_drawn_table_shows_each_change_and_the_unchanged_rows_stay_drawn():
    """Row repaints are targeted (LiveTable): what is drawn must still be exactly right."""
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        table = app.current_view.table
        await wait_for(pilot, lambda: " 42m " in _line_of(table, "web"), what="table drawn")
        before = rendered_text(table)
        web = demo_instances()[0]
        adapter.emit(InstanceChanged(stopped(web)))
        await wait_for(pilot, lambda: "exited (137)" in _line_of(table, "web"), what="web drawn as exited")
        after = rendered_text(table)
        changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
        assert len(changed) == 1 and " web " in changed[0][1]
        # A longer text widens its column.
        adapter.emit(InstanceChanged(replace(demo_instances()[1], image="registry.example.com/shop/api:2026-11-22")))
        await wait_for(pilot, lambda: "registry.example.com/shop/api:2026-11-22" in _line_of(table, "api"))


def _line_of(table, service: str) -> str:
    return next((line for line in rendered_text(table).splitlines() if f" {service} " in line), "")


async def test_uptimes_follow_the_clock_without_any_event():
    now = [FIXED_NOW]
    adapter = ScriptedAdapter()
    app = FerrymanApp(Hub([adapter]), clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        table = app.current_view.table
        await wait_for(pilot, lambda: " 42m " in _line_of(table, "web"), what="uptime drawn")
        now[0] = FIXED_NOW + timedelta(hours=2)
        app.current_view.refresh_ticking()
        await wait_for(pilot, lambda: " 2h42m " in _line_of(table, "web"), what="uptime redrawn")


async def test_a_resync_that_drops_many_rows_keeps_the_right_rows_and_the_cursor():
    many = [make_instance(f"p{n:03d}", "svc") for n in range(300)]
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        adapter.emit(adapter.connected(), Snapshot(Source.COMPOSE, tuple(many)))
        await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == 300)
        select(app, "name:svc@compose/p250")
        kept = tuple(i for i in many if int(i.workload.group[1:]) >= 200)  # drops 200 rows at once
        adapter.emit(Snapshot(Source.COMPOSE, kept))
        await wait_for(pilot, lambda: app.current_view.table.row_count == 100, what="200 rows gone")
        view = app.current_view
        # The same service name in many projects: one row per project, keyed by it.
        assert view.shown_keys == [f"name:svc@compose/p{n:03d}" for n in range(200, 300)]
        assert view.selected_key == "name:svc@compose/p250"


async def test_the_uptime_tick_survives_a_view_whose_table_is_gone():
    """Seen once in CI: the tick fired while the app shut down, after the table went."""
    app, adapter = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(app, adapter, pilot)
        await app.current_view.table.remove()
        app._tick()  # noqa: SLF001 - the timer's callback, called at the moment it hurt
        await pilot.pause()
        assert app.is_running
