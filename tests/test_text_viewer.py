"""The text viewer (search, wrap, loading) and the scale dialog, driven through a Pilot.

A tiny host app pushes the screen under test, as FerrymanApp does; assertions read the
viewer's own state (`text`, `search_state`, `status`) and what the body renders.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App
from textual.widgets import Input

from tui.widgets.scale_dialog import ScaleScreen, parse_replicas
from tui.widgets.text_viewer import (
    CURRENT_MATCH_STYLE,
    MATCH_STYLE,
    Match,
    TextBody,
    TextViewerScreen,
    find_matches,
    first_match_from,
    split_lines,
    wrap_offsets,
)

SIZE = (100, 30)


class Host(App[None]):
    """Pushes one screen on mount and keeps what it was dismissed with."""

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self._factory = screen_factory
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self._factory(), callback=self.results.append)


def manifest(replicas: int = 60) -> str:
    """A multi-document YAML with `image:` on every document (60 matches by default)."""
    docs = []
    for i in range(replicas):
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  namespace: shop\n"
            f"spec:\n  replicas: {i % 4}\n  template:\n    spec:\n      containers:\n"
            f"      - name: web\n        image: registry.local/shop/web:{i}\n---"
        )
    return "\n".join(docs) + "\n"


def row_styles(body: TextBody, row_on_screen: int) -> list:
    return [segment.style for segment in body.render_line(row_on_screen) if segment.style]


def visible_rows(body: TextBody) -> range:
    top = int(body.scroll_y)
    return range(top, top + body.scrollable_content_region.height)


# ---- pure pieces ----------------------------------------------------------------------------


def test_find_matches_regex_literal_and_case():
    lines = ["Image: nginx", "image: IMAGE", "no (match here", "a.b axb"]
    assert find_matches(lines, "image") == [Match(0, 0, 5), Match(1, 0, 5), Match(1, 7, 12)]
    assert find_matches(lines, "(") == [Match(2, 3, 4)]  # not a regex: literal
    assert find_matches(lines, "a.b") == [Match(3, 0, 3), Match(3, 4, 7)]  # a regex
    assert find_matches(["axb"], "x*") == [Match(0, 1, 2)]  # empty matches are dropped
    assert find_matches(lines, "") == []


def test_first_match_from_wraps_round():
    matches = [Match(2, 0, 1), Match(7, 0, 1)]
    assert first_match_from(matches, 0) == 0
    assert first_match_from(matches, 3) == 1
    assert first_match_from(matches, 8) == 0
    assert first_match_from([], 0) is None


def test_wrap_offsets_and_lines():
    assert wrap_offsets("abcdefghij", 4) == [(0, 4), (4, 8), (8, 10)]
    assert wrap_offsets("", 4) == [(0, 0)]
    assert wrap_offsets("日本語テキスト", 4) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert split_lines("a\tb\r\nc\x1b[0m\n") == ["a       b", "c�[0m"]


# ---- the viewer ---------------------------------------------------------------------------


async def test_shows_text_and_highlights_yaml():
    text = manifest(3)
    app = Host(lambda: TextViewerScreen("deploy/web — YAML", text, language="yaml"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        assert isinstance(viewer, TextViewerScreen)
        assert viewer.text == text.rstrip("\n")
        body = viewer.body
        # YAML keys and values come out in more than one color.
        colors = {style.color for style in row_styles(body, 0) if style.color}
        assert len(colors) >= 2


async def test_search_highlights_every_match_and_counts():
    text = manifest()
    app = Host(lambda: TextViewerScreen("manifest", text, language="yaml"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        await pilot.press("slash", *"IMAGE")
        await pilot.pause()
        state = viewer.search_state
        assert state.query == "IMAGE"
        assert len(state.lines) == 60
        assert state.lines[0] == 11
        assert state.current == 0
        assert viewer.status == "match 1/60"
        body = viewer.body
        styles = row_styles(body, 11)
        assert any(s.bgcolor == CURRENT_MATCH_STYLE.bgcolor for s in styles)
        second = state.lines[1] - int(body.scroll_y)
        assert any(s.bgcolor == MATCH_STYLE.bgcolor for s in row_styles(body, second))
        await pilot.press("enter")
        assert not viewer.query_one("#viewer-search", Input).display
        assert viewer.focused is body
        assert viewer.search_state.query == "IMAGE"


async def test_n_and_shift_n_walk_wrap_and_scroll_into_view():
    text = manifest()
    app = Host(lambda: TextViewerScreen("manifest", text))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        body = viewer.body
        await pilot.press("slash", *"shop/web:", "enter")
        await pilot.press("N")  # previous from the first wraps to the last
        state = viewer.search_state
        assert state.current == 59
        assert viewer.status == "match 60/60"
        await pilot.pause()
        assert state.lines[59] in visible_rows(body)
        await pilot.press("n")  # and next from the last wraps to the first
        assert viewer.search_state.current == 0
        await pilot.pause()
        assert state.lines[0] in visible_rows(body)
        for _ in range(30):
            await pilot.press("n")
        await pilot.pause()
        assert viewer.status == "match 31/60"
        assert state.lines[30] in visible_rows(body)
        assert int(body.scroll_y) > 0


async def test_no_match_is_said_in_the_title():
    app = Host(lambda: TextViewerScreen("manifest", manifest(2)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        await pilot.press("slash", *"foo", "enter")
        assert viewer.search_state.lines == ()
        assert viewer.search_state.current is None
        assert viewer.status == 'no match for "foo"'
        await pilot.press("n")  # nothing to walk: no error
        assert viewer.status == 'no match for "foo"'


async def test_escape_cancels_typing_then_clears_then_closes():
    app = Host(lambda: TextViewerScreen("manifest", manifest(5)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        # Esc while typing cancels the search outright.
        await pilot.press("slash", *"web", "escape")
        assert viewer.search_state.query == ""
        assert not viewer.query_one("#viewer-search", Input).display
        assert app.screen is viewer
        # A kept search is cleared by the first Esc, the screen closed by the second.
        await pilot.press("slash", *"web", "enter")
        assert viewer.search_state.lines
        await pilot.press("escape")
        assert viewer.search_state.query == ""
        assert viewer.status == ""
        assert app.screen is viewer
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not viewer
        assert app.results == [None]


async def test_loader_fills_in_the_text():
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "kind: Pod\nmetadata:\n  name: web-0\n"

    app = Host(lambda: TextViewerScreen("pod/web-0", "", language="yaml", loader=load))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        assert viewer.text == "Loading…"
        assert "Loading…" in viewer.status
        release.set()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert viewer.text == "kind: Pod\nmetadata:\n  name: web-0"
        assert viewer.status == ""


async def test_loader_failure_is_shown_in_red_not_raised():
    async def load() -> str:
        raise RuntimeError("pods \"web-0\" not found")

    app = Host(lambda: TextViewerScreen("pod/web-0", "", loader=load))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        viewer = app.screen
        assert viewer.text == 'Could not load: pods "web-0" not found'
        styles = row_styles(viewer.body, 0)
        assert any(style.color is not None and style.color.name == "red" for style in styles)
        assert app.is_running


async def test_wrap_toggle_folds_long_lines():
    long_line = "x" * 250
    app = Host(lambda: TextViewerScreen("inspect", f"short\n{long_line}\nend"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        body = viewer.body
        assert body.virtual_size.height == 3
        assert body.virtual_size.width == 250
        await pilot.press("w")
        await pilot.pause()
        width = body.scrollable_content_region.width
        assert body.wrap and viewer.status == "wrap"
        assert body.virtual_size.height == 2 + -(-250 // width)
        assert body.virtual_size.width == width
        assert viewer.text.splitlines()[1] == long_line  # the text itself is unchanged
        await pilot.press("w")
        await pilot.pause()
        assert not body.wrap and body.virtual_size.height == 3


async def test_search_in_wrapped_text_reveals_the_folded_row():
    lines = [f"line {i} " + "y" * 300 + (" needle" if i == 80 else "") for i in range(100)]
    app = Host(lambda: TextViewerScreen("wide", "\n".join(lines)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        viewer = app.screen
        body = viewer.body
        await pilot.press("w", "slash", *"needle", "enter")
        await pilot.pause()
        assert viewer.search_state.lines == (80,)
        rows = [r for r, (line, _, _) in enumerate(body._rows) if line == 80]
        assert rows[-1] in visible_rows(body)  # the needle sits on the line's last row


async def test_large_text_opens_fast_and_renders_only_what_is_visible():
    text = manifest(420)  # ~5,000 lines of YAML
    assert len(text.splitlines()) >= 5000
    app = Host(lambda: TextViewerScreen("big", "", language="text"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        await app.push_screen(TextViewerScreen("big", text, language="yaml"))
        await pilot.pause()
        assert time.perf_counter() - started < 1.0
        viewer = app.screen
        started = time.perf_counter()
        await pilot.press("slash", *"image")
        await pilot.pause()
        assert time.perf_counter() - started < 1.0
        assert len(viewer.search_state.lines) == 420
        assert len(viewer.body._cache) <= 2 * SIZE[1]


# ---- the scale dialog -----------------------------------------------------------------------


def test_parse_replicas():
    assert parse_replicas("5") == 5
    assert parse_replicas(" 0 ") == 0
    assert parse_replicas("1000") == 1000
    assert isinstance(parse_replicas("1001"), str)
    assert isinstance(parse_replicas("-1"), str)
    assert isinstance(parse_replicas("abc"), str)
    assert isinstance(parse_replicas(""), str)


def scale_app(current: int = 3) -> Host:
    return Host(lambda: ScaleScreen("default/web", current, kind="Deployment"))


async def test_scale_shows_the_question_and_prefills():
    app = scale_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ScaleScreen)
        assert dialog.question == "Scale default/web (Deployment) — now 3 replicas"
        assert dialog.query_one(Input).value == "3"
        assert ScaleScreen("shop/db", 1).question == "Scale shop/db — now 1 replica"


@pytest.mark.parametrize(("typed", "message"), [
    ("abc", "Enter a whole number of replicas"),
    ("-1", "Replicas must be between 0 and 1000"),
    ("1001", "Replicas must be between 0 and 1000"),
])
async def test_scale_rejects_bad_counts_and_stays_open(typed: str, message: str):
    app = scale_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = app.screen
        entry = dialog.query_one(Input)
        entry.value = typed  # "-" is the decrement key, so set the text as a paste would
        await pilot.press("enter")
        await pilot.pause()
        assert dialog.error == message
        assert app.screen is dialog
        assert app.results == []


async def test_scale_typed_abc_is_rejected():
    app = scale_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = app.screen
        await pilot.press("backspace", *"abc", "enter")
        await pilot.pause()
        assert dialog.query_one(Input).value == "abc"
        assert dialog.error == "Enter a whole number of replicas"
        assert app.screen is dialog
        # Fixing the value clears the message and Enter now scales.
        await pilot.press("backspace", "backspace", "backspace", "5")
        await pilot.pause()
        assert dialog.error == ""
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [5]


async def test_scale_accepts_a_number():
    app = scale_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("backspace", "5", "enter")
        await pilot.pause()
        assert app.results == [5]


async def test_scale_plus_minus_adjust():
    app = scale_app(current=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = app.screen
        entry = dialog.query_one(Input)
        await pilot.press("plus", "plus")
        assert entry.value == "3"
        await pilot.press("minus", "minus", "minus", "minus")
        assert entry.value == "0"  # never below zero
        await pilot.press("plus", "enter")
        await pilot.pause()
        assert app.results == [1]


async def test_scale_escape_gives_none():
    app = scale_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]
