"""The `/` filter grammar: regex text, `!` inverse, `-l` label selectors, and
the fall-backs that keep every half-typed prefix usable."""

from __future__ import annotations

import time

import pytest

from backends.filtering import LabelOp, LabelRequirement, RowFilter, parse_filter, parse_selector

ROW = ["shop-api-1", "running", "healthy", "ghcr.io/acme/api:1.4", "8080→80/tcp"]
LABELS = {
    "app": "web",
    "tier": "frontend",
    "com.docker.compose.project": "shop",
    "app.kubernetes.io/name": "shop-web",
    "owner": "zoë@acme.io",
    "path": "/srv/data",
    "empty": "",
}


def matches(text: str, cells: list[str] = ROW, labels: dict[str, str] = LABELS) -> bool:
    return parse_filter(text).matches(cells, labels)


# ---- text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api", True),
        ("API", True),  # case-insensitive
        ("Shop-Api", True),
        ("db", False),
        ("^running$", True),  # anchors apply to one cell
        ("^shop.*tcp$", False),  # ...and never span cells
        ("run|crash", True),
        (r"api-\d", True),
        (r"api:\d+\.\d+", True),
        ("8080→80", True),  # unicode in cells
        ("ghcr\\.io/acme", True),
        ("healthy running", False),  # a space is part of the regex
    ],
)
def test_text_is_a_case_insensitive_regex_over_cells(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_case_insensitivity_covers_unicode() -> None:
    assert parse_filter("ÉCOLE").matches(["école"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("!api", False), ("!db", True), ("!API", False), ("! db", True), ("!^running$", False)],
)
def test_bang_inverts_the_text(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_escaped_bang_searches_for_a_bang() -> None:
    flt = parse_filter(r"\!important")
    assert not flt.inverted
    assert flt.matches(["!important note"])
    assert not flt.matches(["important"])


@pytest.mark.parametrize("text", ["", "   ", "\t", "!", " ! "])
def test_empty_filters_match_everything(text: str) -> None:
    flt = parse_filter(text)
    assert flt.matches_all
    assert flt.warning is None
    assert flt.matches(ROW, LABELS)
    assert flt.matches([])
    assert flt.describe() == ""


@pytest.mark.parametrize(("text", "term"), [("  api  ", "api"), ("\tapi\n", "api"), ("a  b", "a  b")])
def test_surrounding_whitespace_is_ignored_inner_is_kept(text: str, term: str) -> None:
    assert parse_filter(text).term == term


def test_original_text_is_kept() -> None:
    assert parse_filter("  -l app=web  api ").text == "  -l app=web  api "


def test_no_cells_match_no_text() -> None:
    assert not parse_filter("api").matches([])
    assert parse_filter("!api").matches([])


# ---- invalid regex ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[abc", "unterminated character set"),
        ("(api", "missing ), unterminated subpattern"),
        ("*api", "nothing to repeat"),
        ("api\\", "bad escape (end of pattern)"),
    ],
)
def test_invalid_regex_falls_back_to_literal_with_a_warning(text: str, reason: str) -> None:
    flt = parse_filter(text)
    assert flt.literal
    assert flt.warning == f"invalid regex '{text}': {reason} — matching literally"
    assert flt.matches([f"xx{text.upper()}yy"])  # literal, still case-insensitive
    assert not flt.matches(["api"])


def test_invalid_regex_can_be_inverted() -> None:
    flt = parse_filter("![abc")
    assert flt.warning == "invalid regex '[abc': unterminated character set — matching literally"
    assert flt.matches(["abc"])
    assert not flt.matches(["x[abc"])
    assert flt.describe() == 'not "[abc"'


# ---- labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app=Web", False),  # label values are case-sensitive, like Kubernetes
        ("App=web", False),
        ("app!=api", True),
        ("app!=web", False),
        ("missing!=x", True),  # Kubernetes: an absent label also differs
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("app=web,!missing,tier", True),
        ("app=web,", True),  # trailing comma while typing
        ("com.docker.compose.project=shop", True),
        ("app.kubernetes.io/name=shop-web", True),
        ("owner=zoë@acme.io", True),
        ("path=/srv/data", True),
        ("empty=", True),
        ("empty", True),
        ("app=", False),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    flt = parse_filter(f"-l {selector}")
    assert flt.warning is None
    assert flt.matches(["anything"], LABELS) is expected


