"""Log tests' shared pieces: reading a `LogBuffer`, and the log view driven through a
Pilot against a scripted `LogSession`.

`ScriptedSession` appends `LogLine`s to a real `LogBuffer` from its `run` task (the
screen's worker), as the follower does, and records restart/close calls. `log_screen`
opens a `LogScreen` over it in a tiny host app; `shown` and `row_styles` read the
body's rows as rendered (`render_line`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable

from textual.app import App
from textual.pilot import Pilot

from backends.logfollow import LogFollower
from backends.logs import LogKind, LogLine, LogOptions
from backends.logtext import LogBuffer
from tests.support.pilot import wait_for
from tui.widgets.log_view import LogScreen

LOG_SIZE = (100, 30)


def buffer_texts(buffer: LogBuffer, kind: LogKind = LogKind.LINE) -> list[str]:
    """The texts of the retained lines of one kind (log lines, or markers), oldest first."""
    return [line.text for line in buffer.lines(buffer.first, buffer.end) if line.kind is kind]


class FollowedRun:
    """A follower running in a task as a log view runs it, and what its buffer holds."""

    def __init__(self, follower: LogFollower) -> None:
        self.follower = follower
        self.calls = 0  # on_lines calls
        self.task = asyncio.create_task(follower.run(self._on_lines))

    def _on_lines(self) -> None:
        self.calls += 1

    def lines(self) -> list[LogLine]:
        buffer = self.follower.buffer
        return buffer.lines(buffer.first, buffer.end)

    def texts(self) -> list[str]:
        return buffer_texts(self.follower.buffer)

    def markers(self) -> list[str]:
        return buffer_texts(self.follower.buffer, LogKind.MARKER)

    async def close(self) -> None:
        await self.follower.close()
        await asyncio.wait_for(self.task, 10)


# ---- the log view over a scripted session ---------------------------------------------------


class ScriptedSession:
    """A LogSession a test drives: `feed(lines)` has the run task append them."""

    def __init__(
        self,
        lines: Iterable[LogLine] = (),
        *,
        buffer: LogBuffer | None = None,
        previous_supported: bool = False,
        after_restart: Iterable[LogLine] = (),
    ) -> None:
        self.buffer = buffer if buffer is not None else LogBuffer()
        self.options = LogOptions()
        self.previous_supported = previous_supported
        self._initial = list(lines)
        self._after_restart = list(after_restart)
        self._batches: asyncio.Queue[list[LogLine]] = asyncio.Queue()
        self.restarts: list[LogOptions] = []
        self.notified = 0  # on_lines calls
        self.close_calls = 0
        self.closed = False
        self.run_ended = False

    async def run(self, on_lines: Callable[[], None]) -> None:
        self._on_lines = on_lines
        try:
            if self._initial:
                self.buffer.extend(self._initial)
                self._notify()
            while True:
                batch = await self._batches.get()
                self.buffer.extend(batch)
                self._notify()
                await asyncio.sleep(0)  # as a real stream does between chunks
        finally:
            self.run_ended = True

    def _notify(self) -> None:
        self.notified += 1
        self._on_lines()

    def feed(self, lines: Iterable[LogLine]) -> None:
        self._batches.put_nowait(list(lines))

    async def restart(self, options: LogOptions) -> None:
        self.restarts.append(options)
        self.options = options
        self.buffer.clear()
        self.buffer.extend(self._after_restart)
        self._notify()

    async def close(self) -> None:
        self.close_calls += 1
        await asyncio.sleep(0)
        self.closed = True


class Host(App[None]):
    """Pushes the log screen, as FerrymanApp does, and keeps what it is dismissed with."""

    def __init__(self, screen: LogScreen) -> None:
        super().__init__()
        self._log_screen = screen
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self._log_screen, callback=self.results.append)


def open_logs(session: ScriptedSession, title: str = "shop/web", **kwargs) -> tuple[Host, LogScreen]:
    screen = LogScreen(title, session, **kwargs)
    return Host(screen), screen


@contextlib.asynccontextmanager
async def log_screen(
    session: ScriptedSession, *, size: tuple[int, int] = LOG_SIZE, **kwargs
) -> AsyncIterator[tuple[Host, LogScreen, Pilot]]:
    """The app running the log screen over `session` (`kwargs` go to `LogScreen`), with
    the session's first lines already shown: `async with log_screen(s) as (app, screen, pilot)`."""
    app, screen = open_logs(session, **kwargs)
    async with app.run_test(size=size) as pilot:
        await settled(pilot, screen, session)
        yield app, screen, pilot


def shown(screen: LogScreen) -> list[str]:
    """The body's rows as rendered, trailing blanks dropped."""
    body = screen.body
    rows = [body.render_line(y).text.rstrip() for y in range(body.visible_height)]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def row_styles(screen: LogScreen, y: int) -> list:
    return [segment.style for segment in screen.body.render_line(y) if segment.style]


def row_of(screen: LogScreen, text: str) -> int:
    return next(y for y, row in enumerate(shown(screen)) if text in row)


async def until(pilot: Pilot, predicate: Callable[[], bool], what: str = "condition", timeout: float = 5.0) -> None:
    await wait_for(pilot, predicate, timeout, what)


async def settled(pilot: Pilot, screen: LogScreen, session: ScriptedSession) -> None:
    """Every fed batch appended and shown."""
    await until(pilot, lambda: session._batches.empty() and screen.body._scanned == session.buffer.end
                and not screen._flush_pending, "the view to catch up")
    await pilot.pause()
