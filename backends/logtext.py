"""Log text: from raw engine bytes to clean lines, and the bounded buffer they live in.

The pure core of the log pipeline (backends/logs.py has the model):

    bytes chunks ──LineAssembler──▶ RawLine ──parse_line──▶ LogLine
    LogLines of several sources ──Interleaver──▶ time order ──▶ LogBuffer ◀── the view

Everything here runs for every line of a flood (100k+ lines/s), so the common case —
a plain printable line — takes the cheapest path, and nothing grows without bound: a
line without newline keeps at most `LineAssembler.limit` bytes, a shown line at most
`MAX_LINE_CHARS` characters, the buffer at most `max_lines` lines / `max_bytes` bytes.
Whatever is cut is counted (`RawLine.dropped`, `LogLine.truncated`, `LogBuffer.dropped`)
so the view can say so: never a silent loss.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backends.logs import LogKind, LogLine

# Longer lines are cut for display (a terminal row cannot show more, and one 1 MB line
# must not cost a repaint); `LogLine.truncated` says how many bytes were cut.
MAX_LINE_CHARS = 10_000


# ---- bytes → lines ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawLine:
    """One line as the engine sent it, without its newline. `dropped` counts the bytes
    the assembler did not keep because the line was longer than its limit."""

    data: bytes
    dropped: int = 0


class LineAssembler:
    """Turns byte chunks split anywhere (Docker frames, HTTP chunks, even inside a UTF-8
    sequence) into whole lines. One assembler per stream: stdout and stderr of a Docker
    container are two streams.

    A pending line without newline keeps at most `limit` bytes and counts the rest, so
    a program writing 100 MB without a newline costs `limit` bytes, not 100 MB. The
    default keeps 4 bytes per shown character: enough for `MAX_LINE_CHARS` characters of
    any script."""

    __slots__ = ("_dropped", "_ends_cr", "_pending", "limit")

    def __init__(self, limit: int = 4 * MAX_LINE_CHARS) -> None:
        if limit < 4:
            raise ValueError("limit must hold at least one UTF-8 character")
        self.limit = limit
        self._pending = bytearray()
        self._dropped = 0
        # Whether the last byte of the pending line (kept or dropped) is "\r": a CRLF
        # split across the cut must not count its "\r" as a dropped byte.
        self._ends_cr = False

    def feed(self, chunk: bytes) -> list[RawLine]:
        """The lines `chunk` completes, in order."""
        if not chunk:
            return []
        parts = chunk.split(b"\n")
        tail = parts.pop()  # the start of the next line ("" when chunk ends with "\n")
        lines: list[RawLine] = []
        if parts:
            if self._pending or self._dropped:
                self._add(parts[0])
                lines.append(self._take())
                del parts[0]
            limit = self.limit
            for part in parts:
                # The common case: a whole line inside one chunk.
                if part.endswith(b"\r"):
                    part = part[:-1]
                if len(part) <= limit:
                    lines.append(RawLine(part))
                else:
                    kept = _whole_utf8(part, limit)
                    lines.append(RawLine(part[:kept], len(part) - kept))
        if tail:
            self._add(tail)
        return lines

    def flush(self) -> list[RawLine]:
        """The pending line at the end of the stream (a last line without newline)."""
        if not self._pending and not self._dropped:
            return []
        return [self._take()]

    @property
    def pending(self) -> int:
        """Bytes of the incomplete line (kept and dropped)."""
        return len(self._pending) + self._dropped

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self._ends_cr = data.endswith(b"\r")
        room = self.limit - len(self._pending)
        if self._dropped or len(data) > room:
            # Once bytes are dropped, everything after them is dropped too: the kept
            # part is always the line's beginning, never pieces of it.
            kept = 0 if self._dropped else room
            self._pending += data[:kept]
            self._dropped += len(data) - kept
        else:
            self._pending += data

    def _take(self) -> RawLine:
        data, dropped = bytes(self._pending), self._dropped
        if dropped:
            if self._ends_cr:
                dropped -= 1  # the "\r" of a CRLF is no lost text
            kept = _whole_utf8(data, len(data))
            data, dropped = data[:kept], dropped + len(data) - kept
        elif data.endswith(b"\r"):
            data = data[:-1]
        self._pending.clear()
        self._dropped = 0
        self._ends_cr = False
        return RawLine(data, dropped)


# A lead byte's top 5 bits → the length of its sequence (110xxxxx: 2, 1110xxxx: 3,
# 11110xxx: 4).
_UTF8_LENGTH = {
    **dict.fromkeys(range(0x18, 0x1C), 2),
    **dict.fromkeys(range(0x1C, 0x1E), 3),
    0x1E: 4,
}


def _whole_utf8(data: bytes, cut: int) -> int:
    """`cut`, moved back so that `data[:cut]` does not end in half a UTF-8 character
    (a cut line would otherwise end in a replacement character). At most 3 bytes back:
    a sequence is at most 4 bytes long; invalid bytes are left as they are."""
    for back in range(1, min(4, cut) + 1):
        byte = data[cut - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: ASCII or a lead byte
            length = _UTF8_LENGTH.get(byte >> 3, 1)
            return cut - back if length > back else cut
    return cut


# ---- a raw line → a LogLine -------------------------------------------------------------

# Terminal control sequences, removed (never interpreted: a log line must not move the
# cursor of the view). CSI ("ESC [" or 8-bit CSI) up to its final byte, or to the end of
# the line when cut; OSC/DCS/SOS/PM/APC strings up to BEL or ST — an ESC inside ends
# the string and starts a sequence of its own, as in xterm; then any other
# ESC-intermediates-final sequence (charset selection, save cursor, ...).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*(?:[@-~]|$)"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|(?=\x1b)|$)"
    r"|\x1b[ -/]*[0-~]"
)
_INTRODUCERS = frozenset("\x1b\x9b\x90\x98\x9d\x9e\x9f")
# What remains after escapes and carriage returns: C0 controls but tab, DEL, C1 controls.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def parse_line(
    raw: RawLine | bytes,
    source: str,
    *,
    stream: str = "stdout",
    timestamped: bool = True,
) -> LogLine:
    """A line ready to show, from what the engine sent.

    With `timestamped`, the RFC 3339 timestamp that `docker logs --timestamps` and the
    Kubernetes log API (`timestamps=true`) put first is split off into `time` (UTC;
    nanoseconds are cut to microseconds, which is all `datetime` holds); a prefix that
    does not parse leaves `time` None and the text whole. The text is decoded as UTF-8
    with replacement characters, carriage returns resolved to the final state a terminal
    shows (the last non-empty segment: progress bars), terminal escape sequences and
    other control characters removed, tabs expanded to 8 columns, and the result cut to
    `MAX_LINE_CHARS`; `truncated` counts the bytes not shown (the cut text's UTF-8 size,
    plus what the assembler dropped).

    Speed (Python 3.11, one core of the dev container, `timeit` of a 90-byte line with
    a 9-digit timestamp): 3.4 µs for a plain line (~300k lines/s; building the frozen
    `LogLine` is 1.5 µs of it), 3.6 µs with non-ASCII text, 7 µs with ANSI colours
    (~140k lines/s): printable text — the common case — skips the regular expressions.
    """
    if isinstance(raw, RawLine):
        data, dropped = raw.data, raw.dropped
    else:
        data, dropped = raw, 0
    text = data.decode("utf-8", "replace")
    time = None
    if timestamped:
        text, time = _split_time(text)
    # isprintable is False for ESC, CR, tab and every other control character: one C
    # loop decides that the line needs no cleaning at all.
    if not text.isprintable():
        text = _clean(text)
    if len(text) > MAX_LINE_CHARS:
        dropped += len(text[MAX_LINE_CHARS:].encode("utf-8", "replace"))
        text = text[:MAX_LINE_CHARS]
    # Positional: a frozen dataclass's keyword construction is measurably slower, and
    # constructing the LogLine is already half the cost of a plain line.
    return LogLine(source, time, text, LogKind.LINE, stream, dropped)


def _split_time(text: str) -> tuple[str, datetime | None]:
    space = text.find(" ")
    stamp = text if space < 0 else text[:space]  # no space: an empty line, stamp only
    # Cheap shape check first: fromisoformat also accepts dates and other ISO forms.
    if len(stamp) < 20 or stamp[10] != "T":
        return text, None
    try:
        time = datetime.fromisoformat(stamp)  # 3.11: "Z", and 9 fraction digits (cut)
    except ValueError:
        return text, None
    tz = time.tzinfo
    if tz is not UTC:  # "Z" and "+00:00" give the UTC singleton: the common case
        time = time.replace(tzinfo=UTC) if tz is None else time.astimezone(UTC)
    return ("" if space < 0 else text[space + 1 :]), time


def _clean(text: str) -> str:
    if not _INTRODUCERS.isdisjoint(text):
        text = _ESCAPES.sub("", text)
    if "\r" in text:
        # A terminal shows what was written after the last carriage return that has
        # text after it: a progress bar's final state.
        for segment in reversed(text.split("\r")):
            if segment:
                text = segment
                break
        else:
            text = ""
    text = _CONTROLS.sub("", text)
    if "\t" in text:
        text = text.expandtabs(8)
    return text


# ---- JSON lines -------------------------------------------------------------------------

_LEVEL_KEYS = ("level", "lvl", "severity", "levelname")
_MESSAGE_KEYS = ("msg", "message", "event")
_TIME_KEYS = frozenset(("time", "ts", "timestamp", "@timestamp"))
# pino and bunyan write numeric levels.
_NUMERIC_LEVELS = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}


def readable_json(text: str) -> str | None:
    """A structured-logging line made readable: "LEVEL message key=value ...". The
    level comes first (upper-cased), then the message, then the other fields in their
    order; the time field is left out (the line has its own time). Strings are shown
    unquoted unless they are empty or contain whitespace or quotes; nested values as
    compact JSON. None when `text` is not a JSON object: the view then shows it raw."""
    record = _json_object(text)
    if record is None:
        return None
    parts: list[str] = []
    level_key = _first_key(record, _LEVEL_KEYS)
    if level_key is not None:
        parts.append(_level_name(record[level_key]))
    message_key = _first_key(record, _MESSAGE_KEYS)
    if message_key is not None:
        message = record[message_key]
        if isinstance(message, str):
            # A message is shown bare, but must stay on one line.
            parts.append(message if message.isprintable() else _compact(message)[1:-1])
        else:
            parts.append(_compact(message))
    for key, value in record.items():
        if key in (level_key, message_key) or key in _TIME_KEYS:
            continue
        parts.append(f"{key}={_field(value)}")
    return " ".join(parts) if parts else "{}"


def json_level(text: str) -> str | None:
    """The level of a JSON log line, upper-cased as `readable_json` shows it (for
    colouring); None when the line is not a JSON object or has no level."""
    record = _json_object(text)
    if record is None:
        return None
    key = _first_key(record, _LEVEL_KEYS)
    return None if key is None else _level_name(record[key])


def _json_object(text: str) -> dict[str, object] | None:
    text = text.strip()
    # Most lines are not JSON: decide without the parser.
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # invalid, or "[[[[..." deeper than the stack
        return None
    return value if isinstance(value, dict) else None


def _first_key(record: dict[str, object], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in record:
            return key
    return None


def _level_name(value: object) -> str:
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, int) and not isinstance(value, bool) and value in _NUMERIC_LEVELS:
        return _NUMERIC_LEVELS[value]
    return _compact(value)


def _field(value: object) -> str:
    if isinstance(value, str):
        plain = bool(value) and value.isprintable() and " " not in value and '"' not in value
        return value if plain else _compact(value)
    return _compact(value)


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---- the buffer -------------------------------------------------------------------------

# What a retained line costs beyond its text: the LogLine object, its datetime and the
# list slot (sys.getsizeof says 80 + 48 + 8; rounded up for the allocator).
_LINE_OVERHEAD = 160


class LogBuffer:
    """The lines a log view shows: at most `max_lines` lines and about `max_bytes`
    bytes; the oldest go first.

    Lines have absolute indexes that only grow (the first line ever appended is 0), so a
    view can hold a position or a search hit while old lines are evicted: `first` is
    the oldest retained index, `end` one past the newest, `dropped` how many were
    evicted (for the "N lines dropped" notice). `version` changes on every change, so a
    view can tell cheaply whether to repaint."""

    def __init__(self, max_lines: int = 100_000, max_bytes: int = 64 * 2**20) -> None:
        if max_lines < 1 or max_bytes < 1:
            raise ValueError("a log buffer holds at least one line")
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        # A list with a moving head rather than a deque: the view reads by index, and
        # deque indexing walks blocks. Evicted slots are set to None at once (their
        # memory is freed) and the list is compacted when half of it is holes.
        self._lines: list[LogLine | None] = []
        self._head = 0  # list position of the oldest retained line
        self._first = 0  # its absolute index
        self._bytes = 0
        self._dropped = 0
        self._version = 0

    # -- writing --

    def append(self, line: LogLine) -> None:
        self._add(line)
        self._version += 1

    def extend(self, lines: Iterable[LogLine]) -> None:
        version = self._version
        for line in lines:
            self._add(line)
            version = self._version + 1
        self._version = version

    def clear(self) -> None:
        """Forget every line (a since preset was changed); indexes keep counting, so a
        position held from before points before `first`, never at a new line."""
        self._first = self.end
        self._lines = []
        self._head = 0
        self._bytes = 0
        self._dropped = 0
        self._version += 1

    def _add(self, line: LogLine) -> None:
        self._lines.append(line)
        self._bytes += sys.getsizeof(line.text) + _LINE_OVERHEAD
        # Evict as lines come, so that memory stays bounded even while one extend()
        # appends far more than the buffer holds.
        if len(self._lines) - self._head > self.max_lines or self._bytes > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        lines = self._lines
        head = self._head
        count = len(lines) - head
        while count > 1 and (count > self.max_lines or self._bytes > self.max_bytes):
            old = lines[head]
            assert old is not None
            self._bytes -= sys.getsizeof(old.text) + _LINE_OVERHEAD
            lines[head] = None
            head += 1
            count -= 1
        evicted = head - self._head
        if evicted:
            self._first += evicted
            self._dropped += evicted
            if head > 1024 and head * 2 > len(lines):
                del lines[:head]
                head = 0
            self._head = head

    # -- reading --

    @property
    def first(self) -> int:
        return self._first

    @property
    def end(self) -> int:
        return self._first + len(self._lines) - self._head

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def version(self) -> int:
        return self._version

    @property
    def bytes(self) -> int:
        """The approximate memory the retained lines take (what `max_bytes` bounds)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._lines) - self._head

    def line(self, index: int) -> LogLine:
        """The line at absolute `index`; IndexError when it was evicted or not yet
        appended."""
        if not self._first <= index < self.end:
            raise IndexError(f"line {index} not in buffer [{self._first}, {self.end})")
        line = self._lines[self._head + index - self._first]
        assert line is not None
        return line

    def lines(self, start: int, stop: int) -> list[LogLine]:
        """The retained lines with absolute indexes in [start, stop) (clipped)."""
        start = max(start, self._first)
        stop = min(stop, self.end)
        if start >= stop:
            return []
        offset = self._head - self._first
        return self._lines[start + offset : stop + offset]  # type: ignore[return-value]

    def search(self, pattern: re.Pattern[str], start: int | None = None) -> list[int]:
        """Absolute indexes, ascending, of retained lines from `start` on whose text or
        source matches `pattern` (a view searching new lines passes its last `end`)."""
        begin = self._first if start is None else max(start, self._first)
        offset = self._head - self._first
        search = pattern.search
        sources: dict[str, bool] = {}  # few sources, many lines: match each once
        hits: list[int] = []
        for index in range(begin, self.end):
            line = self._lines[index + offset]
            assert line is not None
            source_hit = sources.get(line.source)
            if source_hit is None:
                source_hit = sources[line.source] = search(line.source) is not None
            if source_hit or search(line.text) is not None:
                hits.append(index)
        return hits

    def grep(
        self, pattern: re.Pattern[str], context: int = 0, *, start: int | None = None
    ) -> list[int]:
        """The filter mode's lines: matching lines plus `context` lines before and after
        each, ascending and unique, clipped to the retained lines. With `start`, only
        matches from `start` on count (their context may reach before it)."""
        result: list[int] = []
        end = self.end
        last = self._first - 1  # highest index already in result
        for hit in self.search(pattern, start):
            low = max(hit - context, last + 1)
            high = min(hit + context, end - 1)
            result.extend(range(low, high + 1))
            last = max(last, high)
        return result


