"""Pilot tests of shift-f, `:pf` and saved forward sets, with the hub's real
ForwardManager over scripted Compose and Kubernetes data (the relay itself, end to
end through the emulated API server, is tested in test_forwards.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from backends.config import Config, load_saved_forwards
from backends.hub import Hub
from backends.model import ForwardState, PortForward, Snapshot, Source
from tests.support.pilot import wait_for
from tests.support.scripted import FIXED_NOW, ScriptedAdapter, demo_instances
from tests.support.scripted_kube import ScriptedKube, demo_kube
from tui.app import FerrymanApp
from tui.screens import NameScreen
from tui.widgets.forward_dialog import ForwardScreen

SIZE = (150, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def make_app(tmp_path: Path, config: Config | None = None) -> tuple[FerrymanApp, ScriptedAdapter, ScriptedKube]:
    compose, kube = ScriptedAdapter(), ScriptedKube()
    app = FerrymanApp(Hub([compose, kube]), config, clock=lambda: FIXED_NOW, forwards_file=tmp_path / "forwards.yaml")
    return app, compose, kube


async def loaded(app: FerrymanApp, compose: ScriptedAdapter, kube: ScriptedKube, pilot) -> None:  # noqa: ANN001
    compose.emit(compose.connected(), Snapshot(Source.COMPOSE, tuple(demo_instances())))
    kube.emit(kube.connected(), demo_kube())
    await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == 8, what="8 services")


def forwards(app: FerrymanApp) -> dict[str, PortForward]:
    return app.hub.store.objects_of(PortForward)  # type: ignore[return-value]


async def set_field(pilot, screen: ForwardScreen, field: str, value: str) -> None:  # noqa: ANN001
    box = screen.query_one(f"#forward-{field}")
    box.value = value
    await pilot.pause()


async def test_shift_f_on_a_pod_prefills_the_dialog_and_starts_a_forward_shown_in_pf(tmp_path: Path):
    app, compose, kube = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, compose, kube, pilot)
        await pilot.press("colon", *"pods", "enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "pods" and app.current_view.table.row_count == 4,
                       what=":pods")
        view = app.current_view
        view.table.move_cursor(row=view.shown_keys.index("k3s/uid-web-7d4b9c6f5d-x2x7k"))
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, ForwardScreen), what="the dialog")
        dialog = app.screen
        assert isinstance(dialog, ForwardScreen)
        # web's Compose side publishes 8080: the same local port is offered.
        assert dialog.query_one("#forward-remote").value == "8080"
        assert dialog.query_one("#forward-local").value == "8080"
        assert dialog.query_one("#forward-address").value == "127.0.0.1"
        await set_field(pilot, dialog, "address", "0.0.0.0")
        await pilot.press("enter")
        assert "is not local; set forwards.allow_remote_bind: true" in dialog.error
        port = free_port()
        await set_field(pilot, dialog, "address", "127.0.0.1")
        await set_field(pilot, dialog, "local", str(port))
        dialog.query_one("#forward-local").focus()
        await pilot.press("enter")
        key = f"forward/127.0.0.1:{port}"
        await wait_for(pilot, lambda: key in forwards(app), what="the forward in the store")
        assert not refused(port)  # it listens
        await pilot.press("colon", *"pf", "enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "forwards" and key in app.current_view.shown_keys,
                       what=":pf with the forward")
        cells = [c.text for c in app.current_view.shown_rows()[key]]
        assert cells[:4] == [f"localhost:{port}", "forward", "pod/web-7d4b9c6f5d-x2x7k:8080", "shop"]
        # Compose's published ports are listed beside it.
        assert any(k.startswith("published/") for k in app.current_view.shown_keys)
        view = app.current_view
        view.table.move_cursor(row=view.shown_keys.index(key))
        await pilot.press("x")
        await wait_for(pilot, lambda: forwards(app)[key].state == ForwardState.STOPPED, what="the forward stopped")
        await wait_for(pilot, lambda: refused(port), what="its listener closed")
        await pilot.press("r")  # restarted: listening again
        await wait_for(pilot, lambda: forwards(app)[key].state != ForwardState.STOPPED and not refused(port),
                       what="the forward restarted")
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: key not in forwards(app) and key not in app.current_view.shown_keys,
                       what="the forward removed")
        assert refused(port)


async def test_a_local_port_in_use_brings_the_dialog_back_with_a_free_port(tmp_path: Path):
    app, compose, kube = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, compose, kube, pilot)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            await pilot.press("colon", *"svc", "enter")
            await wait_for(pilot, lambda: app.current_view.kind.name == "services" and app.current_view.table.row_count,
                           what=":svc")
            await pilot.press("F")
            await wait_for(pilot, lambda: isinstance(app.screen, ForwardScreen), what="the dialog")
            await set_field(pilot, app.screen, "local", str(busy))
            app.screen.query_one("#forward-local").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ForwardScreen) and "in use" in app.screen.error,
                           what="the dialog again, saying why")
            offered = app.screen.query_one("#forward-local").value
            assert offered != str(busy) and offered.isdigit()
            assert str(busy) in app.screen.error


async def test_w_saves_the_forwards_and_an_autostart_set_is_restored(tmp_path: Path):
    port = free_port()
    config = Config.model_validate({"forwards": {"sets": [{"name": "dev", "forwards": [
        {"namespace": "shop", "target": "svc/web", "port": 80, "local_port": port},
    ]}]}})
    app, compose, kube = make_app(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(app, compose, kube, pilot)
        key = f"forward/127.0.0.1:{port}"
        await wait_for(pilot, lambda: key in forwards(app), what="the saved set restored at start")
        await pilot.press("colon", *"pf", "enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "forwards", what=":pf")
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, NameScreen), what="the name prompt")
        assert app.screen.query_one("#name-input").value == "dev"  # the configured set is offered
        app.screen.query_one("#name-input").value = "team"
        await pilot.press("enter")
        path = tmp_path / "forwards.yaml"
        await wait_for(pilot, lambda: path.exists(), what="the file written")
        saved = load_saved_forwards(path)
        assert [s.name for s in saved] == ["team"]
        assert [f.spec().key for s in saved for f in s.forwards] == [key]
        assert saved[0].autostart is True
    # Quitting left nothing listening.
    assert refused(port)
