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

import dataclasses
import heapq
import itertools
import json
import operator
import re
from collections import deque
from collections.abc import Callable, Iterable
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
        return [line if type(line) is RawLine else RawLine(line) for line in self.split(chunk)]

    def split(self, chunk: bytes) -> list[RawLine | bytes]:
        """`feed`, but a line that lost nothing comes as its bytes (`parse_line` takes
        both): building a RawLine per line is most of the cost of a flood of short lines."""
        if not chunk:
            return []
        parts = chunk.split(b"\n")
        tail = parts.pop()  # the start of the next line ("" when chunk ends with "\n")
        lines: list[RawLine | bytes] = []
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
                    lines.append(part)
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
    a 9-digit timestamp): ~2 µs for a plain line (~500k lines/s), a little more with
    non-ASCII text, ~5 µs with ANSI colours: printable text — the common case — skips
    the regular expressions, and the LogLine is built without the dataclass's __init__
    (see `_new_line`).
    """
    if type(raw) is bytes:
        data, dropped = raw, 0
    elif isinstance(raw, RawLine):
        data, dropped = raw.data, raw.dropped
    else:
        data, dropped = raw, 0
    text = data.decode("utf-8", "replace")
    time = None
    if timestamped:
        # _split_time, with its common case inline (a call per line is measurable).
        space = text.find(" ")
        if space >= 20 and text[10] == "T":
            try:
                time = _fromisoformat(text[:space])  # 3.11: "Z", and 9 fraction digits (cut)
            except ValueError:
                pass
            else:
                text = text[space + 1 :]
                if time.tzinfo is not UTC:  # "Z" and "+00:00" give the UTC singleton
                    time = time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)
        elif space < 0:
            text, time = _split_time(text)
    # isprintable is False for ESC, CR, tab and every other control character: one C
    # loop decides that the line needs no cleaning at all.
    if not text.isprintable():
        text = _clean(text)
    if len(text) > MAX_LINE_CHARS:
        dropped += len(text[MAX_LINE_CHARS:].encode("utf-8", "replace"))
        text = text[:MAX_LINE_CHARS]
    return _new_line(source, time, text, stream, dropped)


_fromisoformat = datetime.fromisoformat
_LINE_FIELDS = ("source", "time", "text", "kind", "stream", "truncated")


def _line_builder() -> Callable[[str, datetime | None, str, LogKind, str, int], LogLine]:
    """`LogLine(source, time, text, kind, stream, truncated)`, at half the cost: a frozen
    dataclass's __init__ sets each field through `object.__setattr__` by name (1.5 µs,
    as much as all the rest of a plain line's parsing); this sets the slots directly,
    which gives the very same object (equal, same repr and hash). Should LogLine ever
    change shape, the plain constructor is used."""
    if tuple(f.name for f in dataclasses.fields(LogLine)) != _LINE_FIELDS or "__slots__" not in vars(LogLine):
        return LogLine
    new = object.__new__
    set_source, set_time, set_text, set_kind, set_stream, set_truncated = (
        vars(LogLine)[name].__set__ for name in _LINE_FIELDS
    )

    def build(source: str, time: datetime | None, text: str, kind: LogKind, stream: str, truncated: int) -> LogLine:
        line = new(LogLine)
        set_source(line, source)
        set_time(line, time)
        set_text(line, text)
        set_kind(line, kind)
        set_stream(line, stream)
        set_truncated(line, truncated)
        return line

    return build


_build_line = _line_builder()
_LINE = LogKind.LINE


def _new_line(source: str, time: datetime | None, text: str, stream: str, truncated: int) -> LogLine:
    return _build_line(source, time, text, _LINE, stream, truncated)


# ---- records: lines as the buffer keeps them -----------------------------------------------

# A line as the interleaver and the buffer hold it: (source, time, text, kind, stream,
# truncated), `kind` being the LogKind's plain str value. A LogLine is an object that
# Python's cycle collector tracks; a tuple of strings, a datetime and an int is untracked
# at its first collection. Held as LogLines, the 100,000 lines of a buffer made every full
# collection walk them, and a flood promoted every line to the old generation, so full
# collections (~80 ms each) came every second or two and stalled the UI; as records they
# cost the collector nothing.
Record = tuple[str, datetime | None, str, str, str, int]
_RECORD = operator.attrgetter("source", "time", "text", "kind._value_", "stream", "truncated")
_R_SOURCE, _R_TEXT, _R_KIND, _R_TRUNCATED = (operator.itemgetter(i) for i in (0, 2, 3, 5))
_KINDS = {kind.value: kind for kind in LogKind}
_MARKER = LogKind.MARKER.value


def records(lines: list[LogLine]) -> list[Record]:
    """`lines` as records (one C-level pass)."""
    try:
        return list(map(_RECORD, lines))
    except AttributeError:  # a kind given as a plain str
        return [(line.source, line.time, line.text, str(line.kind), line.stream, line.truncated) for line in lines]


def as_line(record: Record) -> LogLine:
    source, time, text, kind, stream, truncated = record
    return _build_line(source, time, text, _KINDS[kind], stream, truncated)


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

# What a retained line costs beyond its text: its record, its datetime and the list slot
# (sys.getsizeof says 88 + 48 + 8; rounded up for the allocator).
_LINE_OVERHEAD = 160
# An iterable that is not a list is appended this many lines at a time.
_EXTEND_SLICE = 1024


def _size(batch: list[Record]) -> int:
    """What `batch` costs in the buffer's estimate (C-level passes, no Python step per
    line; `str.__sizeof__` is what `sys.getsizeof` says of a str, at a quarter of its cost)."""
    return sum(map(str.__sizeof__, map(_R_TEXT, batch))) + _LINE_OVERHEAD * len(batch)


_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")


def _text_hits(pattern: re.Pattern[str], texts: list[str]) -> Iterable[object]:
    """For each text, something true when `pattern` finds a match in it (C-level passes).

    A search typed as a plain word (what most searches are) is a substring test: for an
    any-case word, on the lower-cased texts, which is 4x faster than the regex engine's
    case folding (20 ms rather than 80 for 100,000 lines). Exactly the regex's answer:
    without cased letters there is nothing to fold, and lower-casing folds ASCII text as
    the regex does; other text (where Unicode folding differs) goes to the regex."""
    search = pattern.search
    word = pattern.pattern
    if (
        not isinstance(word, str)
        or not word.isascii()
        or not _REGEX_SPECIAL.isdisjoint(word)
        or pattern.flags & ~(re.IGNORECASE | re.UNICODE)
    ):
        return map(search, texts)
    if not pattern.flags & re.IGNORECASE or word.lower() == word.upper():
        return map(operator.contains, texts, itertools.repeat(word))
    if not all(map(str.isascii, texts)):
        return map(search, texts)
    return map(operator.contains, map(str.lower, texts), itertools.repeat(word.lower()))


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
        # Records (see `Record`), in a list with a moving head rather than a deque: the
        # view reads by index, and deque indexing walks blocks. Evicted slots are set to
        # None at once (their memory is freed) and the list is compacted when half of it
        # is holes.
        self._lines: list[Record | None] = []
        self._head = 0  # list position of the oldest retained line
        self._first = 0  # its absolute index
        self._bytes = 0
        self._dropped = 0
        self._version = 0

    # -- writing --

    def append(self, line: LogLine) -> None:
        self._add(records([line]))
        self._version += 1

    def extend(self, lines: Iterable[LogLine]) -> None:
        """Append `lines` in order. A list is taken whole (a flood's batch costs a few
        C-level passes, not a Python step per line); any other iterable is taken in slices
        of `_EXTEND_SLICE`, so that memory stays bounded even while one call appends far
        more than the buffer holds."""
        if isinstance(lines, list):
            self.extend_records(records(lines))
            return
        added = False
        iterator = iter(lines)
        while batch := list(itertools.islice(iterator, _EXTEND_SLICE)):
            self._add(records(batch))
            added = True
        if added:
            self._version += 1

    def extend_records(self, batch: list[Record]) -> None:
        """`extend`, for lines already made records (the follower's, from its interleaver)."""
        if batch:
            self._add(batch)
            self._version += 1

    def clear(self) -> None:
        """Forget every line (a since preset was changed); indexes keep counting, so a
        position held from before points before `first`, never at a new line."""
        self._first = self.end
        self._lines = []
        self._head = 0
        self._bytes = 0
        self._dropped = 0
        self._version += 1

    def _add(self, batch: list[Record]) -> None:
        skipped = len(batch) - self.max_lines
        if skipped > 0:
            # More than the buffer holds arrives at once: every retained line goes, and the
            # batch's oldest lines are never stored (they are counted as dropped all the same).
            gone = len(self) + skipped
            self._first += gone
            self._dropped += gone
            self._lines, self._head, self._bytes = [], 0, 0
            batch = batch[skipped:]
        lines = self._lines
        lines.extend(batch)
        self._bytes += _size(batch)
        # Evict as lines come, so that memory stays bounded: at most one batch more than
        # the buffer holds is ever referenced.
        if len(lines) - self._head > self.max_lines or self._bytes > self.max_bytes:
            self._evict(len(lines) - self._head - self.max_lines)

    def _evict(self, count: int) -> None:
        """Evict the `count` oldest lines (at least; more while over `max_bytes`), always
        keeping the newest line."""
        lines = self._lines
        head = self._head
        retained = len(lines) - head
        count = min(count, retained - 1)
        if count > 0:
            stop = head + count
            self._bytes -= _size(lines[head:stop])
            lines[head:stop] = itertools.repeat(None, count)  # freed now, compacted below
            head = stop
            retained -= count
        while retained > 1 and self._bytes > self.max_bytes:
            old = lines[head]
            assert old is not None
            self._bytes -= old[2].__sizeof__() + _LINE_OVERHEAD
            lines[head] = None
            head += 1
            retained -= 1
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
        record = self._lines[self._head + index - self._first]
        assert record is not None
        return as_line(record)

    def lines(self, start: int, stop: int) -> list[LogLine]:
        """The retained lines with absolute indexes in [start, stop) (clipped)."""
        return list(map(as_line, self._records(start, stop)))

    def _records(self, start: int, stop: int) -> list[Record]:
        start = max(start, self._first)
        stop = min(stop, self.end)
        if start >= stop:
            return []
        offset = self._head - self._first
        return self._lines[start + offset : stop + offset]  # type: ignore[return-value]

    def scan(self, start: int, stop: int) -> tuple[set[str], int, bool]:
        """What a view learns from the lines in [start, stop) (clipped), in C-level passes:
        the sources of their program lines (not markers), the length of the longest text,
        and whether any was cut."""
        batch = self._records(start, stop)
        if not batch:
            return set(), 0, False
        if _MARKER in set(map(_R_KIND, batch)):
            sources = {record[0] for record in batch if record[3] != _MARKER}
        else:
            sources = set(map(_R_SOURCE, batch))
        return sources, max(map(len, map(_R_TEXT, batch))), any(map(_R_TRUNCATED, batch))

    def search(self, pattern: re.Pattern[str], start: int | None = None) -> list[int]:
        """Absolute indexes, ascending, of retained lines from `start` on whose text or
        source matches `pattern` (a view searching new lines passes its last `end`)."""
        begin = self._first if start is None else max(start, self._first)
        end = self.end
        batch = self._records(begin, end)
        if not batch:
            return []
        search = pattern.search
        # Few sources, many lines: each source is matched once. When none matches (the
        # common case), the texts are searched in one C-level pass: no Python step per line.
        sources = {source: search(source) is not None for source in set(map(_R_SOURCE, batch))}
        if not any(sources.values()):
            texts = list(map(_R_TEXT, batch))
            return list(itertools.compress(range(begin, end), _text_hits(pattern, texts)))
        return [
            index
            for index, record in enumerate(batch, begin)
            if sources[record[0]] or search(record[2]) is not None
        ]

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
        # (arrival, the lines' source or None when they have several, their records): a
        # flood arrives in batches, and a batch is held and released as one.
        self._pending: deque[tuple[datetime, str | None, list[Record]]] = deque()
        self._count = 0

    def push(self, line: LogLine, now: datetime) -> None:
        self._pending.append((now, line.source, records([line])))
        self._count += 1

    def extend(self, lines: list[LogLine], now: datetime, source: str | None = None) -> None:
        """Hold `lines` (in arrival order), arrived at `now`; `source` when they all come
        from that one source (a stream's batch), which spares the merge a look at each."""
        if lines:
            self._pending.append((now, source, records(lines)))
            self._count += len(lines)

    def ready(self, now: datetime) -> list[LogLine]:
        """The lines that arrived at least `window` before `now`, in time order."""
        return list(map(as_line, self.ready_records(now)))

    def drain(self) -> list[LogLine]:
        """Every held line, in time order (the stream ends, or the view wants all)."""
        return list(map(as_line, self.drain_records()))

    def ready_records(self, now: datetime) -> list[Record]:
        """`ready`, as records (what `LogBuffer.extend_records` takes)."""
        cutoff = now - self.window
        pending = self._pending
        entries = []
        while pending and pending[0][0] <= cutoff:
            entries.append(pending.popleft())
        return self._release(entries)

    def drain_records(self) -> list[Record]:
        """`drain`, as records."""
        entries = list(self._pending)
        self._pending.clear()
        return self._release(entries)

    def _release(self, entries: list[tuple[datetime, str | None, list[Record]]]) -> list[Record]:
        if not entries:
            return []
        batch = entries[0][2] if len(entries) == 1 else [record for entry in entries for record in entry[2]]
        self._count -= len(batch)
        sources = {entry[1] for entry in entries}
        if len(sources) == 1 and None not in sources:
            # One source: its lines are never reordered, so its arrival order is the order
            # (what _merge would give, without a step per line).
            return batch
        return _merge(batch)

    def next_due(self) -> datetime | None:
        """When the oldest held line will be ready (None: nothing held): how long a
        follower may sleep."""
        return self._pending[0][0] + self.window if self._pending else None

    def __len__(self) -> int:
        return self._count


def _merge(batch: list[Record]) -> list[Record]:
    """`batch` (in arrival order) in time order: untimed lines and markers split it into
    runs that keep their place; each run is merged by time, source by source."""
    result: list[Record] = []
    run: list[Record] = []
    for record in batch:
        if record[1] is None or record[3] == _MARKER:
            result.extend(_merge_run(run))
            result.append(record)
            run = []
        else:
            run.append(record)
    result.extend(_merge_run(run))
    return result


def _merge_run(run: list[Record]) -> list[Record]:
    if len(run) < 2:
        return run
    times = [_utc(record[1]) for record in run]  # type: ignore[arg-type]
    if all(a <= b for a, b in itertools.pairwise(times)):
        return run  # already in order: the single-source flood
    # A k-way merge of the sources' sequences keeps each source's own order.
    queues: dict[str, deque[int]] = {}
    for position, record in enumerate(run):
        queues.setdefault(record[0], deque()).append(position)
    heap = [(times[q[0]], q[0], source) for source, q in queues.items()]
    heapq.heapify(heap)
    merged: list[Record] = []
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


def clean_text(text: str) -> str:
    """Any text (a healthcheck's output, a message) cleaned as a log line's text is: terminal
    escape sequences and control characters — newlines too — removed, carriage returns
    resolved to what a terminal would show, tabs expanded. Lone surrogates, which no valid
    UTF-8 decodes to and which cannot be written to a terminal, become "?"."""
    if text.isprintable():
        return text
    text = _clean(text)
    if not text.isprintable():  # what _clean keeps that is not printable: surrogates, others
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