@pytest.mark.parametrize(
    ("selector", "requirement"),
    [
        ("a=b", LabelRequirement("a", LabelOp.EQUALS, "b")),
        ("a==b", LabelRequirement("a", LabelOp.EQUALS, "b")),
        ("a!=b", LabelRequirement("a", LabelOp.NOT_EQUALS, "b")),
        ("a", LabelRequirement("a", LabelOp.EXISTS)),
        ("!a", LabelRequirement("a", LabelOp.ABSENT)),
        ("a=b=c", LabelRequirement("a", LabelOp.EQUALS, "b=c")),
        ("a==b==c", LabelRequirement("a", LabelOp.EQUALS, "b==c")),
        ("a=!b", LabelRequirement("a", LabelOp.EQUALS, "!b")),
        ("url=http://x:1/y?z=1", LabelRequirement("url", LabelOp.EQUALS, "http://x:1/y?z=1")),
        ("名前=値", LabelRequirement("名前", LabelOp.EQUALS, "値")),
    ],
)
def test_requirement_forms(selector: str, requirement: LabelRequirement) -> None:
    assert parse_selector(selector) == ([requirement], [])


@pytest.mark.parametrize("bad", ["=web", "!=web", "!", "!app=web", "!!app"])
def test_invalid_requirement_is_ignored_with_a_warning(bad: str) -> None:
    flt = parse_filter(f"-l app=web,{bad}")
    assert flt.warning == f"invalid label requirement '{bad}' — ignored"
    assert flt.requirements == (LabelRequirement("app", LabelOp.EQUALS, "web"),)


@pytest.mark.parametrize("text", ["-l", "-l   ", "api -l"])
def test_half_typed_label_option_is_ignored_with_a_hint(text: str) -> None:
    flt = parse_filter(text)
    assert flt.warning == "-l needs a label selector, e.g. -l app=web"
    assert flt.requirements == ()
    assert flt.matches(ROW, LABELS)


def test_rows_without_labels() -> None:
    assert not parse_filter("-l app=web").matches(ROW)
    assert parse_filter("-l !app").matches(ROW)


# ---- labels and text combined ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-l app=web api", True),
        ("-l app=web db", False),
        ("-l app=db api", False),
        ("api -l app=web", True),
        ("-l app=web !api", False),
        ("-l app=web !db", True),
        ("!db -l app=web", True),
        ("-l app=web -l tier=frontend api", True),
        ("-l app=web -l tier=backend api", False),
        ("  -l   app=web   api  ", True),
        ("-l app=web\tapi", True),
    ],
)
def test_labels_and_text_combined(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_dash_l_inside_a_word_is_text() -> None:
    flt = parse_filter("shop-l")
    assert flt.requirements == ()
    assert flt.term == "shop-l"


def test_text_around_a_selector_is_rejoined() -> None:
    assert parse_filter("shop -l app=web api").term == "shop api"


# ---- describe --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("api", "/api/"),
        ("!api", "not /api/"),
        ("-l app=web", "labels app=web"),
        ("-l app==web,tier!=db,canary,!legacy", "labels app=web,tier!=db,canary,!legacy"),
        ("-l app=web api", "labels app=web and /api/"),
        ("-l app=web !api", "labels app=web and not /api/"),
        ("[abc", '"[abc"'),
        ("", ""),
    ],
)
def test_describe(text: str, description: str) -> None:
    assert parse_filter(text).describe() == description


# ---- shape and speed -------------------------------------------------------------------


def test_default_row_filter_matches_everything() -> None:
    assert RowFilter(text="").matches(ROW, LABELS)


def test_filter_is_immutable_and_comparable() -> None:
    assert parse_filter("-l app=web api") == parse_filter("-l app=web api")
    with pytest.raises(AttributeError):
        parse_filter("api").text = "db"  # type: ignore[misc]


def test_pattern_is_compiled_once_for_highlighting() -> None:
    flt = parse_filter("API")
    assert flt.pattern is not None
    assert flt.pattern.search("shop-api-1").group() == "api"


def test_thousands_of_rows_per_keystroke() -> None:
    rows = [[f"svc-{i}", "running", "healthy", f"img:{i}", "8080/tcp", "3h"] for i in range(2500)]
    labels = [{"app": f"a{i % 7}", "tier": "web"} for i in range(2500)]
    flt = parse_filter("-l tier=web svc-1.*9")
    started = time.perf_counter()
    hits = sum(flt.matches(cells, lab) for cells, lab in zip(rows, labels))
    assert hits == sum(1 for i in range(2500) if str(i).startswith("1") and "9" in str(i)[1:])
    assert time.perf_counter() - started < 0.1  # generous: ~5 ms here
