"""Pilot tests of the Kubernetes half of the UI and of the hybrid workloads row.

The k3s side is the real `KubeAdapter` (kr8s over HTTP) against the emulated API server;
the Compose side is the scripted adapter, so that each test states exactly which Compose
services exist. Nothing of kr8s or the adapter is patched.
"""

from __future__ import annotations

from pathlib import Path


from backends.config import Config
from backends.hub import Hub
from backends.kube import KubeAdapter
from backends.logs import LogKind
from backends.model import Snapshot, Source
from tests.support.kube_emulator import KubeEmulator
from tests.support.pilot import notifications, rendered_text, wait_for
from tests.support.scripted import ScriptedAdapter, make_instance
from tui.app import FerrymanApp
from tui.screens import ConfirmScreen
from tui.widgets.chrome import Banner, Header
from tui.widgets.log_view import LogScreen
from tui.widgets.scale_dialog import ScaleScreen
from tui.widgets.text_viewer import TextViewerScreen

SIZE = (160, 36)


def shop(kube: KubeEmulator, namespace: str = "default") -> None:
    kube.add_deployment(namespace, "web", replicas=2, ports=[8080], image="shop/web:2")
    kube.add_pod(namespace, "web-aaa-1", owner="web")
    kube.add_pod(namespace, "web-aaa-2", owner="web")
    kube.add_statefulset(namespace, "db", replicas=1, image="postgres:16")
    kube.add_pod(namespace, "db-0", owner="db", owner_kind="StatefulSet")


def make_app(kube: KubeEmulator, *, kubeconfig: str | None = None, config: Config | None = None,
             **adapter_options) -> tuple[FerrymanApp, ScriptedAdapter, KubeAdapter]:
    compose = ScriptedAdapter()
    options = dict(reconnect_min=0.05, reconnect_max=0.3, api_timeout=3.0)
    options.update(adapter_options)
    k3s = KubeAdapter(kubeconfig=kubeconfig or str(kube.kubeconfig), **options)
    return FerrymanApp(Hub([compose, k3s]), config), compose, k3s


async def started(app: FerrymanApp, compose: ScriptedAdapter, pilot, rows: int) -> None:
    compose.emit(compose.connected(), Snapshot(Source.COMPOSE, (
        make_instance("shop", "web", host_port=8080), make_instance("shop", "api", host_port=3001),
    )))
    await wait_for(pilot, lambda: app.current_view and app.current_view.table.row_count == rows, what=f"{rows} rows")


def cells(app: FerrymanApp, key: str) -> list[str]:
    return [cell.text for cell in app.current_view.shown_rows()[key]]


def select(app: FerrymanApp, key: str) -> None:
    view = app.current_view
    view.table.move_cursor(row=view.shown_keys.index(key))


async def command(pilot, text: str) -> None:
    await pilot.press("colon", *text, "enter")


async def test_hybrid_row_joins_compose_and_k3s_and_enter_lists_containers_and_pods(kube: KubeEmulator):
    shop(kube)
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        view = app.current_view
        assert view.shown_keys == ["name:api", "name:db", "name:web"]
        web = cells(app, "name:web")
        assert web[:5] == ["web", "both", "shop · default", "running 1/1", "running 2/2"]
        assert cells(app, "name:db")[1:5] == ["k3s", "default", "-", "running 1/1"]
        assert cells(app, "name:api")[1:5] == ["compose", "shop", "running 1/1", "-"]
        # The header names both connections, the cluster's version and the scope.
        header = rendered_text(app.query_one(Header))
        assert "k3s emulated @ http://127.0.0.1" in header and "k8s v1.31.4+k3s1" in header
        assert "ns all" in header
        select(app, "name:web")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "instances" and
                       app.current_view.table.row_count == 3, what="1 container + 2 pods")
        names = sorted(cells(app, k)[0] + "@" + cells(app, k)[1] for k in app.current_view.shown_keys)
        assert names == ["shop_web_1@compose", "web-aaa-1@k3s", "web-aaa-2@k3s"]
        # A new replica joins the drilled-down list live.
        kube.add_pod("default", "web-aaa-3", owner="web")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 4, what="the new pod")


async def test_pods_view_is_live_and_delete_asks_first(kube: KubeEmulator):
    shop(kube)
    kube.set_pod_status("default", "db-0", ready=False, reason="CrashLoopBackOff", restarts=4)
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await command(pilot, "pods")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 3, what="3 pods")
        keys = {cells(app, k)[1]: k for k in app.current_view.shown_keys}
        db = cells(app, keys["db-0"])
        assert db[0] == "default" and db[2] == "0/1" and db[4] == "4"
        assert "CrashLoopBackOff" in db[3]
        kube.add_pod("default", "web-aaa-9", owner="web")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 4, what="a pod added")
        select(app, keys["web-aaa-1"])
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: kube.get_object("pods", "default", "web-aaa-1") is None, what="deleted")
        await wait_for(pilot, lambda: keys["web-aaa-1"] not in app.current_view.shown_keys, what="row gone")


