"""The pure core of the log pipeline: bytes → lines, cleaning, JSON lines, the bounded
buffer and the interleaving of several sources. No engine: every fault is made here."""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone

import pytest

from backends.logs import LogKind, LogLine
from backends.logtext import (
    MAX_LINE_CHARS,
    Interleaver,
    LineAssembler,
    LogBuffer,
    RawLine,
    json_level,
    parse_line,
    readable_json,
)

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def assemble(chunks: list[bytes], limit: int | None = None) -> list[RawLine]:
    assembler = LineAssembler() if limit is None else LineAssembler(limit)
    lines: list[RawLine] = []
    for chunk in chunks:
        lines += assembler.feed(chunk)
    return lines + assembler.flush()


def text(raw: bytes | str, **kwargs: object) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return parse_line(data, "web", timestamped=False, **kwargs).text  # type: ignore[arg-type]


# ---- LineAssembler ----------------------------------------------------------------------

SAMPLE = "première ligne\r\nzweite Zeile — ok\n\n日本語のログ 🚀\nlast without newline".encode()
SAMPLE_LINES = ["première ligne", "zweite Zeile — ok", "", "日本語のログ 🚀", "last without newline"]


@pytest.mark.parametrize("offset", range(len(SAMPLE) + 1))
def test_a_split_at_any_byte_gives_the_same_lines(offset: int) -> None:
    lines = assemble([SAMPLE[:offset], SAMPLE[offset:]])
    assert [line.data.decode() for line in lines] == SAMPLE_LINES
    assert all(line.dropped == 0 for line in lines)


def test_byte_by_byte_and_three_way_splits() -> None:
    assert [raw.data.decode() for raw in assemble([bytes([b]) for b in SAMPLE])] == SAMPLE_LINES
    for i in range(0, len(SAMPLE), 7):
        for j in range(i, len(SAMPLE), 11):
            chunks = [SAMPLE[:i], SAMPLE[i:j], SAMPLE[j:]]
            assert [raw.data.decode() for raw in assemble(chunks)] == SAMPLE_LINES


def test_crlf_split_between_cr_and_lf_and_lone_cr_kept() -> None:
    assert assemble([b"a\r", b"\nb\r\r\n"]) == [RawLine(b"a"), RawLine(b"b\r")]
    assert assemble([b"50%\r100%\n"]) == [RawLine(b"50%\r100%")]


def test_nothing_pending_flushes_nothing() -> None:
    assembler = LineAssembler()
    assert assembler.feed(b"") == []
    assert assembler.feed(b"one\n") == [RawLine(b"one")]
    assert assembler.flush() == []
    assert assembler.pending == 0


def test_a_1mb_line_without_newline_stays_bounded_and_reports_its_drop() -> None:
    assembler = LineAssembler()
    chunk = b"x" * 65536
    for _ in range(16):  # 1 MiB, never a newline
        assert assembler.feed(chunk) == []
        assert len(assembler._pending) <= assembler.limit
    assert assembler.pending == 2**20
    [line] = assembler.feed(b"tail\r\nnext\n")[:1]
    assert len(line.data) == assembler.limit
    assert line.dropped == 2**20 + 4 - assembler.limit  # "tail" counted, "\r" not
    assert assembler.flush() == []

    shown = parse_line(line, "web", timestamped=False)
    assert len(shown.text) == MAX_LINE_CHARS
    assert shown.truncated == 2**20 + 4 - MAX_LINE_CHARS


def test_a_100mb_line_costs_limit_bytes() -> None:
    assembler = LineAssembler(limit=1000)
    chunk = b"y" * 2**20
    tracemalloc.start()
    try:
        for _ in range(100):
            assembler.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # the chunk is the caller's; we keep 1000 bytes
    [line] = assembler.flush()
    assert (len(line.data), line.dropped) == (1000, 100 * 2**20 - 1000)


def test_long_line_inside_one_chunk_is_cut_too() -> None:
    [line, short] = assemble([b"z" * 50 + b"\nok\n"], limit=10)
    assert (line.data, line.dropped) == (b"z" * 10, 40)
    assert short == RawLine(b"ok")


