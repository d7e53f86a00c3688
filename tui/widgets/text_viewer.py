"""A full-screen, read-only viewer for a manifest, a describe or a `docker inspect` dump.

The body is a line-API `ScrollView`: it renders only the rows on screen and caches
them, so a 5,000-line manifest opens at once and a search keystroke repaints one
screenful. Highlighting is lexed once per text, not per repaint. Search works as in
`less`: `/` types a pattern (a regex if it compiles, else literal; case-insensitive),
every match lights up as you type, Enter keeps it, `n`/`N` walk the matches.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound
from rich.cells import cell_len, chop_cells
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

# An ANSI theme: its colors follow the app's Textual theme, dark or light.
SYNTAX_THEME = "ansi_dark"
MATCH_STYLE = Style(color="black", bgcolor="yellow")
CURRENT_MATCH_STYLE = Style(color="black", bgcolor="bright_magenta", bold=True)
ERROR_STYLE = Style(color="red", bold=True)
LOADING_STYLE = Style(dim=True, italic=True)
# Control characters (an escape in a dumped env value) must never reach the terminal.
_CONTROL = str.maketrans({c: "�" for c in [*range(0x09), *range(0x0B, 0x20), 0x7F]})


# ---- pure logic -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """One match: its line (0-based) and its character span in that line."""

    line: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SearchState:
    """What the search shows: `lines` holds each match's line (0-based), in order;
    `current` indexes `lines` (None without a match)."""

    query: str
    lines: tuple[int, ...]
    current: int | None


def compile_query(query: str) -> re.Pattern[str] | None:
    """A regex if the query compiles as one, else the literal text; case-insensitive."""
    if not query:
        return None
    try:
        return re.compile(query, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(query), re.IGNORECASE)


def find_matches(lines: Sequence[str], query: str) -> list[Match]:
    """Every non-empty match of `query` in `lines` (a pattern like `a*` matches nothing
    visible, so its empty matches are dropped)."""
    pattern = compile_query(query)
    if pattern is None:
        return []
    return [
        Match(number, found.start(), found.end())
        for number, line in enumerate(lines)
        for found in pattern.finditer(line)
        if found.end() > found.start()
    ]


def first_match_from(matches: Sequence[Match], line: int) -> int | None:
    """The first match at or after `line`, wrapping round to the first one."""
    if not matches:
        return None
    return next((i for i, m in enumerate(matches) if m.line >= line), 0)


def wrap_offsets(line: str, width: int) -> list[tuple[int, int]]:
    """Character spans of the rows `line` folds into at `width` cells."""
    if width <= 0 or not line:
        return [(0, len(line))]
    if line.isascii():
        return [(start, min(start + width, len(line))) for start in range(0, len(line), width)]
    spans: list[tuple[int, int]] = []
    start = 0
    for chunk in chop_cells(line, width):
        spans.append((start, start + len(chunk)))
        start += len(chunk)
    return spans or [(0, len(line))]


def syntax_spans(text: str, language: str) -> list[list[Span]] | None:
    """Per-line highlight spans for `text` in a Pygments language; None when plain.

    Lexed once for the whole text (a YAML block scalar needs its context), then split
    into lines so each row is styled on demand without lexing again."""
    if language in ("", "text"):
        return None
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    theme = Syntax.get_theme(SYNTAX_THEME)
    lines: list[list[Span]] = [[]]
    column = 0
    for token_type, value in lexer.get_tokens(text):
        style = theme.get_style_for_token(token_type)
        for index, part in enumerate(value.split("\n")):
            if index:
                lines.append([])
                column = 0
            if part and style:
                lines[-1].append(Span(column, column + len(part), style))
            column += len(part)
    return lines


def split_lines(text: str) -> list[str]:
    """Display lines: tabs expanded, control characters made visible, one trailing
    newline dropped."""
    text = text.replace("\r\n", "\n").expandtabs(8).translate(_CONTROL)
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


# ---- the body -----------------------------------------------------------------------------


class TextBody(ScrollView, can_focus=True):
    """The lines, their syntax colors and the search highlights, rendered a row at a time."""

    DEFAULT_CSS = """
    TextBody {
        height: 1fr;
        scrollbar-gutter: stable;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[str] = []
        self.wrap = False
        self._spans: list[list[Span]] | None = None
        self._style: Style | None = None
        self._max_width = 0
        # One entry per screen row: (line, start, end) — a line folds into several when wrapping.
        self._rows: list[tuple[int, int, int]] = []
        self._first_row: list[int] = []
        self._wrap_width = 0
        self._matches: list[Match] = []
        self._by_line: dict[int, list[int]] = {}
        self._current: int | None = None
        self._cache: LRUCache[int, Strip] = LRUCache(1024)

    # -- content

    def set_text(self, text: str, language: str = "text", style: Style | None = None) -> None:
        self.lines = split_lines(text)
        self._spans = syntax_spans("\n".join(self.lines), language)
        self._style = style
        self._max_width = max(map(cell_len, self.lines), default=0)
        self.set_matches([], None)
        self._layout()
        self.scroll_to(0, 0, animate=False, immediate=True)

    def set_wrap(self, wrap: bool) -> None:
        top = self.top_line
        self.wrap = wrap
        self._layout()
        self.scroll_to(0, self._first_row[top] if top < len(self._first_row) else 0, animate=False, immediate=True)

    @property
    def top_line(self) -> int:
        """The text line shown in the first visible row."""
        row = int(self.scroll_y)
        return self._rows[row][0] if row < len(self._rows) else 0

    def _layout(self) -> None:
        width = max(1, self.scrollable_content_region.width)
        self._wrap_width = width if self.wrap else 0
        rows: list[tuple[int, int, int]] = []
        first: list[int] = []
        for number, line in enumerate(self.lines):
            first.append(len(rows))
            if not self.wrap or (len(line) <= width and cell_len(line) <= width):
                rows.append((number, 0, len(line)))
            else:
                rows.extend((number, start, end) for start, end in wrap_offsets(line, width))
        self._rows, self._first_row = rows, first
        self.virtual_size = Size(width if self.wrap else self._max_width, len(rows))
        self._invalidate()

    def on_resize(self) -> None:
        if self.wrap and self.scrollable_content_region.width != self._wrap_width:
            self.set_wrap(True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def _invalidate(self) -> None:
        self._cache.clear()
        self.refresh()

    # -- search highlights

    def set_matches(self, matches: list[Match], current: int | None) -> None:
        self._matches = matches
        self._by_line = {}
        for index, match in enumerate(matches):
            self._by_line.setdefault(match.line, []).append(index)
        self._current = current
        self._invalidate()

    def set_current(self, current: int | None) -> None:
        self._current = current
        self._invalidate()  # only the visible rows are rendered again

    def reveal(self, index: int) -> None:
        """Scroll so match `index` is on screen: centred if it was off it, else no move."""
        match = self._matches[index]
        row = self._first_row[match.line]
        while row + 1 < len(self._rows) and self._rows[row + 1][0] == match.line and self._rows[row][2] <= match.start:
            row += 1
        region = self.scrollable_content_region
        scroll_x, scroll_y = int(self.scroll_x), int(self.scroll_y)
        y = scroll_y if scroll_y <= row < scroll_y + region.height else max(0, row - region.height // 2)
        x = scroll_x
        if not self.wrap:
            line = self.lines[match.line]
            left, right = cell_len(line[: match.start]), cell_len(line[: match.end])
            if left < scroll_x or right > scroll_x + region.width:
                x = max(0, left - region.width // 3)
        self.scroll_to(x, y, animate=False, immediate=True)

    # -- rendering

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        row = scroll_y + y
        if row >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        strip = self._cache.get(row)
        if strip is None:
            strip = self._cache[row] = self._render_row(row)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _render_row(self, row: int) -> Strip:
        number, start, end = self._rows[row]
        line = self.lines[number]
        spans = self._spans[number] if self._spans is not None and number < len(self._spans) else []
        base = self.rich_style + self._style if self._style else self.rich_style
        # The base style as the first span: `Text.render` ignores `Text.style` when there are none.
        text = Text(line, spans=[Span(0, len(line), base), *spans], no_wrap=True, end="")
        for index in self._by_line.get(number, ()):
            match = self._matches[index]
            text.stylize(CURRENT_MATCH_STYLE if index == self._current else MATCH_STYLE, match.start, match.end)
        if (start, end) != (0, len(line)):
            text = text[start:end]
        return Strip(list(text.render(self.app.console)), text.cell_len)


# ---- the screen ---------------------------------------------------------------------------

SEARCH_PLACEHOLDER = "search: regex or text, any case — Enter keeps, Esc cancels"


def viewer_screen_css(screen: str, prefix: str, *, search_margin: int) -> str:
    """The CSS of a full-screen viewer: a one-line title `#{prefix}-title` on top, and the
    search input `#{prefix}-search` docked `search_margin` rows above the bottom (over the
    footer and any status line), hidden until `/` shows it."""
    return f"""
    {screen} {{
        layout: vertical;
    }}
    {screen} #{prefix}-title {{
        height: 1;
        padding: 0 1;
        background: $panel;
    }}
    {screen} #{prefix}-search {{
        dock: bottom;
        margin-bottom: {search_margin};
        border: tall $warning;
        display: none;
    }}
    """


def show_search(search: Input, query: str) -> None:
    """Open the search input on `query`, the cursor at its end, and focus it."""
    search.value = query
    search.cursor_position = len(query)
    search.display = True
    search.screen.set_focus(search)  # now, not a tick later: the next keys are already queued


def hide_search(search: Input, body: Widget) -> None:
    """Hide the search input and give the focus back to `body`."""
    search.display = False
    search.screen.set_focus(body)


class TextViewerScreen(Screen[None]):
    """`TextViewerScreen("deploy/web — YAML", text, language="yaml")`, or with `loader`
    (an async callable returning the text) to open at once and fill in when it answers."""

    DEFAULT_CSS = viewer_screen_css("TextViewerScreen", "viewer", search_margin=1)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search", id="viewer.search"),
        Binding("n", "next_match", "Next match", id="viewer.next-match"),
        Binding("N", "previous_match", "Prev match", id="viewer.previous-match"),
        Binding("w", "toggle_wrap", "Wrap", id="viewer.wrap"),
        Binding("escape", "close", "Close", id="viewer.close"),
    ]

    def __init__(
        self,
        title: str,
        text: str,
        *,
        language: str = "text",
        loader: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        super().__init__()
        self.viewer_title = title
        self._text = text
        self._language = language
        self._loader = loader
        self._loading = loader is not None
        self._query = ""
        self._matches: list[Match] = []
        self._current: int | None = None
        self._anchor_line = 0
        self._scroll_before: tuple[float, float] = (0, 0)

    def compose(self) -> ComposeResult:
        yield Static(id="viewer-title", markup=False)
        yield TextBody(id="viewer-body")
        yield Input(id="viewer-search", placeholder=SEARCH_PLACEHOLDER)
        yield Footer()

    def on_mount(self) -> None:
        body = self.body
        if self._loader is not None:
            body.set_text("Loading…", style=LOADING_STYLE)
            self._load()
        else:
            body.set_text(self._text, self._language)
        self._update_title()
        body.focus()

    @property
    def body(self) -> TextBody:
        return self.query_one(TextBody)

    @property
    def _search_input(self) -> Input:
        return self.query_one("#viewer-search", Input)

    # -- what is shown (tests read these rather than scraping the screen)

    @property
    def text(self) -> str:
        """The text in the body, without styles ("Loading…" or the error while not loaded)."""
        return "\n".join(self.body.lines)

    @property
    def search_state(self) -> SearchState:
        return SearchState(self._query, tuple(m.line for m in self._matches), self._current)

    @property
    def status(self) -> str:
        """The right-hand part of the title line: loading, match position, wrap."""
        parts = []
        if self._loading:
            parts.append("Loading…")
        if self._query:
            if self._current is not None:
                parts.append(f"match {self._current + 1}/{len(self._matches)}")
            else:
                parts.append(f'no match for "{self._query}"')
        if self.body.wrap:
            parts.append("wrap")
        return "  ·  ".join(parts)

    def _update_title(self) -> None:
        line = Text(self.viewer_title, style="bold")
        if status := self.status:
            no_match = bool(self._query) and self._current is None
            line.append("   ")
            line.append(status, style="bold red" if no_match else "cyan")
        self.query_one("#viewer-title", Static).update(line)

    # -- loading

    @work(exclusive=True, group="viewer-load", exit_on_error=False)
    async def _load(self) -> None:
        assert self._loader is not None
        try:
            text = await self._loader()
        except Exception as error:  # noqa: BLE001 — any failure is shown, never fatal
            self._loading = False
            self.body.set_text(f"Could not load: {error or type(error).__name__}", style=ERROR_STYLE)
        else:
            self._loading = False
            self.body.set_text(text, self._language)
            if self._query:  # a search typed while loading applies to what arrived
                self._search(self._query)
        self._update_title()

    # -- search

    def action_search(self) -> None:
        self._anchor_line = self.body.top_line
        self._scroll_before = (self.body.scroll_x, self.body.scroll_y)
        show_search(self._search_input, self._query)

    @on(Input.Changed, "#viewer-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._search_input.display:
            self._search(event.value)

    @on(Input.Submitted, "#viewer-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value != self._query:
            self._search(event.value)
        self._close_input()

    def _search(self, query: str) -> None:
        self._query = query
        self._matches = find_matches(self.body.lines, query)
        self._current = first_match_from(self._matches, self._anchor_line)
        self.body.set_matches(self._matches, self._current)
        if self._current is not None:
            self.body.reveal(self._current)
        self._update_title()

    def _close_input(self) -> None:
        hide_search(self._search_input, self.body)

    def _clear_search(self) -> None:
        self._query = ""
        self._matches, self._current = [], None
        self.body.set_matches([], None)
        self._update_title()

    def action_next_match(self) -> None:
        self._step(1)

    def action_previous_match(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        if not self._matches:
            return
        current = -1 if self._current is None and delta > 0 else (self._current or 0)
        self._current = (current + delta) % len(self._matches)
        self.body.set_current(self._current)
        self.body.reveal(self._current)
        self._update_title()

    # -- the rest

    def action_toggle_wrap(self) -> None:
        self.body.set_wrap(not self.body.wrap)
        if self._current is not None:
            self.body.reveal(self._current)
        self._update_title()

    def action_close(self) -> None:
        """Esc peels one layer: the search being typed, then the kept search, then the screen."""
        if self.focused is self._search_input:
            self._clear_search()
            self._close_input()
            x, y = self._scroll_before
            self.body.scroll_to(x, y, animate=False, immediate=True)
        elif self._query:
            self._clear_search()
        else:
            self.dismiss()