async def test_deployments_scale_with_keys_and_dialog_and_roll(kube: KubeEmulator):
    shop(kube)
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await command(pilot, "deploy")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 2, what="web and db")
        assert cells(app, "k3s/default/web")[:3] == ["default", "web", "deploy"]
        assert cells(app, "k3s/default/db")[2] == "sts"
        select(app, "k3s/default/web")
        await pilot.press("plus")
        await wait_for(pilot, lambda: kube.get_object("deployments", "default", "web")["spec"]["replicas"] == 3,
                       what="scaled to 3")
        await wait_for(pilot, lambda: cells(app, "k3s/default/web")[3].endswith("/3"), what="row says /3")
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, ScaleScreen), what="scale dialog")
        await pilot.press("ctrl+a", "ctrl+k", "0", "enter")
        await wait_for(pilot, lambda: kube.get_object("deployments", "default", "web")["spec"]["replicas"] == 0,
                       what="scaled to 0")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")

        def restarted() -> bool:
            template = kube.get_object("deployments", "default", "web")["spec"]["template"]
            return "kubectl.kubernetes.io/restartedAt" in (template.get("metadata") or {}).get("annotations", {})

        await wait_for(pilot, restarted, what="rollout restart")
        # Enter lists the workload's pods.
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_view.kind.name == "pods" and
                       app.current_view.table.row_count == 2, what="web's pods")


async def test_yaml_and_describe_open_a_searchable_viewer(kube: KubeEmulator):
    shop(kube)
    kube.add_event("default", ("Pod", "db-0"), "BackOff", "Back-off restarting failed container", type="Warning")
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await command(pilot, "pods")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 3, what="3 pods")
        keys = {cells(app, k)[1]: k for k in app.current_view.shown_keys}
        select(app, keys["db-0"])
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, TextViewerScreen) and "db-0" in app.screen.text,
                       what="YAML loaded")
        assert "kind: Pod" in app.screen.text and "managedFields" not in app.screen.text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, TextViewerScreen), what="viewer closed")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, TextViewerScreen) and "BackOff" in app.screen.text,
                       what="describe with its events")


async def test_services_events_namespaces_and_switching(kube: KubeEmulator):
    shop(kube)
    kube.add_namespace("team")
    kube.add_deployment("team", "tool", replicas=1)
    kube.add_pod("team", "tool-x-1", owner="tool")
    kube.add_service("default", "web", ports=[(80, 8080)])
    kube.add_event("default", ("Pod", "db-0"), "Old", "first")
    kube.add_event("default", ("Pod", "db-0"), "New", "second")
    app, compose, k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=4)
        await command(pilot, "svc")
        await wait_for(pilot, lambda: "k3s/Service/default/web" in app.current_view.shown_keys, what="svc")
        row = cells(app, "k3s/Service/default/web")
        assert row[2] == "ClusterIP" and row[5] == "p80:80►8080/TCP"
        await command(pilot, "events")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 2, what="2 events")
        reasons = [cells(app, k)[3] for k in app.current_view.shown_keys]
        assert set(reasons) == {"Old", "New"}
        await command(pilot, "ns")
        await wait_for(pilot, lambda: "k3s/Namespace/team" in app.current_view.shown_keys, what="namespaces")
        assert app.current_view.shown_keys[0] == "k3s/Namespace/(all namespaces)"
        select(app, "k3s/Namespace/team")
        await pilot.press("enter")
        await wait_for(pilot, lambda: k3s.namespace == "team", what="switched")
        await wait_for(pilot, lambda: "ns team" in rendered_text(app.query_one(Header)), what="header")
        # Back on the workloads view: only team's workloads on the k3s side now.
        await wait_for(pilot, lambda: app.current_view.kind.name == "workloads" and
                       set(app.current_view.shown_keys) == {"name:api", "name:web", "name:tool"}, what="team only")
        assert cells(app, "name:web")[1] == "compose"
        await command(pilot, "ns all")
        await wait_for(pilot, lambda: k3s.namespace is None, what="all namespaces")
        await wait_for(pilot, lambda: len(app.current_view.shown_keys) == 4, what="all back")


async def test_contexts_view_and_switch(kube: KubeEmulator, tmp_path: Path):
    shop(kube)
    kube.add_namespace("team")
    kube.add_pod("team", "solo")
    first = kube.write_kubeconfig(tmp_path / "one.yaml", context="alpha")
    second = kube.write_kubeconfig(tmp_path / "two.yaml", context="beta")
    app, compose, k3s = make_app(kube, kubeconfig=f"{first}:{second}")
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=4)
        await command(pilot, "ctx")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 2, what="2 contexts")
        assert [cells(app, k) for k in app.current_view.shown_keys] == [["*", "alpha"], ["", "beta"]]
        select(app, "context/beta")
        await pilot.press("enter")
        await wait_for(pilot, lambda: k3s.context == "beta" and "beta @" in rendered_text(app.query_one(Header)),
                       what="beta in the header")
        await command(pilot, "ctx nope")
        await wait_for(pilot, lambda: "context 'nope' not in kubeconfig" in rendered_text(app.query_one(Banner)),
                       what="unknown context said")
        assert app.current_view.table.row_count >= 2  # the Compose rows are still there