@pytest.mark.parametrize("limit", range(4, 12))
def test_a_cut_never_ends_in_half_a_character(limit: int) -> None:
    line = "é€🚀" * 5
    data = line.encode()
    for raw in (assemble([data + b"\n"], limit)[0], assemble([data[:3], data[3:]], limit)[0]):
        kept = raw.data.decode()  # strict: raises on half a character
        assert line.startswith(kept)
        assert len(raw.data) + raw.dropped == len(data)


# ---- parse_line: timestamps --------------------------------------------------------------


def test_docker_timestamp_with_nanoseconds() -> None:
    line = parse_line(b"2024-05-01T10:00:00.123456789Z hello world", "web-1", stream="stderr")
    assert line == LogLine("web-1", T0.replace(microsecond=123456), "hello world", stream="stderr")
    assert line.time is not None and line.time.tzinfo is UTC


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("2024-05-01T10:00:00Z", T0),  # Kubernetes RFC3339Nano trims zeros, even the dot
        ("2024-05-01T10:00:00.5Z", T0.replace(microsecond=500000)),
        ("2024-05-01T10:00:00.000000001Z", T0),
        ("2024-05-01T12:00:00.25+02:00", T0.replace(microsecond=250000)),
    ],
)
def test_rfc3339_variants(prefix: str, expected: datetime) -> None:
    line = parse_line(f"{prefix} msg".encode(), "pod")
    assert (line.time, line.text) == (expected, "msg")
    assert line.time is not None and line.time.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    ["no timestamp here", "2024-05-01 10:00:00 space-separated", "2024-13-01T10:00:00Z bad month", ""],
)
def test_an_unparsable_prefix_keeps_the_text_whole(raw: str) -> None:
    line = parse_line(raw.encode(), "web")
    assert (line.time, line.text) == (None, raw)


def test_timestamp_of_an_empty_line_and_untimestamped_streams() -> None:
    assert parse_line(b"2024-05-01T10:00:00Z ", "w").text == ""
    assert parse_line(b"2024-05-01T10:00:00Z", "w") == LogLine("w", T0, "")
    untimed = parse_line(b"2024-05-01T10:00:00Z kept", "w", timestamped=False)
    assert (untimed.time, untimed.text) == (None, "2024-05-01T10:00:00Z kept")


# ---- parse_line: cleaning ----------------------------------------------------------------


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert text(b"ok \xff\xfe bad \xc3 cut") == "ok \ufffd\ufffd bad \ufffd cut"
    junk = bytes(range(256)) * 4  # binary junk: every control, every invalid byte
    cleaned = text(junk)
    assert cleaned and cleaned.isprintable()


def test_ansi_colours_and_cursor_movement_are_removed() -> None:
    assert text("\x1b[1;31mERROR\x1b[0m disk \x1b[38;5;208mfull\x1b[m") == "ERROR disk full"
    assert text("\x1b[38;2;255;0;0mtruecolor\x1b[0m") == "truecolor"
    assert text("\x1b[2J\x1b[H\x1b[10;20Hmoved\x1b[K\x1b[?25l") == "moved"
    assert text("\x1b7saved\x1b8 \x1b(Bcharset\x1b=") == "saved charset"
    assert text("\u009b31mc1 csi") == "c1 csi"
    assert text("cut in the middle \x1b[38;5") == "cut in the middle "


def test_osc_titles_and_hyperlinks_are_removed() -> None:
    assert text("\x1b]0;my title\x07after bell") == "after bell"
    assert text("\x1b]2;title\x1b\\after st") == "after st"
    assert text("see \x1b]8;;https://x.io/a\x1b\\the docs\x1b]8;;\x1b\\ now") == "see the docs now"
    assert text("\x1b]0;unterminated title") == ""
    assert text("\x1bPdcs payload\x1b\\visible") == "visible"


