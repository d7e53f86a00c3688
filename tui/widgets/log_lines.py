"""The body of the log view: a line-API widget over a `LogBuffer`.

Nothing here copies the buffer: a screen position maps to an absolute line index
(`first + position`, or an entry of the filter's index list), and only the lines on
screen are turned into text — timestamp, the source's coloured prefix, readable JSON,
search highlights — then cached by index (buffer lines never change, indexes are never
reused). Wrapping is computed for those lines only: in wrap mode the scroll position
still counts lines, and the last position shows the end of the log bottom-anchored,
so following a log of a million lines costs one screenful of work per repaint.
"""

from __future__ import annotations

import re
import zlib
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from backends.logs import LogKind, LogLine
from backends.logtext import LogBuffer, json_level, readable_json
from tui.widgets.text_viewer import (
    CURRENT_MATCH_STYLE,
    MATCH_STYLE,
    compile_query,
    wrap_offsets,
)

# Red stays out of the palette: it is the stderr tint and the error level.
SOURCE_PALETTE = (
    "cyan", "magenta", "green", "yellow", "blue",
    "bright_cyan", "bright_magenta", "bright_green", "bright_yellow", "bright_blue",
)
MARKER_STYLE = Style(color="yellow", bold=True, reverse=True)
STDERR_STYLE = Style(color="bright_red")
TIME_STYLE = Style(dim=True)
CONTEXT_STYLE = Style(dim=True)
CUT_STYLE = Style(dim=True, italic=True)
LEVEL_STYLES = {
    "TRACE": Style(dim=True),
    "DEBUG": Style(color="blue", bold=True),
    "INFO": Style(color="green", bold=True),
    "NOTICE": Style(color="cyan", bold=True),
    "WARN": Style(color="yellow", bold=True),
    "WARNING": Style(color="yellow", bold=True),
    "ERROR": Style(color="red", bold=True),
    "ERR": Style(color="red", bold=True),
    "CRITICAL": Style(color="red", bold=True, reverse=True),
    "FATAL": Style(color="red", bold=True, reverse=True),
    "PANIC": Style(color="red", bold=True, reverse=True),
}
SEPARATOR = " │ "
MARKER_FORMAT = "── {} ──"
PREFIX_MAX = 40  # longer source names are cut in the prefix (a pod name can be 63)
TIME_WIDTH = len("2024-01-02T03:04:05.678Z")
CUT_SLACK = 24  # room for " … 1,234,567 bytes cut" in the virtual width
MIN_WRAP_BODY = 20  # narrower than this beside the prefix: wrap under it instead
CONTEXTS = (0, 2, 5)


# ---- pure pieces ----------------------------------------------------------------------------


def source_style(source: str) -> Style:
    """The colour of a source's prefix: the same name always gets the same colour (a
    stable hash, not Python's per-process one), in this view and the next."""
    return Style(color=SOURCE_PALETTE[zlib.crc32(source.encode("utf-8", "replace")) % len(SOURCE_PALETTE)])


def format_time(time: datetime) -> str:
    """`2024-01-02T03:04:05.678Z`: the engine's UTC timestamp to the millisecond."""
    return f"{time:%Y-%m-%dT%H:%M:%S}.{time.microsecond // 1000:03d}Z"


def line_as_text(line: LogLine, *, time: bool, prefix_width: int) -> str:
    """One line as plain text (saved to a file): what the view shows, JSON kept raw."""
    if line.kind is LogKind.MARKER:
        text = MARKER_FORMAT.format(line.text)
    elif prefix_width:
        text = f"{line.source[:prefix_width]:<{prefix_width}}{SEPARATOR}{line.text}"
    else:
        text = line.text
    if time:
        text = f"{format_time(line.time) if line.time else ' ' * TIME_WIDTH} {text}"
    return text


def trim_before(indexes: array, first: int) -> None:
    """Drop the (ascending) indexes below `first`: lines the buffer evicted."""
    cut = bisect_left(indexes, first)
    if cut:
        del indexes[:cut]