# ---- several sources → time order -------------------------------------------------------


class Interleaver:
    """Merges the lines of several sources into time order.

    Each source's lines arrive in order, but sources arrive at their own pace (one
    stream's chunk lands while another's is in flight), so a line is held for `window`
    after its arrival and released sorted by (time, arrival) with the others released
    with it. Lines are never reordered within their source (even if its clock steps
    back), and a line without a time or a marker stays where it arrived relative to the
    lines released with it: everything that arrived before it comes before it. A clock
    skew larger than the window shows as arrival order: late lines are never put before
    lines already released."""

    def __init__(self, window: timedelta = timedelta(milliseconds=150)) -> None:
        self.window = window
        self._pending: deque[tuple[datetime, LogLine]] = deque()

    def push(self, line: LogLine, now: datetime) -> None:
        self._pending.append((now, line))

    def ready(self, now: datetime) -> list[LogLine]:
        """The lines that arrived at least `window` before `now`, in time order."""
        cutoff = now - self.window
        pending = self._pending
        batch: list[LogLine] = []
        while pending and pending[0][0] <= cutoff:
            batch.append(pending.popleft()[1])
        return _merge(batch)

    def drain(self) -> list[LogLine]:
        """Every held line, in time order (the stream ends, or the view wants all)."""
        batch = [line for _, line in self._pending]
        self._pending.clear()
        return _merge(batch)

    def next_due(self) -> datetime | None:
        """When the oldest held line will be ready (None: nothing held): how long a
        follower may sleep."""
        return self._pending[0][0] + self.window if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)