def test_other_control_characters_are_removed() -> None:
    assert text("bell\x07 null\x00 bs\x08 vt\x0b ff\x0c del\x7f c1\u0085 esc\x1b") == (
        "bell null bs vt ff del c1 esc"
    )
    assert text("non-printables that are not controls stay: nbsp\u00a0zwsp\u200b") == (
        "non-printables that are not controls stay: nbsp\u00a0zwsp\u200b"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10%\r50%\r100%", "100%"),
        ("progress [###   ]\rprogress [######]\r", "progress [######]"),
        ("\r\x1b[Kdone", "done"),  # erase-line after the return: the escape goes too
        ("only\r", "only"),
        ("\r\r", ""),
    ],
)
def test_carriage_returns_show_the_final_state(raw: str, expected: str) -> None:
    assert text(raw) == expected


def test_tabs_expand_to_eight_columns() -> None:
    assert text("a\tbc\tdefghijk\tl") == "a       bc      defghijk        l"
    assert text("\x1b[1mkey\x1b[0m\tvalue") == "key     value"  # columns after escapes go


def test_long_lines_are_cut_and_the_cut_is_counted() -> None:
    line = parse_line(("é" * (MAX_LINE_CHARS + 10)).encode(), "w", timestamped=False)
    assert (len(line.text), line.truncated) == (MAX_LINE_CHARS, 20)
    raw = RawLine(b"a" * (MAX_LINE_CHARS + 1), dropped=99)
    assert parse_line(raw, "w", timestamped=False).truncated == 100
    assert parse_line(RawLine(b"short", 7), "w", timestamped=False).truncated == 7


def test_plain_lines_take_the_fast_path_and_keep_their_text() -> None:
    for raw in ("plain ascii line", "unicode ünïcödé 日本 🚀", ""):
        assert text(raw) == raw


# ---- JSON lines --------------------------------------------------------------------------


def test_structured_log_is_level_message_then_fields() -> None:
    line = json.dumps(
        {
            "time": "2024-05-01T10:00:00Z",
            "msg": "request done",
            "level": "info",
            "path": "/api/orders",
            "status": 200,
            "user": {"id": 7, "roles": ["admin", "dev"]},
            "tags": ["a", "b c"],
            "ok": True,
            "err": None,
            "note": "two words",
            "empty": "",
        }
    )
    assert readable_json(line) == (
        'INFO request done path=/api/orders status=200 user={"id":7,"roles":["admin","dev"]}'
        ' tags=["a","b c"] ok=true err=null note="two words" empty=""'
    )
    assert json_level(line) == "INFO"


@pytest.mark.parametrize(
    ("record", "expected", "level"),
    [
        ({"severity": "warning", "message": "slow", "ts": 1}, "WARNING slow", "WARNING"),
        ({"levelname": "error", "event": "boom", "@timestamp": "x"}, "ERROR boom", "ERROR"),
        ({"lvl": "dbug", "msg": "x", "timestamp": 3}, "DBUG x", "DBUG"),
        ({"level": 30, "msg": "pino"}, "INFO pino", "INFO"),
        ({"level": 35, "msg": "custom"}, "35 custom", "35"),
        ({"msg": "no level", "k": "v"}, "no level k=v", None),
        ({"k": "v"}, "k=v", None),
        ({"msg": "two\nlines\tand tab"}, "two\\nlines\\tand tab", None),
        ({"msg": {"nested": [1, 2]}}, '{"nested":[1,2]}', None),
        ({"time": "only a time"}, "{}", None),
        ({"k": "caf\u00e9", "q": 'say "hi"'}, 'k=café q="say \\"hi\\""', None),
    ],
)
def test_json_fields(record: dict[str, object], expected: str, level: str | None) -> None:
    line = json.dumps(record, ensure_ascii=False)
    assert readable_json(line) == expected
    assert json_level(line) == level


@pytest.mark.parametrize(
    "line",
    [
        "[1, 2, 3]",
        '"a string"',
        "42",
        "null",
        "{not json}",
        '{"cut": "at the MAX_LINE',
        "plain text {with braces}",
        "{" * 5000 + "}" * 5000,
        "",
    ],
)
def test_anything_but_a_json_object_is_none(line: str) -> None:
    assert readable_json(line) is None
    assert json_level(line) is None


