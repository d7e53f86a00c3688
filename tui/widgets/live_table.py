"""A DataTable whose cell updates repaint only the rows they touch, and whose new rows
are measured cheaply.

Textual's `DataTable.update_cell` bumps a table-wide counter that is part of every
render-cache key, so one changed cell re-renders every visible row (measured: 83 ms
for one update at 2,000 rows, i.e. ~80 % of a core at 50 changes/s). `set_cells`
instead evicts only the changed rows' cache entries and refreshes only their regions.

It reaches into DataTable's caches; Textual is pinned in pyproject.toml, and the
rendered-screen tests in tests/test_tui.py fail if a Textual upgrade changes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rich.text import Text
from textual.geometry import Region
from textual.render import measure
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey
from textual._two_way_dict import TwoWayDict


class LiveTable(DataTable):
    def set_cells(self, updates: Mapping[str, Mapping[str, CellType]]) -> None:
        """Replace cells, `{row key: {column key: value}}`, without widening columns."""
        rows = {RowKey(k) for k in updates if RowKey(k) in self._row_locations}
        if not rows:
            return
        for row_key in rows:
            cells = self._data[row_key]
            for column_key, value in updates[row_key.value].items():
                cells[ColumnKey(column_key)] = value
        # The row and cell caches are keyed by row key first: drop just those rows.
        for cache in (self._row_render_cache, self._cell_render_cache):
            for key in [k for k in cache.keys() if k[0] in rows]:
                cache.discard(key)
        indexes = [self._row_locations.get(row_key) for row_key in rows]
        for index in indexes:
            self._row_renderable_cache.discard((self._update_count, index))
        # Lines are cheap to rebuild from the (still cached) rows.
        self._line_cache.clear()
        for index in indexes:
            self._refresh_region(self.one_line_row_region(index))

    def one_line_row_region(self, index: int) -> Region:
        """The region of row `index`, in O(1). Textual's `refresh_row` adds up the heights
        of every row above (O(rows) per row: 5,000 changed ages took a second); the
        views' rows are single-line, so the row's y is its index."""
        y = index + (self.header_height if self.show_header else 0)
        return Region(0, y, max(self.size.width, self.virtual_size.width), 1)

    def row_key_at(self, index: int) -> str | None:
        row_key = self._row_locations.get_key(index)
        return row_key.value if row_key is not None else None

    def visible_row_range(self) -> range:
        """Indexes of the rows on screen now (single-line rows)."""
        first = int(self.scroll_y)
        body = max(self.size.height - (self.header_height if self.show_header else 0), 0)
        return range(first, min(first + body + 1, self.row_count))

    def sort_rows(self, order: Callable[[str], Any]) -> None:
        """Order rows by a key computed from each row's key (the view maps it to its
        object): for orders the cells' text cannot give, such as newest event first."""
        ordered = sorted(self._data, key=lambda row_key: order(row_key.value))
        self._row_locations = TwoWayDict({row_key: index for index, row_key in enumerate(ordered)})
        self._update_count += 1
        self.refresh()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Column widths for new rows. Our cells are one-line, no-wrap `Text`, whose width
        is its cell length; Rich's general measurement (it splits words to find minimum
        widths) took ~1 s for the 20,000 cells of a 2,000-row table."""
        console = self.app.console
        columns = self.ordered_columns
        for row_key in new_rows:
            index = self._row_locations.get(row_key)
            if index is None:  # removed before the table went idle
                continue
            _label, cells = self._get_row_renderables(index)
            for column, cell in zip(columns, cells):
                width = cell.cell_len if isinstance(cell, Text) else measure(console, cell, 1)
                if width > column.content_width:
                    column.content_width = width
        # No row is left to measure; the parent recomputes the virtual size.
        super()._update_dimensions(())
