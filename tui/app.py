"""FerrymanApp: the frame, the view stack, the prompt, and the glue to the hub.

The app subscribes once to the store and hands each change to the views on the
stack; the hub's adapters run as a worker, so the first frame never waits on Docker.
"""

from __future__ import annotations

import asyncio
import gc
import shlex
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult, InvalidThemeError, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import Footer

from backends.adapter import Action, ActionError, ObjectRef
from backends.config import Config, ConfigError, forwards_path, save_forward_set, user_config_path
from backends.forward_rows import ForwardTarget
from backends.hub import Hub
from backends.logs import LogOptions, LogTarget, targets_of
from backends.health import summarize
from backends.model import (
    ConnState,
    ForwardSpec,
    Instance,
    LogicalService,
    PortForward,
    Source,
    SourceStatus,
    WorkloadKey,
)
from backends.rows import utcnow
from backends.store import Change, Store
from tui.commands import Command, CommandRegistry
from tui.registry import SWITCHES, VIEWS, ViewSpec, view_spec
from tui.screens import ChoiceScreen, ConfirmScreen, HelpScreen, NameScreen
from tui.widgets.forward_dialog import ForwardScreen
from tui.widgets.promote_preview import PromotePreviewScreen
from tui.widgets.promote_progress import PromoteProgressScreen
from tui.widgets.health_pane import HealthScreen
from tui.views.kube import DeploymentsView
from tui.views.table import ResourceView
from tui.views.workloads import InstancesView, WorkloadsView
from tui.widgets.chrome import SOURCE_TITLE, Banner, Crumbs, Header
from tui.widgets.live_table import LiveTable
from tui.widgets.log_view import LogScreen
from tui.widgets.prompt import Prompt
from tui.widgets.scale_dialog import ScaleScreen
from tui.widgets.text_viewer import TextViewerScreen

# Disruptive actions ask first; starting something never needs a second thought.
CONFIRM = {Action.RESTART, Action.STOP, Action.DELETE}


def ferryman_version() -> str:
    try:
        return version("ferryman")
    except PackageNotFoundError:
        return "dev"


def freeze_startup_objects() -> None:
    """Take everything alive now (modules, classes, Textual's machinery, the first
    screen: ~90,000 objects) out of the cyclic collector's sight. Left in, every full
    collection walks them all: 35 ms of CPU each, and in a log flood (where new objects
    churn) a full collection came every two seconds and held a key press for 50-150 ms.
    Frozen objects are still freed by reference counting; only cycles among them are
    never collected, which for objects that live as long as the app costs nothing.
    Opt-in (the command line does it), not in tests, where many apps share one process."""
    gc.collect()
    gc.freeze()