def test_json_with_surrounding_whitespace_is_still_an_object() -> None:
    assert readable_json('  {"level":"info","msg":"x"}  ') == "INFO x"


# ---- LogBuffer ---------------------------------------------------------------------------


def numbered(count: int, start: int = 0, source: str = "web") -> list[LogLine]:
    return [LogLine(source, None, f"line {i}") for i in range(start, start + count)]


def test_buffer_evicts_the_oldest_and_keeps_absolute_indexes() -> None:
    buffer = LogBuffer(max_lines=10)
    buffer.extend(numbered(25))
    assert (len(buffer), buffer.first, buffer.end, buffer.dropped) == (10, 15, 25, 15)
    assert buffer.line(15).text == "line 15"
    assert buffer.line(24).text == "line 24"
    assert [line.text for line in buffer.lines(0, 18)] == ["line 15", "line 16", "line 17"]
    assert buffer.lines(30, 40) == [] and buffer.lines(20, 10) == []
    with pytest.raises(IndexError):
        buffer.line(14)
    with pytest.raises(IndexError):
        buffer.line(25)


def test_buffer_version_changes_on_every_change() -> None:
    buffer = LogBuffer()
    versions = [buffer.version]
    buffer.append(LogLine("w", None, "a"))
    versions.append(buffer.version)
    buffer.extend(numbered(3))
    versions.append(buffer.version)
    buffer.extend([])
    assert buffer.version == versions[-1]  # nothing changed
    buffer.clear()
    versions.append(buffer.version)
    assert versions == sorted(set(versions))


def test_clear_keeps_counting_and_resets_dropped() -> None:
    buffer = LogBuffer(max_lines=5)
    buffer.extend(numbered(8))
    assert buffer.dropped == 3
    buffer.clear()
    assert (len(buffer), buffer.first, buffer.end, buffer.dropped) == (0, 8, 8, 0)
    buffer.append(LogLine("w", None, "new"))
    assert buffer.line(8).text == "new"
    with pytest.raises(IndexError):
        buffer.line(7)


def test_buffer_bounds_bytes_too() -> None:
    buffer = LogBuffer(max_lines=1000, max_bytes=50_000)
    buffer.extend(LogLine("w", None, "x" * 1000) for _ in range(500))
    assert buffer.bytes <= 50_000
    assert 30 < len(buffer) < 50
    assert buffer.dropped == 500 - len(buffer)
    # One line larger than the whole budget is still kept: the newest line always is.
    buffer.append(LogLine("w", None, "y" * 100_000))
    assert len(buffer) == 1 and buffer.line(buffer.first).text.startswith("y")


def test_far_more_than_capacity_stays_bounded_in_memory() -> None:
    buffer = LogBuffer(max_lines=2_000)
    line_text = "GET /api/orders/{} 200 12ms user=42 trace=abcdef0123456789"

    def flood(count: int, start: int) -> None:
        for chunk in range(start, start + count, 5000):
            buffer.extend(LogLine("web", T0, line_text.format(i)) for i in range(chunk, chunk + 5000))

    flood(5_000, 0)  # fill, and let the list reach its steady shape
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        flood(100_000, 5_000)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(buffer), buffer.first, buffer.end, buffer.dropped) == (2_000, 103_000, 105_000, 103_000)
    assert buffer.line(104_999).text == line_text.format(104_999)
    # 100k lines passed (50 times the capacity, ~20 MB of objects); what stays is one buffer's worth (the
    # lines that replaced those of before), within the buffer's own estimate.
    assert after - before < buffer.bytes
    assert peak - before < 2 * buffer.bytes


def test_search_text_and_source_from_a_start() -> None:
    buffer = LogBuffer(max_lines=100)
    buffer.extend(numbered(5, source="web-1") + numbered(5, 5, source="db-0"))
    assert buffer.search(re.compile(r"line [13]$")) == [1, 3]
    assert buffer.search(re.compile("db-")) == [5, 6, 7, 8, 9]  # the source prefix
    assert buffer.search(re.compile("LINE 7", re.IGNORECASE)) == [7]
    assert buffer.search(re.compile("line"), start=8) == [8, 9]
    assert buffer.search(re.compile("nothing")) == []


