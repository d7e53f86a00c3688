"""Following the logs of a selection: one container, one pod, or every replica of a
workload, across restarts, interleaved in time order into one bounded buffer.

A `LogFollower` is the `LogSession` a log view holds. It asks the hub's adapters for
each target's stream (`Adapter.logs`) and decides, from the store, what an ended
stream means — the adapters only say how it ended:

- the target left the selection (a replica scaled away, a pod deleted): a marker, and
  its stream is given a moment to bring its last lines before it is closed;
- the instance stopped (the store shows it down): a marker with its exit ("web-1
  exited (137, OOMKilled)"), then nothing until it runs again;
- it runs again in a new run (another start time or restart count): "web-1 restarted",
  and the stream is reopened from the last line's time;
- it still runs the same run after a moment to settle (the store lags the stream's end
  by a few milliseconds on a restart): the stream was cut; it is reopened, with back-off
  if reopening keeps failing, and "stream cut; reconnected" is shown before the first
  line it brings.

Reopening asks for a little more than what is missing (engines' "since" is coarse) and
skips what was already shown: lines older than the last line's time, and lines at
exactly that time with a text already seen there. New targets join with a marker when
their instance was created after the follower started (a new replica), and then from
their first line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from backends.adapter import ActionError, backoff_delays
from backends.hub import Hub
from backends.logs import LogEnded, LogKind, LogLine, LogOptions, LogTarget
from backends.logtext import Interleaver, LogBuffer, Record
from backends.model import Instance, RunState
from backends.store import Change, Store

log = logging.getLogger(__name__)

Selector = Callable[[Store], list[LogTarget]]

# A reopened stream asks for this much more than the gap: Kubernetes' sinceSeconds is
# whole seconds; what comes twice is skipped.
_RESUME_MARGIN = timedelta(seconds=1)
# An instance created this long before the follower started still "joins" it: creation
# times may be whole seconds, and the store may fill after the follower started.
_JOIN_TOLERANCE = timedelta(seconds=2)
# How long after a container's end its last line may be stamped (see _catch_up): Docker
# stamps it ~15 ms after FinishedAt; a restarted container writes no sooner than ~200 ms
# after (and its first lines may be stamped before its StartedAt: that is no bound).
_CATCH_UP_GRACE = timedelta(milliseconds=100)
# At most this many texts are remembered at the last line's time (for the dedup).
_BOUNDARY_TEXTS = 1000
_TIME = operator.attrgetter("time")


def _up(inst: Instance) -> bool:
    """Running a process that writes to the stream (a restarting container is not)."""
    return inst.state in (RunState.RUNNING, RunState.PAUSED)


def _new_run(current: Instance, opened: Instance) -> bool:
    """`current` runs, and not the run the stream was opened on."""
    return _up(current) and (
        not _up(opened) or current.started_at != opened.started_at or current.restarts != opened.restarts
    )


def _exit_detail(inst: Instance | None) -> str | None:
    if inst is None or inst.exit_code is None:
        return None
    return f"{inst.exit_code}, OOMKilled" if inst.oom_killed else str(inst.exit_code)


def _key(target: LogTarget) -> str:
    return f"{target.instance.key}#{target.container or ''}"


@dataclass(eq=False)
class _Stream:
    """One target followed: its task, and what the reopening and the markers need."""

    target: LogTarget
    options: LogOptions
    wanted: bool = True  # still in the selection
    task: asyncio.Task | None = None
    reader: asyncio.Task | None = None
    leave_timer: asyncio.TimerHandle | None = None
    opened: Instance | None = None  # the instance as the store had it when the stream opened
    first_open: datetime | None = None
    last_time: datetime | None = None  # of the last line shown
    boundary: list[str] = field(default_factory=list)  # texts shown at last_time
    floor: datetime | None = None  # while reopened: lines before it (or at it, seen) are skipped
    skip: list[str] = field(default_factory=list)
    until: datetime | None = None  # while catching up: later lines belong to a later run
    exit_seen: Instance | None = None  # the instance seen down with an exit code, since the open
    notice: str | None = None  # a marker to show before the reopened stream's first line
    delivered: bool = False  # the current stream brought lines
    gone: bool = False  # a marker said the target is gone


class LogFollower:
    """Follows every target `select` picks from the store (re-evaluated on every store
    change) into `buffer`. See the module docstring; `LogSession` for the contract."""

    def __init__(
        self,
        hub: Hub,
        select: Selector,
        options: LogOptions,
        *,
        buffer: LogBuffer | None = None,
        previous_supported: bool = False,
        settle: float = 1.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 10.0,
        window: timedelta = timedelta(milliseconds=150),
    ) -> None:
        self.hub = hub
        self.select = select
        self.options = options
        self.buffer = buffer if buffer is not None else LogBuffer()
        self.previous_supported = previous_supported
        self._settle = settle
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._window = window
        self._interleaver = Interleaver(window)
        self._streams: dict[str, _Stream] = {}
        self._on_lines: Callable[[], None] | None = None
        self._wake = asyncio.Event()  # lines arrived while none were held, a stream ended, close
        self._changed = asyncio.Event()  # replaced after every store change (see _store_change)
        self._unsubscribe: Callable[[], None] | None = None
        self._started = datetime.now(UTC)
        self._running = False
        self._restarting = False
        self._closed = False

    @property
    def following(self) -> bool:
        # A previous container's log is complete: there is nothing to follow.
        return self.options.follow and not self.options.previous

    @property
    def followed(self) -> list[str]:
        """The labels of the targets whose streams are being followed now."""
        return [st.target.label for st in self._streams.values() if st.task is not None and not st.task.done()]

    # ---- LogSession -----------------------------------------------------------------------

    async def run(self, on_lines: Callable[[], None]) -> None:
        if self._closed or self._running:
            return
        self._running = True
        self._on_lines = on_lines
        self._unsubscribe = self.hub.store.subscribe(self._on_change)
        self._started = datetime.now(UTC)
        self._reconcile(initial=True)
        try:
            await self._flush_loop()
        finally:
            self._running = False
            self._stop_watching()
            await self._stop_streams()

    async def restart(self, options: LogOptions) -> None:
        self.options = options
        self._restarting = True
        try:
            await self._stop_streams()
        finally:
            self._restarting = False
        self._interleaver.drain_records()
        self.buffer.clear()
        if self._running and not self._closed:
            self._started = datetime.now(UTC)
            self._reconcile(initial=True)
        self._wake.set()
        self._notify()

    async def close(self) -> None:
        self._closed = True
        self._stop_watching()
        await self._stop_streams()
        self._wake.set()

    # ---- the selection -----------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if not (change.instances or change.instances_removed):
            return
        for st in self._streams.values():
            inst = change.instances.get(st.target.instance.key)
            if inst is not None and not _up(inst) and inst.exit_code is not None:
                st.exit_seen = inst
        self._reconcile()
        self._signal_change()

    def _signal_change(self) -> None:
        # A fresh event for the next change: a set one would let a waiter loop without pause.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _reconcile(self, *, initial: bool = False) -> None:
        """Start the streams of targets new to the selection; let go of those that left."""
        if self._closed:
            return
        try:
            targets = self.select(self.hub.store)
        except Exception:  # a broken selector must not end the view's other streams
            log.exception("log target selection failed")
            return
        wanted: dict[str, LogTarget] = {}
        for target in targets:
            wanted.setdefault(_key(target), target)
        for key, target in wanted.items():
            st = self._streams.get(key)
            if st is None:
                self._start(key, target, joined=not initial and self._is_new(target.instance))
            else:
                st.target = target
                if not st.wanted:
                    st.wanted = True
                    if st.leave_timer is not None:
                        st.leave_timer.cancel()
                        st.leave_timer = None
        loop = asyncio.get_running_loop()
        for key, st in list(self._streams.items()):
            if key in wanted:
                continue
            if st.task is None or st.task.done():
                del self._streams[key]
            elif st.wanted:
                # Its stream may still bring the last lines: it gets a moment to end by itself.
                st.wanted = False
                st.leave_timer = loop.call_later(self._settle, self._cut_reader, st)

    def _is_new(self, inst: Instance) -> bool:
        return inst.created_at is not None and inst.created_at >= self._started - _JOIN_TOLERANCE

    def _start(self, key: str, target: LogTarget, *, joined: bool) -> None:
        # A new replica's log is all new: from its first line.
        options = LogOptions(tail=None, follow=self.options.follow) if joined else self.options
        st = _Stream(target, options)
        self._streams[key] = st
        if joined:
            self._marker(st, f"{target.label} joined")
        st.task = asyncio.create_task(self._follow(st), name=f"ferryman-logs-{target.label}")
        st.task.add_done_callback(lambda _: self._ended(key, st))

    def _ended(self, key: str, st: _Stream) -> None:
        """A target's task is over; one that left the selection is forgotten."""
        if not st.wanted and self._streams.get(key) is st:
            del self._streams[key]
            if st.leave_timer is not None:
                st.leave_timer.cancel()
        self._wake.set()

    def _cut_reader(self, st: _Stream) -> None:
        st.leave_timer = None
        if st.reader is not None and not st.reader.done():
            st.reader.cancel()

    def _instance_of(self, st: _Stream) -> Instance | None:
        return self.hub.store.instances.get(st.target.instance.key)

    # ---- one target ----------------------------------------------------------------------------

    async def _follow(self, st: _Stream) -> None:
        """Task body: open, read until the end, decide what the end means, again."""
        options = st.options
        delays = None
        label = st.target.label
        while not self._closed:
            st.opened = self._instance_of(st) or st.target.instance
            st.first_open = st.first_open or datetime.now(UTC)
            st.exit_seen = None
            st.delivered = False
            ended = await self._read(st, options)
            if ended is not None and ended.final:
                st.gone = True
                self._marker(st, f"{label}: {ended.reason}")
                return
            if not st.wanted:
                self._left(st)
                return
            if not self.following:
                if ended is not None:
                    self._marker(st, f"{label}: {ended.reason}")
                return
            after = await self._after_end(st, ended or LogEnded("stream ended"))
            if after is None:
                return
            options, cut = after
            if not cut or st.delivered:
                delays = None
            else:  # reopening keeps failing: back off
                delays = delays or backoff_delays(self._reconnect_min, self._reconnect_max)
                await asyncio.sleep(next(delays))

    async def _read(self, st: _Stream, options: LogOptions) -> LogEnded | None:
        """Read one stream to its end, in a task of its own that leaving the selection can
        cancel; None when it was cancelled or stopped without saying why."""
        reader = asyncio.create_task(self._pull(st, options))
        st.reader = reader
        try:
            await asyncio.wait([reader])
        finally:
            st.reader = None
            if not reader.done():
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        return None if reader.cancelled() else reader.result()

    async def _pull(self, st: _Stream, options: LogOptions) -> LogEnded | None:
        source = st.target.instance.source
        adapter = self.hub.adapters.get(source)
        if adapter is None:
            return LogEnded(f"no {source} connection")
        try:
            async with contextlib.aclosing(adapter.logs(st.target, options)) as items:
                async for item in items:
                    if isinstance(item, LogEnded):
                        return item
                    self._deliver(st, item)
        except ActionError as exc:  # this adapter has no logs
            return LogEnded(str(exc), final=True)
        except Exception as exc:  # a fault is a marker, never the view's crash
            log.exception("log stream of %s failed", st.target.label)
            return LogEnded(f"stream failed: {exc}")
        return None

    def _deliver(self, st: _Stream, lines: list[LogLine]) -> None:
        """A batch of the stream's lines: what a reopened or catching-up stream already
        showed (or must leave to a later run) is skipped; the rest goes to the buffer."""
        if st.until is not None or st.floor is not None:
            lines = [line for line in lines if self._wanted(st, line)]
            if not lines:
                return
        if st.notice is not None:
            self._marker(st, st.notice)
        st.delivered = True
        # The last line's time and the texts shown at it, as line-by-line would leave them:
        # times only grow (a step back of the clock is not a new last time).
        newest = max(filter(None, map(_TIME, lines)), default=None)
        if newest is not None:
            if st.last_time is None or newest > st.last_time:
                st.last_time = newest
                st.boundary = [line.text for line in lines if line.time == newest][:_BOUNDARY_TEXTS]
            elif newest == st.last_time and len(st.boundary) < _BOUNDARY_TEXTS:
                room = _BOUNDARY_TEXTS - len(st.boundary)
                st.boundary.extend([line.text for line in lines if line.time == newest][:room])
        self._push(lines, st.target.label)

    @staticmethod
    def _wanted(st: _Stream, line: LogLine) -> bool:
        when = line.time
        if st.until is not None and (when is None or when >= st.until):
            return False
        if st.floor is not None and when is not None:
            if when < st.floor:
                return False
            if when == st.floor:
                if line.text in st.skip:
                    st.skip.remove(line.text)
                    return False
            else:
                st.floor = None
        return True

    async def _after_end(self, st: _Stream, ended: LogEnded) -> tuple[LogOptions, bool] | None:
        """What a followed stream's end means (see the module docstring): the options to
        reopen it with and whether it was a cut, or None when it is over."""
        label = st.target.label
        opened = st.opened
        assert opened is not None
        settle_until = time.monotonic() + self._settle
        exit_marked = False
        while not self._closed:
            current = self._instance_of(st)
            if not st.wanted or current is None:
                self._left(st)
                return None
            if _new_run(current, opened):
                if not _up(opened):
                    self._marker(st, f"{label} started")
                elif exit_marked:
                    self._marker(st, f"{label} restarted")
                else:
                    detail = _exit_detail(st.exit_seen)
                    self._marker(st, f"{label} restarted ({f'exit {detail}' if detail else ended.reason})")
                return self._resume(st), False
            if not _up(current):
                if not exit_marked:
                    await self._catch_up(st, current.finished_at)
                    detail = _exit_detail(current) or _exit_detail(st.exit_seen)
                    self._marker(st, f"{label} exited ({detail})" if detail else f"{label}: {ended.reason}")
                    exit_marked = True
                    continue  # the store may have moved on while catching up
                await self._store_change(None)
                continue
            remaining = settle_until - time.monotonic()
            if remaining > 0:
                await self._store_change(remaining)
                continue
            st.notice = f"{label}: stream cut ({ended.reason}); reconnected"
            return self._resume(st), True
        return None

    async def _catch_up(self, st: _Stream, finished: datetime | None) -> None:
        """Read once more what the ended stream may have missed: Docker ends a follow
        when the container stops, before it writes a last line without newline (stamped
        a little after the container's end). Lines of a run that started meanwhile are
        left for the stream reopened after the restart marker."""
        if finished is None:
            return
        resume = self._resume(st)
        st.until = finished + _CATCH_UP_GRACE
        try:
            await self._read(st, LogOptions(tail=None, since=resume.since, follow=False))
        finally:
            st.until = None

    def _resume(self, st: _Stream) -> LogOptions:
        """Options that reopen the stream where it was left."""
        start = st.last_time or st.first_open or datetime.now(UTC)
        st.floor, st.skip = st.last_time, list(st.boundary)
        gap = max(datetime.now(UTC) - start, timedelta(0))
        return LogOptions(tail=None, since=gap + _RESUME_MARGIN, follow=True)

    def _left(self, st: _Stream) -> None:
        if st.gone:
            return
        st.gone = True
        label = st.target.label
        gone = self._instance_of(st) is None
        self._marker(st, f"{label} removed" if gone else f"{label} left the selection")

    async def _store_change(self, timeout: float | None) -> None:
        """Wait for the next store change (or `timeout` seconds, or close)."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    # ---- into the buffer ---------------------------------------------------------------------

    def _marker(self, st: _Stream, text: str) -> None:
        st.notice = None
        label = st.target.label
        self._push([LogLine(source=label, time=datetime.now(UTC), text=f"— {text} —", kind=LogKind.MARKER)], label)

    def _push(self, lines: list[LogLine], source: str) -> None:
        if not len(self._interleaver):
            self._wake.set()
        self._interleaver.extend(lines, datetime.now(UTC), source)

    async def _flush_loop(self) -> None:
        """Move lines from the interleaver to the buffer in batches. A batch is what
        arrived within one window of its oldest line, released one window later: the
        first lines of two streams opened together (their history) land in one batch,
        and so are merged in time order, however the two requests raced."""
        interleaver = self._interleaver
        window = self._window
        while not self._closed:
            self._wake.clear()
            now = datetime.now(UTC)
            due = interleaver.next_due()
            if due is not None and now >= due + window:
                self._extend(interleaver.ready_records(now))
                continue
            if not self.following and not self._restarting and all(
                st.task is None or st.task.done() for st in self._streams.values()
            ):
                self._extend(interleaver.drain_records())
                return
            timeout = None if due is None else (due + window - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _extend(self, batch: list[Record]) -> None:
        if batch:
            self.buffer.extend_records(batch)
            self._notify()

    def _notify(self) -> None:
        if self._on_lines is None:
            return
        try:
            self._on_lines()
        except Exception:  # the view's callback must not end the streams
            log.exception("on_lines callback failed")

    # ---- ending ------------------------------------------------------------------------------

    def _stop_watching(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._signal_change()  # waiters look again, and see the follower closed

    async def _stop_streams(self) -> None:
        streams = list(self._streams.values())
        self._streams.clear()
        for st in streams:
            if st.leave_timer is not None:
                st.leave_timer.cancel()
            if st.task is not None:
                st.task.cancel()
        tasks = [st.task for st in streams if st.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