@dataclass(slots=True)
class ShownLine:
    """One buffer line made ready to draw: `head` (timestamp, prefix) and `body` (text),
    and its wrap at the last width asked for."""

    head: Text
    body: Text
    fill: Style | None  # markers colour the whole row
    _wrap_width: int = 0
    _indent: int = 0
    _spans: list[tuple[int, int]] = field(default_factory=list)

    def wrap(self, width: int) -> tuple[int, list[tuple[int, int]]]:
        """(indent, spans): continuation rows start `indent` cells in (under the text,
        past the prefix); `spans` are the rows' character ranges of `body` when
        indented, of head + body when not."""
        if width != self._wrap_width:
            head_cells = self.head.cell_len
            if head_cells and width - head_cells >= MIN_WRAP_BODY:
                self._indent, self._spans = head_cells, wrap_offsets(self.body.plain, width - head_cells)
            else:
                self._indent, self._spans = 0, wrap_offsets(self.head.plain + self.body.plain, width)
            self._wrap_width = width
        return self._indent, self._spans

    def row(self, k: int, width: int | None) -> Text:
        """Row `k` of the line wrapped at `width` (None: not wrapped, one row)."""
        if width is None:
            return self.head + self.body
        indent, spans = self.wrap(width)
        start, end = spans[k]
        if indent:
            return (self.head if k == 0 else Text(" " * indent)) + self.body[start:end]
        return (self.head + self.body)[start:end]


# ---- the widget -----------------------------------------------------------------------------


