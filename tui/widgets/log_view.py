"""The log view: `LogScreen(title, session)` follows a `LogSession` until it is closed.

The screen owns the session: on mount it runs `session.run(...)` in a worker of its
own and on unmount it awaits `session.close()`, so no stream outlives the view. The
session appends to its bounded `LogBuffer` and calls back as often as it likes; the
screen repaints at most `1 / FLUSH_INTERVAL` times a second (`1 / FLOOD_INTERVAL` in a
flood), and the body
(`LogLines`) renders only the lines on screen, so a flood costs what one screenful
costs.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from backends.logs import SINCE_PRESETS, LogLine, LogOptions, LogSession
from tui.widgets.log_lines import CONTEXTS, LogLines, line_as_text
from tui.widgets.text_viewer import SEARCH_PLACEHOLDER, hide_search, show_search, viewer_screen_css

FLUSH_INTERVAL = 0.05  # at most 20 repaints a second, however fast lines arrive
# In a flood (a repaint brought more than FLOOD_LINES lines) at most one repaint per
# FLOOD_INTERVAL: nobody reads 10,000 lines a second as they pass, and a repaint of a
# screenful of new lines is the costliest thing the view does (tens of ms on a busy
# machine), which the ingestion and the keys need more.
FLOOD_LINES = 1_000
FLOOD_INTERVAL = 0.25


# ---- pure pieces ----------------------------------------------------------------------------


def title_slug(title: str) -> str:
    """`shop/web (all replicas)` → `shop-web-all-replicas`: safe in a file name."""
    return re.sub(r"[^a-z0-9._]+", "-", title.lower()).strip("-.") or "logs"


def save_path(directory: Path, title: str, now: datetime) -> Path:
    """`~/ferryman-shop-web-20240102-030405.log`, with `-2`, `-3`… if it exists."""
    stem = f"ferryman-{title_slug(title)}-{now:%Y%m%d-%H%M%S}"
    path = directory / f"{stem}.log"
    number = 1
    while path.exists():
        number += 1
        path = directory / f"{stem}-{number}.log"
    return path


def write_lines(path: Path, lines: Sequence[LogLine], *, time: bool, prefix_width: int) -> None:
    with path.open("x", encoding="utf-8", errors="replace", newline="\n") as out:
        for line in lines:
            out.write(line_as_text(line, time=time, prefix_width=prefix_width))
            out.write("\n")


Presets = tuple[tuple[str, LogOptions], ...]


def since_presets(options: LogOptions) -> Presets:
    """The presets `s` cycles through: SINCE_PRESETS, the first ("tail 500") replaced
    by the session's own tail when it opened with another (from config)."""
    if options.tail is not None and options.since is None and options.tail != SINCE_PRESETS[0][1].tail:
        return ((f"tail {options.tail}", LogOptions(tail=options.tail)), *SINCE_PRESETS[1:])
    return SINCE_PRESETS


def preset_label(options: LogOptions, presets: Presets = SINCE_PRESETS) -> str:
    """The since preset's name ("tail 500", "5m", "all"), or what the options say."""
    plain = replace(options, previous=False, follow=True)
    for label, preset in presets:
        if preset == plain:
            return label
    if options.tail is not None:
        return f"tail {options.tail}"
    if options.since is not None:
        return f"since {options.since}"
    return "all"


# ---- the screen -----------------------------------------------------------------------------


class QuietFooter(Footer):
    """A Footer that recomposes only when what it shows changes. Textual rebuilds the
    footer (a widget per key, then a layout of the screen: tens of ms) whenever the focus
    moves, and here the focus moves between the body and the search input on `/`, Esc and
    Enter without changing a single key shown."""

    _signature: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        app = screen.app
        signature = (
            self.show_command_palette,
            tuple(
                (binding.key, app.get_key_display(binding), binding.action, binding.description,
                 binding.group, enabled, tooltip)
                for _, binding, enabled, tooltip in screen.active_bindings.values()
                if binding.show
            ),
        )
        if self._bindings_ready and signature == self._signature:
            return
        if app.app_focus and self.is_attached and screen is self.screen:
            self._signature = signature  # what the recompose below will show
        super().bindings_changed(screen)


