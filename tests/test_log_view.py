"""The log view, driven through a Pilot against a scripted `LogSession`.

`ScriptedSession` and `log_screen` (tests/support/logs.py) run the screen over a real
`LogBuffer` the test feeds. Assertions read the body's rows as rendered
(`render_line`) and the screen's `status`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backends.logs import SINCE_PRESETS, LogKind, LogLine, LogOptions
from backends.logtext import LogBuffer
from tests.support.logs import (
    LOG_SIZE,
    ScriptedSession,
    log_screen,
    open_logs,
    row_of,
    row_styles,
    settled,
    shown,
    until,
)
from tui.widgets.log_lines import MARKER_STYLE, STDERR_STYLE, line_as_text, source_style
from tui.widgets.log_view import (
    LogScreen,
    preset_label,
    save_path,
    since_presets,
    title_slug,
)
from tui.widgets.text_viewer import CURRENT_MATCH_STYLE, MATCH_STYLE

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def numbered(count: int, source: str = "web-1", start: int = 0, **kwargs) -> list[LogLine]:
    return [LogLine(source, T0 + timedelta(seconds=i), f"line {i}", **kwargs) for i in range(start, start + count)]


# ---- pure pieces ----------------------------------------------------------------------------


def test_title_slug_and_save_path(tmp_path: Path):
    assert title_slug("shop/web (all replicas)") == "shop-web-all-replicas"
    assert title_slug("/// ") == "logs"
    now = datetime(2024, 5, 6, 7, 8, 9)
    first = save_path(tmp_path, "shop/web", now)
    assert first == tmp_path / "ferryman-shop-web-20240506-070809.log"
    first.write_text("")
    assert save_path(tmp_path, "shop/web", now) == tmp_path / "ferryman-shop-web-20240506-070809-2.log"


def test_preset_labels_and_plain_text():
    for label, options in SINCE_PRESETS:
        assert preset_label(options) == label
        assert preset_label(LogOptions(tail=options.tail, since=options.since, previous=True)) == label
    assert preset_label(LogOptions(tail=50)) == "tail 50"
    # A tail from config takes the first preset's place in the cycle.
    presets = since_presets(LogOptions(tail=1000))
    assert presets[0] == ("tail 1000", LogOptions(tail=1000)) and presets[1:] == SINCE_PRESETS[1:]
    assert preset_label(LogOptions(tail=1000), presets) == "tail 1000"
    assert since_presets(LogOptions()) == SINCE_PRESETS
    line = LogLine("web-1", T0, "hello")
    assert line_as_text(line, time=False, prefix_width=0) == "hello"
    assert line_as_text(line, time=True, prefix_width=6) == "2024-01-02T03:04:05.000Z web-1  │ hello"
    marker = LogLine("web-1", None, "stream cut; reconnected", kind=LogKind.MARKER)
    assert line_as_text(marker, time=True, prefix_width=6).endswith("── stream cut; reconnected ──")


def test_source_colours_are_stable_and_spread():
    assert source_style("web-1") == source_style("web-1")
    assert len({source_style(f"web-{i}").color for i in range(10)}) >= 4


def test_every_binding_has_an_id_and_a_description():
    ids = [binding.id for binding in LogScreen.BINDINGS]
    assert all(i and i.startswith("logs.") for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(binding.description for binding in LogScreen.BINDINGS)
    assert {"logs.follow", "logs.wrap", "logs.search", "logs.filter", "logs.save", "logs.copy"} <= set(ids)


# ---- following ------------------------------------------------------------------------------


async def test_follow_keeps_the_last_line_visible_as_lines_arrive():
    session = ScriptedSession(numbered(10))
    async with log_screen(session) as (_, screen, pilot):
        assert shown(screen)[-1] == "line 9"
        assert screen.status == "1 source  ·  tail 500  ·  following"
        for start in range(10, 300, 10):
            session.feed(numbered(10, start=start))
        await settled(pilot, screen, session)
        rows = shown(screen)
        assert rows[-1] == "line 299"
        assert len(rows) == screen.body.visible_height  # a full screen: the end, not the start
        assert rows[0] == f"line {300 - len(rows)}"


async def test_redraws_are_throttled_however_often_lines_arrive():
    session = ScriptedSession(numbered(1))
    async with log_screen(session) as (_, screen, pilot):
        syncs = 0
        sync = screen.body.sync

        def counting_sync(*args, **kwargs) -> None:
            nonlocal syncs
            syncs += 1
            sync(*args, **kwargs)

        screen.body.sync = counting_sync  # type: ignore[method-assign]
        started = time.monotonic()
        for i in range(1, 2001):
            session.feed(numbered(1, start=i))
        await settled(pilot, screen, session)
        elapsed = time.monotonic() - started
        assert session.notified > 2000
        assert syncs <= elapsed / 0.05 + 3
        assert shown(screen)[-1] == "line 2000"


async def test_pause_counts_waiting_lines_and_resume_jumps_to_the_end():
    session = ScriptedSession(numbered(100))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("f")
        assert screen.status.endswith("paused")
        before = shown(screen)
        session.feed(numbered(1234, start=100))
        await settled(pilot, screen, session)
        assert shown(screen) == before  # the stream keeps buffering, the view stays
        assert "paused — 1,234 new lines" in screen.status
        await pilot.press("G")
        await pilot.pause()
        assert shown(screen)[-1] == "line 1333"
        assert "following" in screen.status
        # f toggles back and forth; End resumes too.
        await pilot.press("f", "end")
        await pilot.pause()
        assert screen.body.following


async def test_scrolling_up_pauses_and_the_cursor_moves():
    session = ScriptedSession(numbered(100))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("up", "up")
        body = screen.body
        assert not body.following and "paused" in screen.status
        assert body.cursor == 97
        cursor_row = row_of(screen, "line 97")
        cursor_bg = body.get_component_rich_style("log-lines--cursor").bgcolor
        assert any(style.bgcolor == cursor_bg for style in row_styles(screen, cursor_row))
        await pilot.press("pageup", "pageup", "pageup", "pageup")
        await pilot.pause()
        assert body.cursor < 97 - 2 * body.visible_height
        assert f"line {body.cursor}" in shown(screen)
        await pilot.press("home")
        await pilot.pause()
        assert shown(screen)[0] == "line 0"
        await pilot.press("end")
        await pilot.pause()
        assert shown(screen)[-1] == "line 99" and body.following
        # Scrolling up (the wheel, the scrollbar) pauses as well.
        body.scroll_up(animate=False)
        await pilot.pause()
        assert not body.following


async def test_paused_view_keeps_its_lines_while_old_ones_are_evicted():
    session = ScriptedSession(numbered(200), buffer=LogBuffer(max_lines=300))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("home")
        for _ in range(10):
            await pilot.press("pagedown")
        await pilot.pause()
        top = shown(screen)[0]
        session.feed(numbered(50, start=200))  # 250 lines: nothing evicted yet
        session.feed(numbered(100, start=250))  # 350: the oldest 50 go
        await settled(pilot, screen, session)
        assert session.buffer.dropped == 50
        assert shown(screen)[0] == top
        assert "50 older lines dropped to keep memory bounded" in screen.status


# ---- search and filter ----------------------------------------------------------------------


def with_needles(count: int, every: int) -> list[LogLine]:
    return [
        LogLine("web-1", T0, f"line {i}" + (" needle here" if i % every == 0 and i else ""))
        for i in range(count)
    ]


async def test_search_highlights_every_visible_match_and_n_N_cycle():
    session = ScriptedSession(with_needles(200, 10))  # needles on 10, 20, ..., 190
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("slash", *"NEEDLE")
        await pilot.pause()
        body = screen.body
        assert len(body.matches) == 19
        assert body.current == 190  # following: the newest match
        assert "match 19/19" in screen.status
        assert body.following  # typing a search does not stop the stream
        current_row, other_row = row_of(screen, "line 190"), row_of(screen, "line 180")
        assert CURRENT_MATCH_STYLE.bgcolor in {s.bgcolor for s in row_styles(screen, current_row)}
        assert MATCH_STYLE.bgcolor in {s.bgcolor for s in row_styles(screen, other_row)}
        await pilot.press("enter")
        await pilot.press("N")
        await pilot.pause()
        assert not body.following  # jumping pauses
        assert body.current == 180 and "match 18/19" in screen.status
        for _ in range(10):
            await pilot.press("N")
        await pilot.pause()
        assert body.current == 80 and "line 80 needle here" in shown(screen)
        assert CURRENT_MATCH_STYLE.bgcolor in {s.bgcolor for s in row_styles(screen, row_of(screen, "line 80 "))}
        await pilot.press("n")
        assert body.current == 90
        for _ in range(11):
            await pilot.press("n")
        assert body.current == 10  # wrapped round past the newest
        assert "match 1/19" in screen.status
        # Matches in lines that arrive later count too.
        session.feed([LogLine("web-1", T0, "late needle")])
        await settled(pilot, screen, session)
        assert len(body.matches) == 20 and "match 1/20" in screen.status


async def test_search_is_a_regex_if_it_compiles_else_literal():
    session = ScriptedSession([LogLine("web-1", T0, t) for t in ("GET /a (200)", "GET /b 500", "POST /c")])
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("slash", *"get /[ab]", "enter")
        assert list(screen.body.matches) == [0, 1]
        await pilot.press("escape", "slash", *"(200", "enter")
        assert list(screen.body.matches) == [0]
        await pilot.press("escape", "slash", *"nothing", "enter")
        assert 'no match for "nothing"' in screen.status


async def test_filter_mode_shows_only_matches_with_context():
    session = ScriptedSession(with_needles(100, 40))  # needles on 40 and 80
    async with log_screen(session) as (app, screen, pilot):
        await pilot.press("slash", *"needle", "enter", "g")
        await pilot.pause()
        body = screen.body
        assert shown(screen) == ["line 40 needle here", "line 80 needle here"]
        assert "filter: 2 lines" in screen.status
        await pilot.press("c")
        await pilot.pause()
        assert shown(screen) == [f"line {i}" + (" needle here" if i in (40, 80) else "")
                                 for i in [*range(38, 43), *range(78, 83)]]
        assert "filter ±2: 10 lines" in screen.status
        # Context lines are dimmed, matches are not.
        assert any(s.dim for s in row_styles(screen, 0))
        assert not any(s.dim for s in row_styles(screen, 2))
        # New lines: a match and its trailing context as they arrive.
        session.feed([LogLine("web-1", T0, "line 100 needle again")])
        session.feed([LogLine("web-1", T0, "line 101"), LogLine("web-1", T0, "line 102"), LogLine("web-1", T0, "line 103")])
        await settled(pilot, screen, session)
        assert shown(screen)[-5:] == ["line 98", "line 99", "line 100 needle again", "line 101", "line 102"]
        assert body.count == 15
        await pilot.press("c")  # 5
        await pilot.pause()
        assert body.count == 11 + 11 + 9  # 35..45, 75..85, 95..103
        await pilot.press("c")  # back to 0
        await pilot.press("escape")  # the filter goes first
        await pilot.pause()
        assert not body.filtering and body.count == 104
        assert body.query == "needle"
        await pilot.press("escape")  # then the search
        assert body.query == "" and app.screen is screen


async def test_filter_key_without_a_search_asks_for_one():
    session = ScriptedSession(with_needles(50, 25))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("g")
        assert "filter: type a search" in screen.status
        await pilot.press(*"needle")
        await pilot.pause()
        assert shown(screen) == ["line 25 needle here"]
        await pilot.press("escape")  # cancels the search typed for the filter, and the filter
        await pilot.pause()
        assert not screen.body.filtering and screen.body.count == 50


# ---- how lines look -------------------------------------------------------------------------


async def test_json_lines_are_readable_with_the_level_coloured_and_raw_on_toggle():
    raw = '{"time":"2024-01-02T03:04:05Z","level":"error","msg":"db down","retry":3}'
    session = ScriptedSession([LogLine("api", T0, raw), LogLine("api", T0, "plain {not json}")])
    async with log_screen(session) as (_, screen, pilot):
        assert shown(screen) == ["ERROR db down retry=3", "plain {not json}"]
        level = next(seg.style for seg in screen.body.render_line(0) if seg.text.startswith("ERROR"))
        assert level.color is not None and level.color.name == "red"
        await pilot.press("j")
        await pilot.pause()
        assert shown(screen) == [raw, "plain {not json}"]
        assert "raw JSON" in screen.status


async def test_markers_span_the_row_and_stderr_is_tinted():
    session = ScriptedSession([
        LogLine("web-1", T0, "starting"),
        LogLine("web-1", T0, "container restarted, exit 137, OOMKilled", kind=LogKind.MARKER),
        LogLine("web-1", T0, "panic: oops", stream="stderr"),
    ])
    async with log_screen(session) as (_, screen, _):
        assert shown(screen) == ["starting", "── container restarted, exit 137, OOMKilled ──", "panic: oops"]
        marker = list(screen.body.render_line(1))
        assert all(seg.style.reverse and seg.style.color == MARKER_STYLE.color for seg in marker if seg.text)
        assert sum(seg.cell_length for seg in marker) == screen.body.visible_width  # full width
        assert STDERR_STYLE.color in {s.color for s in row_styles(screen, 2)}


async def test_prefix_only_with_two_sources_and_a_colour_each():
    session = ScriptedSession(numbered(3, source="web-1"))
    async with log_screen(session) as (_, screen, pilot):
        assert shown(screen) == ["line 0", "line 1", "line 2"]
        session.feed(numbered(1, source="web-10", start=3))
        await settled(pilot, screen, session)
        assert shown(screen) == ["web-1  │ line 0", "web-1  │ line 1", "web-1  │ line 2", "web-10 │ line 3"]
        assert screen.status.startswith("2 sources")
        first = next(seg.style for seg in screen.body.render_line(0) if seg.text.startswith("web-1"))
        last = next(seg.style for seg in screen.body.render_line(3) if seg.text.startswith("web-10"))
        assert first.color == source_style("web-1").color and last.color == source_style("web-10").color


async def test_timestamps_toggle():
    session = ScriptedSession([*numbered(2), LogLine("web-1", None, "no time")])
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("t")
        await pilot.pause()
        assert shown(screen) == [
            "2024-01-02T03:04:05.000Z line 0",
            "2024-01-02T03:04:06.000Z line 1",
            "                         no time",
        ]


async def test_wrap_folds_long_lines_and_keeps_following_the_end():
    long = [LogLine("web-1", T0, f"long {i} " + "x" * 250) for i in range(1000)]
    session = ScriptedSession(long)
    async with log_screen(session) as (_, screen, pilot):
        body = screen.body
        assert shown(screen)[-1].startswith("long 999 x")
        await pilot.press("w")
        await pilot.pause()
        rows = shown(screen)
        assert "wrap" in screen.status
        assert rows[-1] == "x" * (len("long 999 ") + 250 - 2 * body.visible_width)  # the last row of the last line
        assert all(len(row) <= body.visible_width for row in rows)
        # Only the lines on screen were wrapped.
        assert len(body._shown) <= body.visible_height
        session.feed([LogLine("web-1", T0, "short end")])
        await settled(pilot, screen, session)
        assert shown(screen)[-1] == "short end"
        await pilot.press("home")
        await pilot.pause()
        assert shown(screen)[0].startswith("long 0 x")
        await pilot.press("w")
        await pilot.pause()
        assert shown(screen)[0].startswith("long 0 x") and not body.wrap


# ---- since presets, previous ----------------------------------------------------------------


async def test_since_presets_cycle_and_previous_restarts_the_session():
    session = ScriptedSession(numbered(5), previous_supported=True, after_restart=numbered(2, source="db"))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("s")
        await until(pilot, lambda: session.restarts, "a restart")
        await settled(pilot, screen, session)
        assert session.restarts == [SINCE_PRESETS[1][1]]
        assert shown(screen) == ["line 0", "line 1"]  # the cleared buffer, refilled
        assert "1m" in screen.status
        await pilot.press("p")
        await until(pilot, lambda: len(session.restarts) == 2, "a second restart")
        assert session.restarts[1] == LogOptions(tail=None, since=SINCE_PRESETS[1][1].since, previous=True)
        assert "previous container" in screen.status
        for _ in range(len(SINCE_PRESETS) - 1):
            await pilot.press("s")
        await until(pilot, lambda: len(session.restarts) == len(SINCE_PRESETS) + 1, "the cycle")
        assert session.restarts[-1] == LogOptions(previous=True)  # round to tail 500, still previous


async def test_previous_is_not_offered_without_support():
    session = ScriptedSession(numbered(5))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("p")
        await pilot.pause()
        assert session.restarts == []
        assert "logs.previous" not in {b.binding.id for b in screen.active_bindings.values() if b.enabled}


# ---- save, copy, close ----------------------------------------------------------------------


async def test_save_writes_the_buffer_or_the_filtered_lines(tmp_path: Path):
    session = ScriptedSession([*numbered(5), LogLine("web-2", T0, "other needle")])
    async with log_screen(session, title="shop/web", save_dir=tmp_path) as (app, _, pilot):
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(list(tmp_path.glob("*.log"))) == 1, "the saved file")
        (saved,) = tmp_path.glob("ferryman-shop-web-*.log")
        await until(pilot, lambda: saved.read_text().count("\n") == 6, "the file written")
        assert saved.read_text().splitlines() == [
            *(f"web-1 │ line {i}" for i in range(5)),
            "web-2 │ other needle",
        ]
        await pilot.press("slash", *"needle", "enter", "g", "ctrl+s")
        await until(pilot, lambda: len(list(tmp_path.glob("*.log"))) == 2, "the filtered file")
        (filtered,) = set(tmp_path.glob("*.log")) - {saved}
        await until(pilot, lambda: filtered.read_text() == "web-2 │ other needle\n", "the filtered lines")
        await until(pilot, lambda: any("Saved 1 filtered lines" in n.message for n in app._notifications), "notice")


async def test_copy_puts_the_cursor_line_on_the_clipboard():
    session = ScriptedSession(numbered(20))
    async with log_screen(session) as (app, _, pilot):
        await pilot.press("y")
        assert app.clipboard == "line 19"  # following: the newest line
        await pilot.press("up", "up", "y")
        assert app.clipboard == "line 17"


async def test_escape_closes_and_awaits_close():
    session = ScriptedSession(numbered(5))
    async with log_screen(session) as (app, screen, pilot):
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not screen, "the screen to go")
        assert session.closed and session.close_calls == 1
        await until(pilot, lambda: session.run_ended, "the stream task to end")
        assert app.results == [None]


async def test_leaving_the_app_closes_the_session_too():
    session = ScriptedSession(numbered(5))
    async with log_screen(session):
        pass  # the first lines shown, then the app exits
    assert session.closed and session.run_ended


async def test_bindings_can_be_remapped_by_id():
    session = ScriptedSession(numbered(5))
    async with log_screen(session) as (app, screen, pilot):
        app.set_keymap({"logs.wrap": "W"})
        await pilot.press("W")
        assert screen.body.wrap


# ---- volume ---------------------------------------------------------------------------------


async def test_a_200k_line_buffer_opens_at_the_end_and_renders_only_the_screen():
    buffer = LogBuffer(max_lines=300_000)
    buffer.extend(numbered(200_000))
    session = ScriptedSession(buffer=buffer)
    app, screen = open_logs(session)
    async with app.run_test(size=LOG_SIZE) as pilot:
        await until(pilot, lambda: screen.body.count == 200_000, "the view to take the buffer")
        await pilot.pause()
        body = screen.body
        assert shown(screen)[-1] == "line 199999"
        assert len(body._strips) <= 2 * body.visible_height
        await pilot.press("home")
        await pilot.pause()
        assert shown(screen)[0] == "line 0"
        await pilot.press("slash", *"line 12345$", "enter")
        await pilot.pause()
        assert "match 1/1" in screen.status and "line 12345" in shown(screen)
        await pilot.press("escape", "G")
        await pilot.pause()
        assert shown(screen)[-1] == "line 199999"
        assert len(body._strips) <= 4 * body.visible_height


@pytest.mark.parametrize("wrap", [False, True])
async def test_a_flood_is_followed_in_both_modes(wrap: bool):
    session = ScriptedSession(numbered(10), buffer=LogBuffer(max_lines=5_000))
    async with log_screen(session) as (_, screen, pilot):
        if wrap:
            await pilot.press("w")
        for start in range(10, 20_010, 500):
            session.feed(numbered(500, start=start))
        await settled(pilot, screen, session)
        assert shown(screen)[-1] == "line 20009"
        assert "15,010 older lines dropped" in screen.status


async def test_while_following_the_newest_match_is_the_current_one():
    session = ScriptedSession(with_needles(30, 10))
    async with log_screen(session) as (_, screen, pilot):
        await pilot.press("slash", *"needle", "enter")
        assert "match 2/2" in screen.status
        session.feed([LogLine("web-1", T0, "late needle")])
        await settled(pilot, screen, session)
        assert screen.body.current == 30 and "match 3/3" in screen.status


async def test_on_lines_may_be_called_from_another_thread():
    session = ScriptedSession(numbered(3))
    async with log_screen(session) as (_, screen, pilot):
        session.buffer.extend(numbered(2, start=3))
        await asyncio.to_thread(screen.lines_arrived)
        await until(pilot, lambda: shown(screen)[-1:] == ["line 4"], "the lines from the thread")