class LogLines(ScrollView, can_focus=True, inherit_bindings=False):
    """The lines of `buffer`, rendered a screen row at a time.

    The owner calls `sync()` (throttled) after lines were appended; everything else —
    follow, search, filter, wrap, cursor — is state of this widget. Keys are the
    screen's (bindings carry ids there), hence `inherit_bindings=False`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"log-lines--cursor"}

    DEFAULT_CSS = """
    LogLines {
        height: 1fr;
        scrollbar-gutter: stable;
    }
    LogLines > .log-lines--cursor {
        background: $primary 35%;
    }
    """

    class FollowChanged(Message):
        """Following was paused (the user scrolled up) or resumed."""

    def __init__(self, buffer: LogBuffer, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = buffer
        self.following = True
        self.wrap = False
        self.show_time = False
        self.json = True
        # Search: the query, its pattern and the absolute indexes of matching lines.
        self.query = ""
        self.pattern: re.Pattern[str] | None = None
        self.matches = array("q")
        self.current: int | None = None  # the current match's line (absolute index)
        # Filter (grep) mode: only `rows` (matches and their context lines) are shown.
        self.filtering = False
        self.context = 0
        self.rows = array("q")
        self.cursor: int | None = None  # absolute index; None while following (the last line)
        self.paused_end = 0  # buffer.end when following was paused
        self._first = 0  # buffer.first at the last sync: positions count from here
        self._count = 0  # lines (or filter rows) at the last sync
        self._scanned = 0  # lines below this index were looked at (sources, widths)
        self._search_end = 0  # ... searched for `pattern`
        self._rows_end = 0  # ... grepped for the filter
        self._sources: dict[str, None] = {}
        self._widest = 0
        self._any_cut = False
        self._max_top = 0  # the last scroll position: the end of the log, bottom-anchored
        self._max_top_skip = 0  # rows of that line above the screen when bottom-anchored
        self._shown: LRUCache[int, ShownLine] = LRUCache(512)
        # The finished row of (index, row of the line), with what it was made for (scroll,
        # width, style): a repaint of unchanged rows (paused, the cursor moves) reuses it.
        self._strips: LRUCache[tuple[int, int], tuple[tuple[int, int, Style], Strip]] = LRUCache(256)
        self._layout_key: tuple[int, int, int, int] | None = None
        self._layout_rows: list[tuple[int, int]] = []
        self._generation = 0
        self._paint: tuple[int, Style, list[tuple[int, int]]] | None = None  # during render_lines

    # ---- what is shown --------------------------------------------------------------------

    @property
    def sources(self) -> list[str]:
        return list(self._sources)

    @property
    def show_prefix(self) -> bool:
        return len(self._sources) > 1

    @property
    def prefix_width(self) -> int:
        return min(PREFIX_MAX, max(map(len, self._sources))) if self.show_prefix else 0

    @property
    def filter_active(self) -> bool:
        return self.filtering and self.pattern is not None

    @property
    def count(self) -> int:
        """Positions: lines shown (all retained lines, or the filter's rows)."""
        return self._count

    def index_at(self, position: int) -> int:
        """The absolute buffer index shown at `position`."""
        return self.rows[position] if self.filter_active else self._first + position

    def position_of(self, index: int) -> int:
        """The position showing `index`, or the nearest one after it (clamped)."""
        if self.count == 0:
            return 0
        position = bisect_left(self.rows, index) if self.filter_active else index - self._first
        return max(0, min(position, self.count - 1))

    @property
    def last_index(self) -> int | None:
        return self.index_at(self.count - 1) if self.count else None

    @property
    def cursor_index(self) -> int | None:
        """The line `y` copies: the cursor's, or the last line while following."""
        return self.last_index if self.following or self.cursor is None else self.cursor

    @property
    def waiting(self) -> int:
        """Lines that arrived since following was paused."""
        return 0 if self.following else max(0, self.buffer.end - self.paused_end)

    @property
    def match_number(self) -> int | None:
        """1-based number of the current match among `matches`."""
        if self.current is None:
            return None
        return bisect_left(self.matches, self.current) + 1

    @property
    def visible_height(self) -> int:
        return max(1, self.scrollable_content_region.height)

    @property
    def visible_width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def visible_indexes(self) -> list[int]:
        """The absolute indexes of the lines on screen (top to bottom, once each)."""
        seen: list[int] = []
        for position, _ in self._layout():
            index = self.index_at(position)
            if not seen or seen[-1] != index:
                seen.append(index)
        return seen

    # ---- new lines ------------------------------------------------------------------------

    def sync(self, keep: int | None = None) -> None:
        """Catch up with the buffer: new lines, evicted lines, a cleared buffer. While
        paused the top line stays where it is (or line `keep` comes to the top)."""
        buffer = self.buffer
        if keep is None and not self.following:
            keep = self._top_index()
        first, end = buffer.first, buffer.end
        self._scanned = max(self._scanned, first)
        if end > self._scanned:
            self._learn(*buffer.scan(self._scanned, end))
            self._scanned = end
        if self.pattern is not None:
            self._extend_search(first, end)
        trim_before(self.matches, first)
        trim_before(self.rows, first)
        if self.current is not None and self.current < first:
            self.current = None
        if self.following and self.matches and self.current != self.matches[-1]:
            self.current = self.matches[-1]  # following: the newest match is the current one
            self._forget_shown()
        if self.cursor is not None and self.cursor < first:
            self.cursor = first
        self._first = first
        self._count = len(self.rows) if self.filter_active else end - first
        self._refit(keep)

    def _learn(self, sources: set[str], widest: int, any_cut: bool) -> None:
        # What one cheap pass over the new lines only (LogBuffer.scan) says: the sources
        # (for the prefix) and the widest text (for the horizontal scroll range).
        if not sources <= self._sources.keys():
            self._sources.update(dict.fromkeys(sorted(sources - self._sources.keys())))
            self._forget_shown()  # the prefix appears or widens
        self._widest = max(self._widest, widest)
        self._any_cut = self._any_cut or any_cut

    def _extend_search(self, first: int, end: int) -> None:
        assert self.pattern is not None
        start = max(self._search_end, first)
        if end > start:
            self.matches.extend(self.buffer.search(self.pattern, start))
        self._search_end = end
        if self.filtering:
            # Lines of an earlier match's trailing context may be new: grep again from
            # `context` lines back, keep what is past the rows already there.
            start = max(self._rows_end - self.context, first)
            if end > self._rows_end:
                found = self.buffer.grep(self.pattern, self.context, start=start)
                last = self.rows[-1] if self.rows else first - 1
                self.rows.extend(found[bisect_right(found, last):])
            self._rows_end = end

    def reset(self) -> None:
        """Forget what was learnt from the lines (the buffer is about to be cleared and
        refilled: a since preset, the previous container)."""
        self._sources.clear()
        self._widest = 0
        self._any_cut = False
        self.matches = array("q")
        self.rows = array("q")
        self.current = self.cursor = None
        self._scanned = self._search_end = self._rows_end = self.buffer.end
        self.resume()

    # ---- options --------------------------------------------------------------------------

    def set_option(self, name: str, value: bool) -> None:
        """`wrap`, `show_time` or `json`; the view keeps its place."""
        keep = self.cursor_index if self.following else self._top_index()
        setattr(self, name, value)
        self._forget_shown()
        self._refit(keep)

    def set_search(self, query: str, anchor: int | None = None) -> None:
        """Highlight `query` (regex if it compiles, else literal; any case) and pick the
        current match: the newest while following, else the first from line `anchor`
        (default: the top line; a search being typed keeps the line it started from)."""
        keep = None if self.following else self._top_index()
        self.query = query
        self.pattern = compile_query(query)
        buffer = self.buffer
        self.matches = array("q", buffer.search(self.pattern) if self.pattern else ())
        self._search_end = buffer.end
        self.current = None
        if self.matches:
            if self.following:
                self.current = self.matches[-1]
            else:
                top = anchor if anchor is not None else keep if keep is not None else buffer.first
                at = bisect_left(self.matches, top)
                self.current = self.matches[at] if at < len(self.matches) else self.matches[-1]
        self._refilter(keep)
        if self.current is not None and not self.following:
            self.cursor = self.current
            self.reveal(self.current)

    def set_filter(self, on: bool, context: int | None = None) -> None:
        keep = self.cursor_index if not self.following else None
        top = None if self.following else self._top_index()
        self.filtering = on
        if context is not None:
            self.context = context
        self._refilter(top)
        if keep is not None:
            self.cursor = self.index_at(self.position_of(keep)) if self.count else None
            self.reveal(keep)

    def _refilter(self, keep: int | None) -> None:
        """Rebuild the filter's rows after the pattern, the context or the mode changed
        (`keep`: the top line before the change, read while the old mapping held)."""
        if self.filter_active:
            assert self.pattern is not None
            self.rows = array("q", self.buffer.grep(self.pattern, self.context))
        else:
            self.rows = array("q")
        self._rows_end = self.buffer.end
        self._forget_shown()
        self.sync(keep)

    # ---- following and moving -------------------------------------------------------------

    def pause(self) -> None:
        if not self.following:
            return
        self.following = False
        self.paused_end = self.buffer.end
        visible = self.visible_indexes()
        self.cursor = visible[-1] if visible else self.last_index
        self._changed()
        self.post_message(self.FollowChanged())

    def resume(self) -> None:
        was = self.following
        self.following = True
        self.cursor = None
        self.scroll_to_end()
        self._changed()
        if not was:
            self.post_message(self.FollowChanged())

    def scroll_to_end(self) -> None:
        self._scroll_to_row(self.virtual_size.height)
        # Once more after the layout: a horizontal scrollbar that appears with a wide
        # line takes a row, and the end moves down by it.
        self.call_after_refresh(self._keep_at_end)

    def _keep_at_end(self) -> None:
        if self.following and self.scroll_y < self.max_scroll_y:
            self._scroll_to_row(self.max_scroll_y)

    def _scroll_to_row(self, y: int) -> None:
        # Forced: right after `virtual_size` grew, the scrollbars (which allow
        # scrolling) are only updated at the next layout.
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # The wheel or the scrollbar moved up from the end: the user wants to read.
        if self.following and new_value < old_value and new_value < self.max_scroll_y:
            self.pause()

    def move_cursor(self, delta: int) -> None:
        self.pause()
        if not self.count:
            return
        start = self.position_of(self.cursor if self.cursor is not None else self.last_index or 0)
        position = max(0, min(self.count - 1, start + delta))
        self.cursor = self.index_at(position)
        self.reveal(self.cursor)
        self._changed()

    def cursor_home(self) -> None:
        self.pause()
        if self.count:
            self.cursor = self.index_at(0)
            self._scroll_to_row(0)
            self._changed()

    def jump_match(self, delta: int) -> None:
        """The next (+1, newer) or previous (-1, older) match, wrapping round; pauses."""
        if not self.matches:
            return
        self.pause()
        if self.current is None:
            base = self.cursor if self.cursor is not None else self._top_index() or 0
            at = bisect_left(self.matches, base) if delta > 0 else bisect_right(self.matches, base) - 1
        else:
            at = bisect_left(self.matches, self.current) + delta
        self.current = self.matches[at % len(self.matches)]
        self.cursor = self.current
        self._forget_shown()
        self.reveal(self.current)
        self._changed()

    def reveal(self, index: int) -> None:
        """Scroll so the line `index` is on screen (no move when it already is)."""
        if not self.count:
            return
        position = self.position_of(index)
        top = int(self.scroll_y)
        height = self.visible_height
        if position < top:
            self._scroll_to_row(position)
            return
        if not self.wrap:
            if position >= top + height:
                self._scroll_to_row(position - height + 1)
            return
        rows = self._layout()
        if rows and rows[-1][0] > position or (rows and rows[-1][0] == position and self._whole(position, rows)):
            return
        new_top, skip = self._bottom_anchor(position)
        if skip and new_top < position:
            new_top += 1
        self._scroll_to_row(new_top)

    def _whole(self, position: int, rows: list[tuple[int, int]]) -> bool:
        shown = sum(1 for p, _ in rows if p == position)
        return shown >= self._row_count(position)

    def _top_index(self) -> int | None:
        return self.index_at(min(int(self.scroll_y), self.count - 1)) if self.count else None

    # ---- geometry ---------------------------------------------------------------------------

    def _resize_virtual(self) -> None:
        if self.wrap:
            if self.count:
                self._max_top, self._max_top_skip = self._bottom_anchor(self.count - 1)
                height = self._max_top + self.visible_height
            else:
                self._max_top = self._max_top_skip = height = 0
            self.virtual_size = Size(self.visible_width, height)
        else:
            width = self._widest + (CUT_SLACK if self._any_cut else 0)
            if self.show_time:
                width += TIME_WIDTH + 1
            width += self.prefix_width + len(SEPARATOR) if self.show_prefix else 0
            self.virtual_size = Size(width, self.count)

    def _refit(self, keep: int | None = None) -> None:
        """Size the scroll area to the lines, then stay at the end while following, or
        bring line `keep` back to the top; repaint."""
        self._resize_virtual()
        if self.following:
            self.scroll_to_end()
        elif keep is not None:
            self._scroll_to_row(self.position_of(keep))
        self._changed()

    def _bottom_anchor(self, position: int) -> tuple[int, int]:
        """(top, skip): the first line on screen when line `position` ends at the
        bottom, and how many of its rows are above the screen."""
        height = self.visible_height
        total = 0
        while position >= 0:
            total += self._row_count(position)
            if total >= height:
                return position, total - height
            position -= 1
        return 0, 0

    def _row_count(self, position: int) -> int:
        shown = self._shown_line(self.index_at(position))
        return 1 if shown is None else len(shown.wrap(self.visible_width)[1])

    def _layout(self) -> list[tuple[int, int]]:
        """(position, row of that line) for each screen row, top to bottom."""
        height, width = self.visible_height, self.visible_width
        top = int(self.scroll_y)
        key = (top, height, width, self._generation)
        if key == self._layout_key:
            return self._layout_rows
        count = self.count
        rows: list[tuple[int, int]] = []
        if not self.wrap:
            rows = [(position, 0) for position in range(top, min(top + height, count))]
        elif count:
            skip = 0
            if top >= self._max_top:
                top, skip = self._max_top, self._max_top_skip
            position = top
            while len(rows) < height and position < count:
                n = self._row_count(position)
                start = skip if position == top else 0
                rows.extend((position, k) for k in range(start, min(n, start + height - len(rows))))
                position += 1
        self._layout_key, self._layout_rows = key, rows
        return rows

    def on_resize(self) -> None:
        if self.wrap:
            self._forget_shown()
        self._refit()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_shown()

    def _forget_shown(self) -> None:
        self._shown.clear()
        self._strips.clear()
        self._generation += 1

    def _changed(self) -> None:
        self._generation += 1
        self.refresh()

    # ---- rendering --------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every row of this repaint needs is worked out once, not once per row (the
        # widget's style walks its ancestors; the geometry properties are computed): in a
        # flood every row on screen is a new line, on every repaint.
        self._paint = (self.visible_width, self.rich_style, self._layout())
        try:
            return super().render_lines(crop)
        finally:
            self._paint = None

    def render_line(self, y: int) -> Strip:
        width, base, rows = self._paint or (self.visible_width, self.rich_style, self._layout())
        if y >= len(rows):
            return Strip.blank(width, base)
        position, k = rows[y]
        index = self.index_at(position)
        if not self.following and index == self.cursor:
            base += self.get_component_rich_style("log-lines--cursor")
        scroll_x = 0 if self.wrap else int(self.scroll_x)
        made_for = (scroll_x, width, base)
        cached = self._strips.get((index, k))
        if cached is not None and cached[0] == made_for:
            return cached[1]
        shown = self._shown_line(index)
        if shown is None:  # evicted since the last sync
            return Strip.blank(width, base)
        text = shown.row(k, width if self.wrap else None)
        fill = base + shown.fill if shown.fill else base
        # One Strip kept per row: the intermediate ones (and the caches each Strip carries)
        # go at once. While following a flood every repaint shows other lines, so nothing
        # is kept: what a cache keeps across repaints only burdens the garbage collector.
        strip = Strip(text.render(self.app.console), text.cell_len).apply_style(base).crop_extend(
            scroll_x, scroll_x + width, fill
        )
        if not self.following:
            self._strips[(index, k)] = (made_for, strip)
        return strip

    def _shown_line(self, index: int) -> ShownLine | None:
        shown = self._shown.get(index)
        if shown is None:
            try:
                line = self.buffer.line(index)
            except IndexError:
                return None
            shown = self._shown[index] = self._make_shown(index, line)
        return shown

    def _make_shown(self, index: int, line: LogLine) -> ShownLine:
        head = Text(no_wrap=True, end="")
        if self.show_time:
            head.append(format_time(line.time) if line.time else " " * TIME_WIDTH, TIME_STYLE)
            head.append(" ")
        body = Text(no_wrap=True, end="")
        if line.kind is LogKind.MARKER:
            body.append(MARKER_FORMAT.format(line.text), MARKER_STYLE)
            return ShownLine(head, body, MARKER_STYLE)
        if self.show_prefix:
            width = self.prefix_width
            colour = source_style(line.source)
            start = len(head)
            head.append(f"{line.source[:width]:<{width}}", colour)
            head.append(SEPARATOR, colour)
            self._highlight(head, index, start, start + width)
        text, level = line.text, None
        if self.json and text.startswith("{"):
            readable = readable_json(text)
            if readable is not None:
                text, level = readable, json_level(line.text)
        style = STDERR_STYLE if line.stream == "stderr" else None
        if self.filter_active and self.context and not self._is_match(index):
            style = style + CONTEXT_STYLE if style else CONTEXT_STYLE
        body.append(text, style)
        if level and text.startswith(level):
            body.stylize(LEVEL_STYLES.get(level, Style(bold=True)), 0, len(level))
        self._highlight(body, index, 0, len(text))
        if line.truncated:
            body.append(f" … {line.truncated:,} bytes cut", CUT_STYLE)
        return ShownLine(head, body, None)

    def _highlight(self, text: Text, index: int, start: int, end: int) -> None:
        if self.pattern is None:
            return
        style = CURRENT_MATCH_STYLE if index == self.current else MATCH_STYLE
        for found in self.pattern.finditer(text.plain, start, end):
            if found.end() > found.start():
                text.stylize(style, found.start(), found.end())

    def _is_match(self, index: int) -> bool:
        at = bisect_left(self.matches, index)
        return at < len(self.matches) and self.matches[at] == index