@pytest.mark.parametrize(
    "query",
    ["line", "LINE 1", "ine 2", "42", "é", "K", "s", "x.y", "(a|b)", "ß", "İ", "straße", "STRASSE", "web"],
)
def test_search_gives_the_regex_answer_on_any_text(query: str) -> None:
    """Plain words take a faster path than the regex engine; the hits are the same, also
    for text whose Unicode case folding differs from lower-casing (Kelvin sign, long s)."""
    texts = [f"line {i}" for i in range(30)] + [
        "Straße", "STRASSE", "straße", "\u212a kelvin", "ſ long s", "İstanbul", "istanbul", "x.y", "xzy", "a|b", "ÉLAN", "élan",
    ]
    buffer = LogBuffer()
    buffer.extend(LogLine("w", None, text) for text in texts)
    pattern = re.compile(query, re.IGNORECASE)
    expected = [i for i, text in enumerate(texts) if pattern.search(text)]
    assert buffer.search(pattern) == expected
    exact = re.compile(re.escape(query))
    assert buffer.search(exact) == [i for i, text in enumerate(texts) if exact.search(text)]
    ascii_only = LogBuffer()
    ascii_only.extend(LogLine("w", None, text) for text in texts if text.isascii())
    assert ascii_only.search(pattern) == [i for i, text in enumerate(t for t in texts if t.isascii()) if pattern.search(text)]


def test_search_after_eviction_reports_absolute_indexes() -> None:
    buffer = LogBuffer(max_lines=4)
    buffer.extend(numbered(10))
    assert buffer.search(re.compile(r"line [0-9]")) == [6, 7, 8, 9]
    assert buffer.search(re.compile("line"), start=0) == [6, 7, 8, 9]


@pytest.mark.parametrize(
    ("pattern", "context", "expected"),
    [
        (r"line 5$", 0, [5]),
        (r"line 5$", 2, [3, 4, 5, 6, 7]),
        (r"line (0|9)$", 2, [0, 1, 2, 7, 8, 9]),  # clipped at both edges
        (r"line (3|5)$", 1, [2, 3, 4, 5, 6]),  # overlapping context merged
        (r"line (3|4)$", 3, [0, 1, 2, 3, 4, 5, 6, 7]),
        (r"line", 1, list(range(10))),
        (r"none", 3, []),
    ],
)
def test_grep_with_context(pattern: str, context: int, expected: list[int]) -> None:
    buffer = LogBuffer()
    buffer.extend(numbered(10))
    assert buffer.grep(re.compile(pattern), context) == expected


def test_grep_context_clipped_to_retained_lines() -> None:
    buffer = LogBuffer(max_lines=5)
    buffer.extend(numbered(10))  # 5..9 retained
    assert buffer.grep(re.compile(r"line (5|9)$"), 3) == [5, 6, 7, 8, 9]
    assert buffer.grep(re.compile(r"line 9$"), 2, start=9) == [7, 8, 9]


# ---- Interleaver -------------------------------------------------------------------------


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def timed(source: str, ms: int, label: str | None = None) -> LogLine:
    return LogLine(source, at(ms), label or f"{source}@{ms}")


def texts(lines: list[LogLine]) -> list[str]:
    return [line.text for line in lines]


def test_three_sources_with_skew_inside_the_window_come_out_in_time_order() -> None:
    merger = Interleaver(timedelta(milliseconds=150))
    now = at(1000)
    # Source c's chunk lands 100 ms late; b's clock runs 40 ms behind.
    for line in [timed("a", 0), timed("a", 20), timed("b", 5), timed("b", 25)]:
        merger.push(line, now)
    merger.push(timed("c", 10), now + timedelta(milliseconds=100))
    merger.push(timed("c", 30), now + timedelta(milliseconds=100))
    assert merger.ready(now + timedelta(milliseconds=149)) == []
    assert len(merger) == 6
    assert merger.next_due() == now + timedelta(milliseconds=150)
    first = merger.ready(now + timedelta(milliseconds=150))
    assert texts(first) == ["a@0", "b@5", "a@20", "b@25"]
    # c's lines are still in their window: they come when it is over, in order.
    assert texts(merger.ready(now + timedelta(milliseconds=250))) == ["c@10", "c@30"]
    assert merger.next_due() is None