class SearchInput(Input):
    """The search input, one row whatever is typed. Input's `virtual_size` (the width of
    the text: only its scroll range here) asks for a layout of the whole screen on every
    keystroke, tens of ms with the footer's keys, more than the search itself; here it
    repaints the input."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)



class LogScreen(Screen[None]):
    """`LogScreen("shop/web", session)`: the logs of one selection, followed live.
    `save_dir` is where ctrl+s writes (the home directory by default)."""

    DEFAULT_CSS = viewer_screen_css("LogScreen", "log", search_margin=2) + """
    LogScreen #log-status {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="logs.close"),
        Binding("f", "toggle_follow", "Follow", id="logs.follow"),
        Binding("G,end", "follow_end", "Follow from the end", id="logs.end", show=False),
        Binding("slash", "search", "Search", id="logs.search"),
        Binding("n", "jump_match(1)", "Next match", id="logs.next-match", show=False),
        Binding("N", "jump_match(-1)", "Previous match", id="logs.previous-match", show=False),
        Binding("g", "toggle_filter", "Filter", id="logs.filter"),
        Binding("c", "cycle_context", "Context 0/2/5", id="logs.context", show=False),
        Binding("w", "toggle_wrap", "Wrap", id="logs.wrap"),
        Binding("t", "toggle_timestamps", "Time", id="logs.timestamps"),
        Binding("j", "toggle_json", "JSON", id="logs.json"),
        Binding("s", "cycle_since", "Since", id="logs.since"),
        Binding("p", "toggle_previous", "Previous", id="logs.previous"),
        Binding("y", "copy_line", "Copy", id="logs.copy"),
        Binding("ctrl+s", "save", "Save", id="logs.save"),
        Binding("up", "cursor(-1)", "Line up", id="logs.cursor-up", show=False),
        Binding("down", "cursor(1)", "Line down", id="logs.cursor-down", show=False),
        Binding("pageup", "page(-1)", "Page up", id="logs.page-up", show=False),
        Binding("pagedown", "page(1)", "Page down", id="logs.page-down", show=False),
        Binding("home", "home", "Oldest line", id="logs.home", show=False),
        Binding("left", "scroll_x(-1)", "Scroll left", id="logs.left", show=False),
        Binding("right", "scroll_x(1)", "Scroll right", id="logs.right", show=False),
    ]

    def __init__(self, title: str, session: LogSession, *, save_dir: Path | None = None) -> None:
        super().__init__()
        self.log_title = title
        self.session = session
        self.save_dir = Path.home() if save_dir is None else Path(save_dir)
        self.options = session.options
        self.presets = since_presets(session.options)
        self._flush_pending = False
        self._last_flush = 0.0
        self._flushed_end = 0  # buffer.end at the last repaint
        self._flooding = False
        self._search_anchor: int | None = None
        self._search_opened_filter = False
        self._status_shown: Text | None = None
        self._session_closed = False
        self._thread = threading.get_ident()
        self._loop: asyncio.AbstractEventLoop | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="log-title", markup=False)
        yield LogLines(self.session.buffer, id="log-lines")
        yield Static(id="log-status", markup=False)
        yield SearchInput(id="log-search", placeholder=SEARCH_PLACEHOLDER)
        yield QuietFooter()

    def on_mount(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        title = Text.assemble(("Logs", "bold"), (" — ", "dim"), (self.log_title, "bold cyan"))
        self.query_one("#log-title", Static).update(title)
        self.body.focus()
        self.flush()
        self.run_worker(self.session.run(self.lines_arrived), name="log-stream", group="log-stream", exit_on_error=False)

    async def on_unmount(self) -> None:
        await self._close_session()

    async def _close_session(self) -> None:
        if self._session_closed:
            return
        self._session_closed = True
        try:
            await self.session.close()
        except Exception as error:  # noqa: BLE001 — leaving the view must not fail
            self.log.error(f"closing the log session: {error!r}")

    @property
    def body(self) -> LogLines:
        return self.query_one(LogLines)

    @property
    def _search_input(self) -> Input:
        return self.query_one("#log-search", Input)

    # ---- lines arrive -----------------------------------------------------------------------

    def lines_arrived(self) -> None:
        """The session's `on_lines`: cheap, and safe from another thread. A repaint is
        scheduled at most every FLUSH_INTERVAL (FLOOD_INTERVAL in a flood), however often
        this is called."""
        if threading.get_ident() != self._thread:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self.lines_arrived)
            return
        if self._flush_pending or self._session_closed:
            return
        self._flush_pending = True
        interval = FLOOD_INTERVAL if self._flooding else FLUSH_INTERVAL
        delay = self._last_flush + interval - time.monotonic()
        if delay > 0:
            self.set_timer(delay, self.flush)
        else:
            self.call_later(self.flush)

    def flush(self) -> None:
        """Show what the buffer holds now."""
        self._flush_pending = False
        self._last_flush = time.monotonic()
        end = self.session.buffer.end
        self._flooding = end - self._flushed_end > FLOOD_LINES
        self._flushed_end = end
        self.body.sync()
        self._update_status()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.group in ("log-stream", "log-restart"):
            self.notify(f"{type(worker.error).__name__}: {worker.error}", title="Log stream failed", severity="error")

    # ---- status -----------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """The status line as plain text (tests read it)."""
        return self._status_text().plain

    def _status_text(self) -> Text:
        body = self.body
        parts: list[tuple[str, str]] = []
        sources = len(body.sources)
        parts.append((f"{sources} source{'s' if sources != 1 else ''}" if sources else "no lines yet", "bold"))
        parts.append((preset_label(self.options, self.presets) + (" · previous container" if self.options.previous else ""), "cyan"))
        if body.following:
            parts.append(("following", "green"))
        elif body.waiting:
            parts.append((f"paused — {body.waiting:,} new lines", "bold yellow"))
        else:
            parts.append(("paused", "yellow"))
        if body.wrap:
            parts.append(("wrap", ""))
        if not body.json:
            parts.append(("raw JSON", ""))
        if body.query:
            if body.match_number is not None:
                parts.append((f"match {body.match_number:,}/{len(body.matches):,}", "cyan"))
            elif body.matches:
                parts.append((f"{len(body.matches):,} matches", "cyan"))
            else:
                parts.append((f'no match for "{body.query}"', "bold red"))
        if body.filtering:
            if body.filter_active:
                context = f" ±{body.context}" if body.context else ""
                parts.append((f"filter{context}: {body.count:,} lines", "magenta"))
            else:
                parts.append(("filter: type a search", "magenta"))
        dropped = self.session.buffer.dropped
        if dropped:
            parts.append((f"{dropped:,} older lines dropped to keep memory bounded", "yellow"))
        text = Text()
        for i, (part, style) in enumerate(parts):
            if i:
                text.append("  ·  ", style="dim")
            text.append(part, style=style)
        return text

    def _update_status(self) -> None:
        text = self._status_text()
        if text == self._status_shown:
            return
        self._status_shown = text
        # One row whatever it says (CSS): no layout of the screen, which in a flood (the
        # dropped count changes on every repaint) would cost more than the repaint itself.
        self.query_one("#log-status", Static).update(text, layout=False)

    @on(LogLines.FollowChanged)
    def _follow_changed(self) -> None:
        self._update_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_previous" and not self.session.previous_supported:
            return False  # Compose has no previous container: the key is not offered
        if action == "cycle_context" and not self.body.filtering:
            return None  # shown dimmed: it means something in filter mode
        return True

    # ---- follow, move -----------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        body = self.body
        if body.following:
            body.pause()
        else:
            body.resume()
        self._update_status()

    def action_follow_end(self) -> None:
        self.body.resume()
        self._update_status()

    def action_cursor(self, delta: int) -> None:
        self.body.move_cursor(delta)
        self._update_status()

    def action_page(self, delta: int) -> None:
        self.body.move_cursor(delta * self.body.visible_height)
        self._update_status()

    def action_home(self) -> None:
        self.body.cursor_home()
        self._update_status()

    def action_scroll_x(self, delta: int) -> None:
        body = self.body
        body.scroll_to(x=body.scroll_x + delta * max(1, body.visible_width // 4), animate=False, immediate=True)

    # ---- display options --------------------------------------------------------------------

    def action_toggle_wrap(self) -> None:
        self.body.set_option("wrap", not self.body.wrap)
        self._update_status()

    def action_toggle_timestamps(self) -> None:
        self.body.set_option("show_time", not self.body.show_time)

    def action_toggle_json(self) -> None:
        self.body.set_option("json", not self.body.json)
        self._update_status()

    # ---- since presets, previous container ----------------------------------------------------

    def action_cycle_since(self) -> None:
        labels = [label for label, _ in self.presets]
        current = preset_label(self.options, self.presets)
        following = (labels.index(current) + 1) % len(labels) if current in labels else 0
        self._restart(replace(self.presets[following][1], previous=self.options.previous))

    def action_toggle_previous(self) -> None:
        self._restart(replace(self.options, previous=not self.options.previous))

    def _restart(self, options: LogOptions) -> None:
        self.options = options
        self.body.reset()
        self._update_status()
        self.run_worker(self._run_restart(options), group="log-restart", exclusive=True, exit_on_error=False)

    async def _run_restart(self, options: LogOptions) -> None:
        await self.session.restart(options)
        self.flush()

    # ---- search and filter ------------------------------------------------------------------

    def action_search(self) -> None:
        body = self.body
        self._search_anchor = None if body.following else body.cursor_index
        show_search(self._search_input, body.query)

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._search_input.display and event.value != self.body.query:
            self.body.set_search(event.value, self._search_anchor)
            self._update_status()

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value != self.body.query:
            self.body.set_search(event.value, self._search_anchor)
        self._search_opened_filter = False
        self._close_input()

    def _close_input(self) -> None:
        hide_search(self._search_input, self.body)
        self._update_status()

    def action_jump_match(self, delta: int) -> None:
        self.body.jump_match(delta)
        self._update_status()

    def action_toggle_filter(self) -> None:
        body = self.body
        if body.filtering:
            body.set_filter(False)
        else:
            body.set_filter(True)
            if body.pattern is None:  # nothing to filter by yet: type it
                self._search_opened_filter = True
                self.action_search()
        self.refresh_bindings()
        self._update_status()

    def action_cycle_context(self) -> None:
        body = self.body
        following = CONTEXTS[(CONTEXTS.index(body.context) + 1) % len(CONTEXTS)] if body.context in CONTEXTS else 0
        body.set_filter(body.filtering, following)
        self._update_status()

    # ---- save, copy -------------------------------------------------------------------------

    def action_save(self) -> None:
        body, buffer = self.body, self.session.buffer
        body.sync()  # what is in the buffer now, not at the last repaint
        if body.filter_active:
            lines = buffer.lines(buffer.first, buffer.end)
            offset = buffer.first
            lines = [lines[i - offset] for i in body.rows]
        else:
            lines = buffer.lines(buffer.first, buffer.end)
        path = save_path(self.save_dir, self.log_title, datetime.now())
        self.run_worker(
            self._save(path, lines, time=body.show_time, prefix_width=body.prefix_width),
            group="log-save",
            exit_on_error=False,
        )

    async def _save(self, path: Path, lines: list[LogLine], *, time: bool, prefix_width: int) -> None:
        try:
            # A file of 100,000 lines takes a moment: written off the event loop. The
            # lines are immutable, so the buffer may go on changing meanwhile.
            await asyncio.to_thread(write_lines, path, lines, time=time, prefix_width=prefix_width)
        except OSError as error:
            self.notify(f"Could not save to {path}: {error.strerror or error}", title="Save", severity="error")
        else:
            what = "filtered lines" if self.body.filter_active else "lines"
            self.notify(f"Saved {len(lines):,} {what} to {path}", title="Save")

    def action_copy_line(self) -> None:
        index = self.body.cursor_index
        try:
            line = self.session.buffer.line(index) if index is not None else None
        except IndexError:
            line = None
        if line is None:
            self.notify("No line to copy", severity="warning")
            return
        self.app.copy_to_clipboard(line.text)
        shown = line.text if len(line.text) <= 60 else line.text[:59] + "…"
        self.notify(f"Copied: {shown}", title="Copy", timeout=3)

    # ---- leaving ----------------------------------------------------------------------------

    async def action_close(self) -> None:
        """Esc peels one layer: the search being typed, the filter, the kept search, then
        the view itself (its streams are closed before it goes)."""
        body = self.body
        if self.focused is self._search_input:
            body.set_search("")
            if self._search_opened_filter:
                body.set_filter(False)
                self._search_opened_filter = False
            self._close_input()
        elif body.filtering:
            body.set_filter(False)
            self.refresh_bindings()
            self._update_status()
        elif body.query:
            body.set_search("")
            self._update_status()
        else:
            await self._close_session()
            self.dismiss()
