"""A live resource table that follows the store by row deltas.

Rows are never cleared and rebuilt: a store `Change` becomes `add_row`, `update_cell`
(only for cells whose text or tone changed) and `remove_row`, batched and applied at
most once per frame, so the cursor and the scroll position stay where the user left
them while the world changes underneath.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static
from textual.widgets.data_table import CellDoesNotExist, ColumnKey

from backends.filtering import RowFilter, parse_filter
from backends.rows import Cell, Tone
from backends.store import Change, Store
from tui.views.kinds import ResourceKind
from tui.widgets.live_table import LiveTable

TONE_STYLE: dict[Tone, str] = {
    "normal": "",
    "ok": "green",
    "warn": "yellow",
    "error": "bold red",
    "muted": "dim",
    "info": "cyan",
}

# Deltas arriving within this window are applied in one batch (one repaint).
FLUSH_DELAY = 1 / 60

CellUpdates = dict[str, dict[str, Cell]]  # row key -> column key -> new cell

# More removals than this in one batch: rebuild the table instead of removing rows.
REBUILD_OVER = 100


def _plain_lower(values: Any) -> tuple[str, ...]:
    values = values if isinstance(values, tuple) else (values,)
    return tuple(str(v).lower() for v in values)


@lru_cache(maxsize=1 << 16)
def cell_text(cell: Cell) -> Text:
    """Cells repeat ("Running", "shop", "1/1"): one shared Text each. Building 45,000
    of them was half the cost of showing 5,000 rows again after a filter; DataTable
    renders a Text without changing it, so sharing is safe."""
    if cell.spans:
        text = Text(style=TONE_STYLE[cell.tone], no_wrap=True, overflow="ellipsis")
        for part, tone in cell.spans:
            text.append(part, TONE_STYLE[tone])
        return text
    return Text(cell.text, style=TONE_STYLE[cell.tone], no_wrap=True, overflow="ellipsis")


class ResourceView(Vertical):
    """One entry of the view stack: a title for the breadcrumbs and a live table."""

    DEFAULT_CSS = """
    ResourceView { height: 1fr; }
    ResourceView > DataTable { height: 1fr; }
    ResourceView > .empty { height: auto; padding: 1 2; color: $text-muted; display: none; }
    ResourceView.-empty > DataTable { height: auto; }
    ResourceView.-empty > .empty { display: block; }
    """

    # What Enter does here, for the help screen (DataTable owns the key itself).
    ENTER_HELP: str | None = None

    def __init__(self, kind: ResourceKind, store: Store, *, crumb: str, scope: str | None = None) -> None:
        super().__init__(classes=f"view-{kind.name}")
        self.kind = kind
        self.store = store
        self.crumb = crumb
        self.scope = scope
        self.row_filter: RowFilter = parse_filter("")
        self.connection_note: str | None = None
        self._objects: dict[str, Any] = {}
        self._cells: dict[str, tuple[Cell, ...]] = {}  # rendered cells of shown rows
        # The latest rendering of every object, shown or filtered out: a filter keystroke
        # matches against these instead of rendering 5,000 rows again.
        self._rendered: dict[str, tuple[Cell, ...]] = {}
        self._pending: dict[str, Any] = {}
        self._pending_removed: set[str] = set()
        self._flush_scheduled = False

    # ---- building ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        table = LiveTable(cursor_type="row", zebra_stripes=False)
        for column in self.kind.columns:
            table.add_column(column.title, key=column.key)
        yield table
        yield Static("", classes="empty", markup=False)

    @property
    def table(self) -> LiveTable:
        return self.query_one(LiveTable)

    def on_mount(self) -> None:
        self._pending.update(self.kind.select(self.store, self.scope))
        self._flush()

    # ---- deltas ------------------------------------------------------------------------

    def apply_change(self, change: Change) -> None:
        upserts, removed = self.kind.delta(self.store, change, self.scope)
        if not upserts and not (removed & (self._objects.keys() | self._pending.keys())):
            return
        for key in removed:
            self._pending.pop(key, None)
            self._pending_removed.add(key)
        for key, obj in upserts.items():
            self._pending_removed.discard(key)
            self._pending[key] = obj
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.set_timer(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        removed, self._pending_removed = self._pending_removed, set()
        now = self.app.clock()
        for key in removed:
            self._objects.pop(key, None)
            self._rendered.pop(key, None)
        rendered: dict[str, tuple[tuple[Cell, ...], bool]] = {}
        for key, obj in pending.items():
            self._objects[key] = obj
            cells = self._rendered[key] = self.kind.render(obj, now)
            rendered[key] = (cells, self._visible(obj, cells))
        self._apply(rendered, removed)

    def _apply(self, rendered: dict[str, tuple[tuple[Cell, ...], bool]], removed: set[str]) -> None:
        """Show, update or hide rows: `rendered` maps keys to (cells, visible)."""
        table = self.table
        selected = self.selected_key  # before the batch: that row keeps the cursor
        leaving = len(removed & self._cells.keys()) + sum(
            1 for key, (_cells, visible) in rendered.items() if not visible and key in self._cells
        )
        if leaving > REBUILD_OVER:
            # remove_row is O(rows) each (Textual #5273): many at once cost a rebuild less.
            self._rebuild(table, selected, rendered)
            return
        added = False
        updates: CellUpdates = {}
        with self.app.batch_update():
            for key in removed:
                self._hide(table, key)
            for key, (cells, visible) in rendered.items():
                if visible:
                    added |= self._show(table, key, cells, updates)
                else:
                    self._hide(table, key)
            self._apply_updates(table, updates)
            if added:
                self._sort(table, selected)
        self._update_empty()

    def _rebuild(
        self, table: LiveTable, selected: str | None, rendered: dict[str, tuple[tuple[Cell, ...], bool]]
    ) -> None:
        """Refill the table in one pass: the rows still shown and not re-rendered, plus the
        re-rendered ones that are visible. The cursor stays on its row if that is still
        shown, else at the same height."""
        rows = {k: c for k, c in self._cells.items() if k in self._objects and k not in rendered}
        rows.update((k, cells) for k, (cells, visible) in rendered.items() if visible)
        row = table.cursor_row
        with self.app.batch_update():
            table.clear()
            self._cells = rows
            for key, cells in rows.items():
                table.add_row(*(cell_text(c) for c in cells), key=key)
            self._order(table)
            if selected in rows:
                row = table.get_row_index(selected)
            table.move_cursor(row=min(row, max(table.row_count - 1, 0)), animate=False)
        self._update_empty()

    def _visible(self, obj: Any, cells: tuple[Cell, ...]) -> bool:
        if self.row_filter.matches_all:
            return True
        return self.row_filter.matches([c.text for c in cells], self.kind.labels(self.store, obj))

    def _show(self, table: DataTable, key: str, cells: tuple[Cell, ...], updates: CellUpdates) -> bool:
        """Add a row, or note its changed cells in `updates`; True when a row was added
        (the order must be restored)."""
        old = self._cells.get(key)
        self._cells[key] = cells
        if old is None:
            table.add_row(*(cell_text(c) for c in cells), key=key)
            return True
        self._diff_cells(key, old, cells, updates)
        return False

    def _diff_cells(self, key: str, old: tuple[Cell, ...], new: tuple[Cell, ...], updates: CellUpdates) -> None:
        for column, before, after in zip(self.kind.columns, old, new, strict=True):
            if before != after:
                updates.setdefault(key, {})[column.key] = after

    def _apply_updates(self, table: LiveTable, updates: CellUpdates) -> None:
        """One repaint of just the changed rows; a longer text widens its column (rare)."""
        narrow: dict[str, dict[str, Text]] = {}
        for key, cells in updates.items():
            for column_key, cell in cells.items():
                text = cell_text(cell)
                if text.cell_len > table.columns[ColumnKey(column_key)].content_width:
                    table.update_cell(key, column_key, text, update_width=True)
                else:
                    narrow.setdefault(key, {})[column_key] = text
        table.set_cells(narrow)

    def _hide(self, table: DataTable, key: str) -> None:
        if self._cells.pop(key, None) is not None:
            table.remove_row(key)

    def _sort(self, table: DataTable, selected: str | None) -> None:
        """Restore the kind's order after appends, keeping the cursor on the row it was on."""
        self._order(table)
        if selected is not None and selected in self._cells:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    def _order(self, table: LiveTable) -> None:
        order = self.kind.order
        if order is None:
            table.sort(*self.kind.sort_columns, key=_plain_lower)
        else:
            objects = self._objects
            table.sort_rows(lambda key: order(objects[key]))

    def refresh_ticking(self) -> None:
        """Re-render clock-driven cells (uptime) of the rows on screen; only changed rows repaint."""
        if not self._cells or not any(c.ticks for c in self.kind.columns):
            return
        table = self.table
        now = self.app.clock()
        updates: CellUpdates = {}
        # Only the rows on screen: at 5,000 rows, rendering them all took 120 ms every
        # tick. A row scrolled into view shows an age at most one tick old.
        for index in table.visible_row_range():
            key = table.row_key_at(index)
            old = self._cells.get(key) if key is not None else None
            if old is None:
                continue
            fresh = self._rendered[key] = self.kind.render(self._objects[key], now)
            self._diff_cells(key, old, fresh, updates)
            self._cells[key] = fresh
        with self.app.batch_update():
            self._apply_updates(table, updates)

    def put_rows(self, rows: Mapping[str, Any]) -> None:
        """Show rows that do not come from the store (e.g. the kubeconfig's contexts)."""
        self._pending.update(rows)
        self._flush()

    # ---- filtering ---------------------------------------------------------------------

    def set_filter(self, text: str) -> RowFilter:
        """Apply a `/` filter: rows that stop matching leave, rows that match come back."""
        if text == self.row_filter.text:
            return self.row_filter
        self.row_filter = parse_filter(text)
        self._flush()  # anything pending first, so that every object has its cells
        self._apply(
            {k: (cells, self._visible(self._objects[k], cells)) for k, cells in self._rendered.items()}, set()
        )
        return self.row_filter

    # ---- selection ---------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            row_key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        except CellDoesNotExist:
            return None
        return row_key.value

    @property
    def selected(self) -> Any | None:
        key = self.selected_key
        return self._objects.get(key) if key is not None else None

    @property
    def shown_keys(self) -> list[str]:
        """Row keys in display order (for tests and the headless renderer)."""
        table = self.table
        return [table.coordinate_to_cell_key(Coordinate(r, 0)).row_key.value for r in range(table.row_count)]

    def shown_rows(self) -> Mapping[str, tuple[Cell, ...]]:
        return dict(self._cells)

    # ---- empty states ------------------------------------------------------------------

    def set_connection_note(self, note: str | None) -> None:
        self.connection_note = note
        self._update_empty()

    def _update_empty(self) -> None:
        empty = self.table.row_count == 0
        self.set_class(empty, "-empty")
        if not empty:
            return
        if not self.row_filter.matches_all and self._objects:
            text = f"No rows match {self.row_filter.describe()} — Esc clears the filter."
        elif self.connection_note:
            text = self.connection_note
        else:
            text = self.kind.empty_text
        self.query_one(".empty", Static).update(text)