def test_three_sources_all_inside_one_window() -> None:
    merger = Interleaver()
    arrivals = [timed("a", 0), timed("a", 30), timed("c", 10), timed("b", 5), timed("c", 40), timed("b", 20)]
    for offset, line in enumerate(arrivals):
        merger.push(line, at(1000 + offset * 10))
    assert texts(merger.ready(at(2000))) == ["a@0", "b@5", "c@10", "b@20", "a@30", "c@40"]


def test_skew_outside_the_window_keeps_arrival_order() -> None:
    merger = Interleaver(timedelta(milliseconds=150))
    merger.push(timed("a", 1000), at(0))
    merger.push(timed("b", 1001), at(0))
    released = merger.ready(at(200))
    # c's clock is 5 s behind and its line lands after the others left: no reordering
    # of what was already released, and nothing is lost.
    merger.push(timed("c", -4000), at(300))
    released += merger.ready(at(500))
    assert texts(released) == ["a@1000", "b@1001", "c@-4000"]


def test_a_source_is_never_reordered_even_when_its_clock_steps_back() -> None:
    merger = Interleaver()
    for line in [timed("a", 50), timed("a", 10), timed("b", 30), timed("b", 20)]:
        merger.push(line, at(0))
    out = texts(merger.drain())
    assert [t for t in out if t.startswith("a")] == ["a@50", "a@10"]
    assert [t for t in out if t.startswith("b")] == ["b@30", "b@20"]
    assert out == ["b@30", "b@20", "a@50", "a@10"]


def test_equal_times_keep_arrival_order() -> None:
    merger = Interleaver()
    for source in "cab":
        merger.push(timed(source, 0), at(0))
    assert texts(merger.drain()) == ["c@0", "a@0", "b@0"]


def test_untimed_lines_and_markers_keep_their_arrival_position() -> None:
    merger = Interleaver()
    marker = LogLine("a", at(0), "container restarted, exit 137", kind=LogKind.MARKER)
    untimed = LogLine("c", None, "no time")
    for line in [timed("b", 20), timed("a", 10), marker, timed("b", 40), timed("a", 30), untimed, timed("a", 5)]:
        merger.push(line, at(0))
    assert texts(merger.ready(at(1000))) == [
        "a@10",
        "b@20",
        "container restarted, exit 137",
        "a@30",
        "b@40",
        "no time",
        "a@5",
    ]


def test_naive_and_aware_times_mix_and_drain_releases_everything() -> None:
    merger = Interleaver()
    merger.push(LogLine("a", datetime(2024, 5, 1, 10, 0, 1), "naive later"), at(0))
    merger.push(LogLine("b", datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))), "aware"), at(0))
    assert texts(merger.drain()) == ["aware", "naive later"]
    assert len(merger) == 0 and merger.drain() == []


def test_end_to_end_chunks_to_buffer() -> None:
    streams = {
        "web": b"2024-05-01T10:00:00.000000002Z \x1b[32mstarted\x1b[0m\n2024-05-01T10:00:00.3Z {\"level\":\"warn\",\"msg\":\"slow\"}\n",
        "db": b"2024-05-01T10:00:00.1Z ready\n2024-05-01T10:00:00.2Z chec",
    }
    merger = Interleaver()
    for source, data in streams.items():
        assembler = LineAssembler()
        for raw in assembler.feed(data[:17]) + assembler.feed(data[17:]) + assembler.flush():
            merger.push(parse_line(raw, source), at(0))
    buffer = LogBuffer()
    buffer.extend(merger.drain())
    assert [(line.source, line.text) for line in buffer.lines(buffer.first, buffer.end)] == [
        ("web", "started"),
        ("db", "ready"),
        ("db", "chec"),
        ("web", '{"level":"warn","msg":"slow"}'),
    ]
    assert readable_json(buffer.line(3).text) == "WARN slow"