class FerrymanApp(App[None]):
    CSS_PATH = "ferryman.tcss"
    TITLE = "Ferryman"
    ENABLE_COMMAND_PALETTE = False  # `:` is our command mode, as in k9s

    BINDINGS = [
        # Priority: the app forwards each key to whatever has focus when it dispatches
        # the key, so a non-priority `:` would open the prompt only after the keys typed
        # right behind it had gone to the table (`:ctr⏎` typed fast meant restart + yes).
        Binding("colon", "command", "Command", id="command", priority=True),
        Binding("slash", "filter", "Filter", id="filter", priority=True),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("escape", "back", "Back", id="back"),
        Binding("ctrl+c", "quit", "Quit", id="quit", show=False, priority=True),
    ]

    def __init__(
        self,
        hub: Hub,
        config: Config | None = None,
        *,
        readonly: bool | None = None,
        clock: Callable[[], datetime] = utcnow,
        freeze_startup: bool = False,
        forwards_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.hub = hub
        self.freeze_startup = freeze_startup  # see freeze_startup_objects
        hub.store.health_log.clock = clock  # the history's times and the views' "now" agree
        # Where "save these forwards" writes (beside the config file in use).
        self.forwards_file = forwards_file or forwards_path(user_config_path())
        self._promotions_restored = False
        self.clock = clock  # ages and uptimes are relative to this (fixed in snapshot tests)
        self.config = config or Config()
        self.readonly = self.config.ui.readonly if readonly is None else readonly
        self.commands = CommandRegistry()
        self._stack: list[ResourceView] = []
        self._register_commands()

    # ---- frame -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(ferryman_version() + ("  [readonly]" if self.readonly else ""))
        yield Banner()
        yield Crumbs()
        yield Container(id="views")
        yield Prompt(self.commands.completions, self.commands.complete)
        yield Footer()

    async def on_mount(self) -> None:
        self._apply_theme()
        self._apply_keymap()
        self.query_one(Prompt).close()
        self.query_one(Banner).display = False
        for status in self.hub.store.status.values():
            self._show_status(status)
        self.hub.store.subscribe(self._store_changed)
        start = view_spec(self.config.ui.default_view)
        if start is None:
            names = ", ".join(v.name for v in VIEWS)
            self._config_warning(f"ui.default_view: no view named {self.config.ui.default_view!r} — views: {names}")
            start = VIEWS[0]
        await self.reset_view(start.make(self.hub.store))
        self.set_interval(self.config.ui.uptime_refresh_seconds, self._tick)
        if self.freeze_startup:
            self.call_after_refresh(freeze_startup_objects)
        # Last: the adapters start after the first frame is queued, never before it.
        self.run_worker(self.hub.run(), name="hub", group="hub", exit_on_error=False)
        self.run_worker(self._restore_forwards(), group="forwards", exit_on_error=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("command", "filter") and (isinstance(self.focused, Prompt) or len(self.screen_stack) > 1):
            return False  # typed into the prompt, or a dialog/viewer's own key (its search)
        return True

    def _config_warning(self, message: str) -> None:
        self.notify(message, title="Config", severity="warning", timeout=15)

    def _apply_theme(self) -> None:
        try:
            self.theme = self.config.ui.theme
        except InvalidThemeError:
            themes = ", ".join(sorted(self.available_themes))
            self._config_warning(f"ui.theme: no theme named {self.config.ui.theme!r} — themes: {themes}")

    def _apply_keymap(self) -> None:
        known = {b.id for b in self._all_bindings() if b.id}
        keymap = dict(self.config.keymap)
        unknown = sorted(set(keymap) - known)
        for binding_id in unknown:
            keymap.pop(binding_id)
        if unknown:
            self._config_warning(
                f"keymap: unknown binding id(s) {', '.join(unknown)} — known ids: {', '.join(sorted(known))}"
            )
        if keymap:
            self.set_keymap(keymap)

    def _all_bindings(self) -> list[Binding]:
        views = (InstancesView, WorkloadsView, DeploymentsView, TextViewerScreen, ScaleScreen, LogScreen)
        return [*self.BINDINGS, *(b for view in views for b in view.BINDINGS)]  # type: ignore[misc]

    # ---- the store ---------------------------------------------------------------------

    def _store_changed(self, change: Change) -> None:
        if change.status is not None:
            self._show_status(change.status)
            if (change.status.source == Source.K3S and change.status.state == ConnState.CONNECTED
                    and not self._promotions_restored):
                self._promotions_restored = True
                self.run_worker(self._restore_promotions(), group="forwards", exit_on_error=False)
        if change.services or change.services_removed:
            self.query_one(Crumbs).set_health(summarize(self.hub.store.services.values()))
        for view in self._stack:
            view.apply_change(change)

    def _show_status(self, status: SourceStatus) -> None:
        if not self.is_mounted:
            return
        self.query_one(Header).set_status(status)
        self.query_one(Banner).set_status(status)
        for view in self._stack:
            view.set_connection_note(self._note_for(view))

    def _tick(self) -> None:
        # The timer can fire while the app shuts down and the view's table is already
        # gone (seen once in CI): only a view that still has its table ticks.
        if self._stack and not self._exit and self._stack[-1].query(LiveTable):
            self._stack[-1].refresh_ticking()

    # ---- the view stack ----------------------------------------------------------------

    @property
    def current_view(self) -> ResourceView | None:
        return self._stack[-1] if self._stack else None

    async def push_view(self, view: ResourceView) -> None:
        if self._stack:
            self._stack[-1].display = False
        self._stack.append(view)
        view.connection_note = self._note_for(view)
        await self.query_one("#views").mount(view)
        view.table.focus()
        self._update_crumbs()

    async def pop_view(self) -> None:
        if len(self._stack) < 2:
            return
        await self._stack.pop().remove()
        top = self._stack[-1]
        top.display = True
        top.refresh_ticking()
        top.table.focus()
        self._update_crumbs()

    async def reset_view(self, view: ResourceView) -> None:
        old, self._stack = self._stack, []
        for stale in old:
            await stale.remove()
        await self.push_view(view)

    def _note_for(self, view: ResourceView) -> str | None:
        sources = view.kind.sources
        statuses = (self.hub.store.status.get(source) for source in sources)
        # A hybrid view is not empty because one side is not configured.
        return next(
            (n for s in statuses if s and (len(sources) == 1 or s.state != ConnState.ABSENT)
             and (n := connection_note(s))),
            None,
        )

    def _update_crumbs(self) -> None:
        top = self.current_view
        filter_text = top.row_filter.describe() if top and not top.row_filter.matches_all else None
        self.query_one(Crumbs).show([v.crumb for v in self._stack], filter_text)

    # ---- commands and filter -----------------------------------------------------------

    def _register_commands(self) -> None:
        for spec in VIEWS:
            self.commands.register(
                Command(spec.name, spec.aliases, spec.help, lambda arg, spec=spec: self._open_view(spec, arg))
            )
        self.commands.register(Command("quit", ("q", "q!", "exit"), "Quit Ferryman", lambda _arg: self.exit()))
        self.commands.register(Command("help", ("h",), "This help", lambda _arg: self.action_help()))

    async def _open_view(self, spec: ViewSpec, arg: str) -> None:
        if arg and spec.name in SWITCHES:  # `:ns shop`, `:ctx k3d-dev`: switch, stay where we are
            if SWITCHES[spec.name] == "namespace":
                await self.switch_namespace(None if arg in ("all", "-A", "*") else arg, back=False)
            else:
                await self.switch_context(arg, back=False)
            return
        view = spec.make(self.hub.store)
        await self.reset_view(view)
        if arg:
            view.set_filter(arg)
            self._update_crumbs()

    def action_command(self) -> None:
        self.query_one(Prompt).open("command")

    def action_filter(self) -> None:
        top = self.current_view
        self.query_one(Prompt).open("filter", top.row_filter.text if top else "")

    @on(Prompt.FilterChanged)
    def _filter_changed(self, event: Prompt.FilterChanged) -> None:
        self._set_filter(event.value)

    @on(Prompt.Done)
    async def _prompt_done(self, event: Prompt.Done) -> None:
        prompt = self.query_one(Prompt)
        prompt.close()
        if self.current_view:
            self.current_view.table.focus()
        if event.mode == "filter":
            if event.value is None:
                self._set_filter("")
            return
        if not event.value:
            return
        resolved = self.commands.resolve(event.value)
        if resolved is None:
            self.notify(f"Unknown command :{event.value} — ? lists the commands", severity="warning")
            return
        command, arg = resolved
        result = command.run(arg)
        if hasattr(result, "__await__"):
            await result

    def _set_filter(self, text: str) -> None:
        top = self.current_view
        if top is None:
            return
        row_filter = top.set_filter(text)
        if row_filter.warning:
            self.notify(row_filter.warning, severity="warning", timeout=4)
        self._update_crumbs()

    async def action_back(self) -> None:
        top = self.current_view
        if top is not None and not top.row_filter.matches_all:
            self._set_filter("")
        else:
            await self.pop_view()

    def action_help(self) -> None:
        keys = []
        top = self.current_view
        if top is not None and top.ENTER_HELP:
            keys.append(("enter", top.ENTER_HELP, ""))
        for active in self.screen.active_bindings.values():
            # Ferryman's own bindings carry ids (and are remappable); widget internals
            # such as the table's cursor keys would drown them.
            if active.binding.id:
                binding = active.binding
                # Dimmed keys are listed too: the help says what exists here, and why not now.
                what = binding.description if active.enabled else f"{binding.description} (not for this row)"
                keys.append((self.get_key_display(binding), what, binding.id or ""))
        commands = [(" ".join(f":{w}" for w in c.words), c.help) for c in self.commands]
        title = self.current_view.crumb if self.current_view else "Ferryman"
        self.push_screen(HelpScreen(title, keys, commands))

    # ---- actions -----------------------------------------------------------------------

    def request_action(self, action: Action, label: str, instances: Sequence[Instance]) -> None:
        if self.readonly:
            self.notify("Read-only mode: actions are disabled.", severity="warning")
            return
        noun = "pod" if all(i.source == "k3s" for i in instances) else "container"
        count = f"{len(instances)} {noun}{'s' if len(instances) != 1 else ''}"
        if action in CONFIRM:

            def answered(yes: bool | None) -> None:
                if yes:
                    self._perform(action, label, instances)

            self.push_screen(ConfirmScreen(f"{action.capitalize()} {label} ({count})?"), answered)
        else:
            self._perform(action, label, instances)

    def _perform(self, action: Action, label: str, instances: Sequence[Instance]) -> None:
        self._run_action(str(action), label, self.hub.perform(action, instances))

    def request_service_restart(self, label: str, instances: Sequence[Instance], rollout: WorkloadKey | None) -> None:
        """Restart what a row stands for: its containers/pods, and a rollout of its
        Kubernetes workload (the pods are replaced one by one, as kubectl does)."""
        if self.readonly:
            self.notify("Read-only mode: actions are disabled.", severity="warning")
            return
        parts = []
        for noun, count in (("container", sum(i.source == "compose" for i in instances)),
                            ("pod", sum(i.source == "k3s" for i in instances))):
            if count:
                parts.append(f"{count} {noun}{'s' if count != 1 else ''}")
        if rollout is not None:
            parts.append(f"rollout restart of {rollout}")
        if not parts:
            return

        async def run() -> None:
            if instances:
                await self.hub.perform(Action.RESTART, instances)
            if rollout is not None:
                await self.hub.rollout_restart(rollout)

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_action("restart", label, run())

        self.push_screen(ConfirmScreen(f"Restart {label} ({', '.join(parts)})?"), answered)

    def request_scale(self, key: WorkloadKey, replicas: int, current: int, *, confirm: bool = False) -> None:
        if self.readonly:
            self.notify("Read-only mode: actions are disabled.", severity="warning")
            return
        if replicas == current:
            return
        self._run_action("scale", f"{key} {current}→{replicas}", self.hub.scale(key, replicas))

    async def open_scale_dialog(self, key: WorkloadKey, current: int) -> None:
        def answered(replicas: int | None) -> None:
            if replicas is not None:
                self.request_scale(key, replicas, current)

        spec = self.hub.store.specs.get(key.id)
        # Awaited: keys typed right after `S` must reach the dialog's input, not fall
        # between the screen being pushed and its input taking focus.
        await self.push_screen(ScaleScreen(str(key), current, kind=spec.kind if spec else None), answered)

    def open_logs(self, title: str, select: Callable[[Store], Sequence[Instance]]) -> None:
        """`l`: follow the logs of what `select` picks from the store, now and as it
        changes (a new replica joins, a restarted container continues)."""
        from backends.logfollow import LogFollower
        from backends.logtext import LogBuffer

        def targets(store: Store) -> list[LogTarget]:
            return targets_of(select(store))

        previous = any(i.source == Source.K3S for i in select(self.hub.store))
        follower = LogFollower(
            self.hub, targets, LogOptions(tail=self.config.logs.tail),
            buffer=LogBuffer(max_lines=self.config.logs.buffer_lines), previous_supported=previous,
        )
        self.push_screen(LogScreen(title, follower))

    # ---- port-forwards ----------------------------------------------------------------

    def open_forward_dialog(self, target: ForwardTarget, **retry: Any) -> None:
        """shift-f: ask for the ports, then start the forward; a local port that is taken
        brings the dialog back with the reason and the next free port."""

        def answered(spec: ForwardSpec | None) -> None:
            if spec is not None:
                self.run_worker(self._start_forward(target, spec), group="forwards", exit_on_error=False)

        allow = self.config.forwards.allow_remote_bind
        self.push_screen(ForwardScreen(target, allow_remote=allow, **retry), answered)

    async def _start_forward(self, target: ForwardTarget, spec: ForwardSpec) -> None:
        from backends.forwards import ForwardError

        try:
            await self.hub.forwards.start(spec)
        except ForwardError as exc:
            self.open_forward_dialog(target, remote_port=spec.remote_port, address=spec.address, error=str(exc),
                                     local_port=exc.free_port or spec.local_port)
            return
        self.notify(f"{spec.url} → {spec.target} in {spec.namespace}", title="Port-forward")

    async def _restore_forwards(self) -> None:
        """The saved sets marked autostart, started with Ferryman."""
        from backends.forwards import ForwardError

        for forward_set in self.config.forwards.sets:
            if not forward_set.autostart:
                continue
            for entry in forward_set.forwards:
                spec = entry.spec()
                try:
                    await self.hub.forwards.start(spec)
                except ForwardError as exc:
                    self.notify(f"{forward_set.name}: {spec.target} not restored — {exc}", title="Port-forward",
                                severity="warning", timeout=15)

    def forward_action(self, what: str, key: str) -> None:
        async def act() -> None:
            from backends.forwards import ForwardError

            try:
                manager = self.hub.forwards
                await {"stop": manager.stop, "restart": manager.restart, "remove": manager.remove}[what](key)
            except ForwardError as exc:
                self.notify(str(exc), title="Port-forward", severity="error")

        self.run_worker(act(), group="forwards", exit_on_error=False)

    async def save_forward_set(self) -> None:
        """`w` in :pf: the forwards running now, saved as a named set (restored at start)."""
        specs = [pf.spec for pf in self.hub.store.objects_of(PortForward).values()]
        if not specs:
            self.notify("No port-forwards to save.", severity="warning")
            return
        names = [s.name for s in self.config.forwards.sets]

        def answered(name: str | None) -> None:
            if name:
                self.run_worker(self._save_set(name, specs), group="forwards", exit_on_error=False)

        await self.push_screen(NameScreen(f"Save these {len(specs)} forwards as (started with Ferryman):",
                                          names[0] if names else "default"), answered)

    async def _save_set(self, name: str, specs: list[ForwardSpec]) -> None:
        path = self.forwards_file
        try:
            await asyncio.to_thread(save_forward_set, path, name, specs)
        except (OSError, ConfigError) as exc:
            self.notify(f"Could not save to {path}: {exc}", title="Port-forward", severity="error")
            return
        self.notify(f"Saved set {name!r} ({len(specs)} forwards) to {path}", title="Port-forward")

    def open_promote_preview(self, workload: WorkloadKey, instances: Sequence[Instance]) -> None:
        """`p`: the promotion preview of a Compose service, planned from its containers'
        compose files (resolved by the compose CLI, off the event loop); `a` there
        promotes, after a confirm."""
        from backends.promote.plan import ComposeSource, make_plan, preview_text, source_of_instances, with_live_diff

        async def plan():  # noqa: ANN202
            source = source_of_instances(instances) or ComposeSource(None, Path.cwd(), workload.group)
            made = await make_plan(workload.name, source, namespace=self._promote_namespace(workload))
            return await with_live_diff(made, self.hub.live_object, lambda manifest: manifest)

        apply = None if self.readonly else self._confirm_promotion
        self.push_screen(PromotePreviewScreen(f"Promote {workload} → k3s — preview", plan, preview_text, apply))

    def _confirm_promotion(self, plan: Any) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run_promotion(plan)

        ports = ", ".join(f"localhost:{p.host_port}" for p in plan.translation.host_ports) or "no host port"
        self.push_screen(ConfirmScreen(
            f"Promote {plan.project}/{plan.service} to namespace {plan.namespace}? Compose keeps running until "
            f"the pods are ready; then it stops and {ports} is forwarded to the cluster."), answered)

    def _run_promotion(self, plan: Any) -> None:
        from backends.promote.pipeline import PROMOTE_STEPS, promote
        from backends.promote.plan import promotion_plan

        settings = self.config.promote
        pipeline_plan = promotion_plan(plan, settings)
        workload = pipeline_plan.workload

        async def run(report: Callable[..., object]) -> str:
            result = await promote(self.hub, pipeline_plan, timeout=settings.rollout_timeout_seconds,
                                   on_progress=report)
            urls = ", ".join(pf.spec.url for pf in result.forwards) or "no forwards"
            return f"{workload} runs in k3s namespace {plan.namespace}; {urls} answers from the cluster"

        def closed(succeeded: bool | None) -> None:
            # Done: back to the table, where the row has moved to k3s. Failed: back to
            # the preview, to read it again.
            if succeeded and isinstance(self.screen, PromotePreviewScreen):
                self.pop_screen()

        self.push_screen(PromoteProgressScreen(f"Promoting {workload} → k3s {plan.namespace}", list(PROMOTE_STEPS),
                                               run), closed)

    def request_demote(self, workload: WorkloadKey) -> None:
        """shift-p: bring a promoted service back to Compose; the user picks what happens
        to the cluster's copy (scaled to 0, kept for later, or deleted)."""
        from backends.promote.pipeline import Step, demote

        def chosen(mode: str | None) -> None:
            if mode is None:
                return

            async def run(report: Callable[..., object]) -> str:
                await demote(self.hub, workload, mode=mode, on_progress=report)
                return f"{workload} runs in Compose again; the cluster's copy was " + (
                    "scaled to 0" if mode == "scale-to-zero" else "deleted")

            last = Step.SCALE_DOWN if mode == "scale-to-zero" else Step.DELETE
            steps = [Step.STOP_FORWARDS, Step.START_COMPOSE, Step.REMOVE_FORWARDS, last, Step.RECORD]
            self.push_screen(PromoteProgressScreen(f"Demoting {workload} → Compose", steps, run))

        self.push_screen(ChoiceScreen(
            f"Demote {workload}: start it in Compose again, stop its forward, and in the cluster…",
            [("s", "scale-to-zero", "scale the Deployment to 0 (keep it for the next promotion)"),
             ("d", "delete", "delete Ferryman's objects (only those labelled managed-by ferryman)")]), chosen)

    async def _restore_promotions(self) -> None:
        """Once k3s is connected: the forwards of promoted services, so their old
        localhost ports answer again after a restart of Ferryman."""
        from backends.promote.state import restore_forwards

        restored = await restore_forwards(self.hub)
        for spec, reason in restored.failed:
            self.notify(f"{spec.url} → {spec.target} not restored: {reason}", title="Promote", severity="warning",
                        timeout=15)

    def _promote_namespace(self, workload: WorkloadKey) -> str | None:
        """The namespace shown (`-n`/`:ns`), else the project's own (make_plan's default)."""
        kube = self.hub.kube
        return kube.namespace if kube is not None and kube.namespace else None

    def open_health(self, service: LogicalService) -> None:
        """`h`: the health pane of a service row, live."""
        self.push_screen(HealthScreen(self.hub.store, service.id, f"{service.name} ({service.location})", self.clock))

    def show_object(self, ref: ObjectRef, mode: str) -> None:
        """`y` / `d`: the object's YAML or description, fetched fresh, in a searchable viewer."""
        if mode == "yaml":
            title, language, load = f"YAML — {ref}", "yaml", lambda: self.hub.manifest(ref)
        else:
            title, language, load = f"Describe — {ref}", "text", lambda: self.hub.describe(ref)
        self.push_screen(TextViewerScreen(title, "", language=language, loader=load))

    async def switch_namespace(self, namespace: str | None, *, back: bool = True) -> None:
        said = f"k3s: showing {f'namespace {namespace}' if namespace else 'all namespaces'}"
        await self._switch(self.hub.set_namespace(namespace), said, back=back)

    async def switch_context(self, name: str, *, back: bool = True) -> None:
        await self._switch(self.hub.set_context(name), f"k3s: switching to context {name}", back=back)

    async def _switch(self, switching: Awaitable[None], said: str, *, back: bool) -> None:
        """Ask the Kubernetes side to watch elsewhere; its new snapshot replaces the rows.
        From `:ns`/`:ctx` (back=True) the user lands on the workloads view again."""
        try:
            await switching
        except ActionError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(said, timeout=3)
        if back:
            await self.reset_view(VIEWS[0].make(self.hub.store))

    def _run_action(self, what: str, label: str, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except ActionError as exc:
                self.notify(str(exc), title=f"{what} failed", severity="error", timeout=8)
            except Exception as exc:  # noqa: BLE001 - an action must never take the app down
                self.notify(f"{type(exc).__name__}: {exc}", title=f"{what} failed", severity="error", timeout=8)
            else:
                self.notify(f"{label}: {what} done", timeout=3)

        self.notify(f"{what.capitalize()} {label}…", timeout=2)
        self.run_worker(run(), group="actions", exit_on_error=False)

    def open_shell(self, instance: Instance) -> None:
        """Suspend the TUI, run an interactive shell in `instance`, come back."""
        try:
            argv = self.hub.shell_command(instance)
        except ActionError as exc:
            self.notify(str(exc), severity="error")
            return
        try:
            with self.suspend():
                print(f"ferryman: shell in {instance.name} — exit to come back\n", flush=True)
                subprocess.run(argv, check=False)
        except SuspendNotSupported:
            self.notify(
                f"This terminal cannot be suspended (browser session?). Run it yourself:\n{shlex.join(argv)}",
                title="Shell unavailable here",
                severity="warning",
                timeout=15,
            )
        except FileNotFoundError as exc:
            self.notify(f"Cannot run {argv[0]}: {exc.strerror}", severity="error")


def connection_note(status: SourceStatus) -> str | None:
    """What an empty table says while its source is not connected."""
    title = SOURCE_TITLE[status.source]
    if status.state == ConnState.CONNECTING:
        return f"Connecting to {title} at {status.endpoint}…"
    if status.state == ConnState.UNREACHABLE:
        return f"{status.message or title + ' is unreachable'}. Ferryman retries and resyncs by itself."
    if status.state == ConnState.ABSENT:
        return f"{status.message or title + ' is not configured'}. Ferryman picks it up when it appears."
    if status.message:
        return status.message  # connected, but some of it cannot be seen (RBAC, namespace gone)
    return None