async def test_readonly_hides_kubernetes_actions(kube: KubeEmulator):
    shop(kube)
    app, compose, _k3s = make_app(kube)
    app.readonly = True
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await command(pilot, "deploy")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 2, what="deployments")
        select(app, "k3s/default/web")
        await pilot.press("plus", "S", "r")
        await pilot.pause(0.2)
        assert kube.get_object("deployments", "default", "web")["spec"]["replicas"] == 2
        assert not isinstance(app.screen, ScaleScreen | ConfirmScreen)
        active = {b.binding.id for b in app.screen.active_bindings.values() if b.enabled}
        assert not active & {"scale", "scale_up", "scale_down", "rollout_restart", "delete"}
        assert "yaml" in active


async def test_cluster_down_keeps_compose_working_and_recovers(kube: KubeEmulator):
    shop(kube)
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await kube.stop()
        await wait_for(pilot, lambda: "k3s: unreachable" in rendered_text(app.query_one(Banner)), what="banner")
        assert "connection refused" in rendered_text(app.query_one(Banner))
        assert "name:api" in app.current_view.shown_keys  # Compose unaffected
        kube.add_pod("default", "web-aaa-7", owner="web")  # changed while down
        await kube.start()
        await wait_for(pilot, lambda: not app.query_one(Banner).display, what="banner gone")
        await command(pilot, "pods")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 4, what="resynced, nothing doubled")


async def test_no_kubeconfig_is_quiet(kube: KubeEmulator, tmp_path: Path):
    app, compose, _k3s = make_app(kube, kubeconfig=str(tmp_path / "absent"))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=2)
        await wait_for(pilot, lambda: "not configured" in rendered_text(app.query_one(Header)), what="header")
        assert not app.query_one(Banner).display
        await command(pilot, "pods")
        await wait_for(pilot, lambda: app.current_view.kind.name == "pods", what="pods view")
        empty = app.current_view.query_one(".empty")
        assert empty.display and "k3s: no kubeconfig" in rendered_text(empty)


async def test_forbidden_pods_are_said_and_the_rest_shows(kube: KubeEmulator):
    shop(kube)
    kube.fail("GET", r"^/api/v1/pods$", 403)
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await wait_for(pilot, lambda: "no permission to list pods" in rendered_text(app.query_one(Banner)),
                       what="denial said")
        assert cells(app, "name:web")[4] == "pending 0/2"
        assert not [n for n in notifications(app) if "Error" in n]


async def test_keys_follow_the_selected_rows_side(kube: KubeEmulator):
    shop(kube)
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)

        def enabled() -> set[str]:
            return {b.binding.id for b in app.screen.active_bindings.values() if b.enabled and b.binding.id}

        select(app, "name:api")  # Compose only: scaling is dimmed, stop/start are there
        await pilot.pause(0.05)
        assert {"stop", "start"} <= enabled() and not {"scale", "scale_up", "scale_down"} & enabled()
        await pilot.press("plus")
        assert not isinstance(app.screen, ScaleScreen)
        select(app, "name:db")  # k3s only: the other way round
        await pilot.pause(0.05)
        assert {"scale", "scale_up", "scale_down"} <= enabled() and not {"stop", "start"} & enabled()
        select(app, "name:web")  # both: stop/start act on the Compose side, scaling on the k3s side
        await pilot.pause(0.05)
        assert {"stop", "start", "scale", "scale_up"} <= enabled()
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert app.screen._question == "Stop web (1 container)?"
        await pilot.press("y")
        await wait_for(pilot, lambda: compose.performed, what="stopped")
        assert [(str(action), len(ids)) for action, ids in compose.performed] == [("stop", 1)]
        assert len(kube.list_objects("pods", "default")) == 3  # the pods were not touched


async def test_logs_of_a_deployment_interleave_its_pods_and_end_with_the_view(kube: KubeEmulator):
    shop(kube)
    kube.set_pod_log("default", "web-aaa-1", None, "one: hello\n")
    kube.set_pod_log("default", "web-aaa-2", None, "two: hello\n")
    app, compose, _k3s = make_app(kube)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, compose, pilot, rows=3)
        await command(pilot, "deploy")
        await wait_for(pilot, lambda: app.current_view.table.row_count == 2, what="deployments")
        select(app, "k3s/default/web")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogScreen), what="log view")
        buffer = app.screen.session.buffer

        def texts() -> list[tuple[str, str]]:
            return [(line.source, line.text) for line in buffer.lines(buffer.first, buffer.end)
                    if line.kind == LogKind.LINE]

        await wait_for(pilot, lambda: len(texts()) == 2, what="both pods' history")
        assert set(texts()) == {("web-aaa-1", "one: hello"), ("web-aaa-2", "two: hello")}
        await kube.wait_for_log_followers(2)
        kube.append_pod_log("default", "web-aaa-2", None, "two: later\n")
        await wait_for(pilot, lambda: ("web-aaa-2", "two: later") in texts(), what="followed line")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LogScreen), what="view closed")
        await wait_for(pilot, lambda: kube.log_follower_count == 0, what="streams ended with the view")