def _merge(batch: list[LogLine]) -> list[LogLine]:
    """`batch` (in arrival order) in time order: untimed lines and markers split it into
    runs that keep their place; each run is merged by time, source by source."""
    result: list[LogLine] = []
    run: list[LogLine] = []
    for line in batch:
        if line.time is None or line.kind is LogKind.MARKER:
            result.extend(_merge_run(run))
            result.append(line)
            run = []
        else:
            run.append(line)
    result.extend(_merge_run(run))
    return result


def _merge_run(run: list[LogLine]) -> list[LogLine]:
    if len(run) < 2:
        return run
    times = [_utc(line.time) for line in run]  # type: ignore[arg-type]
    if all(a <= b for a, b in itertools.pairwise(times)):
        return run  # already in order: the single-source flood
    # A k-way merge of the sources' sequences keeps each source's own order.
    queues: dict[str, deque[int]] = {}
    for position, line in enumerate(run):
        queues.setdefault(line.source, deque()).append(position)
    heap = [(times[q[0]], q[0], source) for source, q in queues.items()]
    heapq.heapify(heap)
    merged: list[LogLine] = []
    while heap:
        _, position, source = heapq.heappop(heap)
        merged.append(run[position])
        queue = queues[source]
        queue.popleft()
        if queue:
            heapq.heappush(heap, (times[queue[0]], queue[0], source))
    return merged


def _utc(time: datetime) -> datetime:
    # Sources built by hand may give naive times; comparing them with aware ones raises.
    return time if time.tzinfo is not None else time.replace(tzinfo=UTC)
