"""The `/` filter: k9s users' grammar, parsed once, matched over every row.

    api            rows with a cell matching the regex `api` (case-insensitive)
    !api           rows with no cell matching it
    -l app=web     rows whose labels satisfy the selector (Kubernetes syntax:
                   k=v, k==v, k!=v, k, !k; comma-separated requirements all hold)
    -l app=web api both: the selector and the text

Typing happens one key at a time, so every prefix of a filter must parse: an
invalid regex (`[abc`) is matched literally, and a half-typed `-l` is ignored,
each with a `warning` for the status line rather than an exception.
Parsing compiles the regex once; `RowFilter.matches` then runs over thousands
of rows per keystroke.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class LabelOp(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One requirement of a label selector; case-sensitive, like Kubernetes labels."""

    key: str
    op: LabelOp
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.op:
            case LabelOp.EQUALS:
                return labels.get(self.key) == self.value
            case LabelOp.NOT_EQUALS:
                # Kubernetes semantics: a missing label also differs from the value.
                return labels.get(self.key) != self.value
            case LabelOp.EXISTS:
                return self.key in labels
            case LabelOp.ABSENT:
                return self.key not in labels

    def __str__(self) -> str:
        match self.op:
            case LabelOp.EXISTS:
                return self.key
            case LabelOp.ABSENT:
                return f"!{self.key}"
            case _:
                return f"{self.key}{self.op}{self.value}"


_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RowFilter:
    """A parsed filter. Build it with `parse_filter`; the default matches every row.

    `pattern` is public so a view can highlight what matched.
    """

    text: str
    warning: str | None = None
    pattern: re.Pattern[str] | None = None
    term: str = ""  # the text part as typed, without a leading '!'
    inverted: bool = False
    literal: bool = False  # the term was not a valid regex and is matched as-is
    requirements: tuple[LabelRequirement, ...] = ()

    @property
    def matches_all(self) -> bool:
        """True when the filter lets every row through, so a view can skip it."""
        return self.pattern is None and not self.requirements

    def matches(self, cells: Sequence[str], labels: Mapping[str, str] = _NO_LABELS) -> bool:
        for requirement in self.requirements:
            if not requirement.matches(labels):
                return False
        if self.pattern is None:
            return True
        search = self.pattern.search
        for cell in cells:
            if search(cell):
                return not self.inverted
        return self.inverted

    def describe(self) -> str:
        """Short form for the status line: `/api/`, `not /api/`, `labels app=web and /api/`."""
        parts: list[str] = []
        if self.requirements:
            parts.append("labels " + ",".join(map(str, self.requirements)))
        if self.pattern is not None:
            shown = f'"{self.term}"' if self.literal else f"/{self.term}/"
            parts.append(f"not {shown}" if self.inverted else shown)
        return " and ".join(parts)


# `-l` as a word of its own, with the selector (one word) after it if typed yet.
_LABEL_OPTION = re.compile(r"(?<!\S)-l(?:\s+(?P<selector>\S+))?(?!\S)")


def parse_filter(text: str) -> RowFilter:
    """Parse what the user typed after `/`. Never raises."""
    warnings: list[str] = []
    requirements: list[LabelRequirement] = []
    rest: list[str] = []
    position = 0
    for option in _LABEL_OPTION.finditer(text):
        rest.append(text[position : option.start()])
        position = option.end()
        selector = option.group("selector")
        if selector is None:
            warnings.append("-l needs a label selector, e.g. -l app=web")
            continue
        parsed, problems = parse_selector(selector)
        requirements += parsed
        warnings += problems
    rest.append(text[position:])
    term = " ".join(piece.strip() for piece in rest if piece.strip())
    inverted = term.startswith("!")
    if inverted:
        term = term[1:].strip()
    pattern, literal = _compile(term, warnings) if term else (None, False)
    return RowFilter(
        text=text,
        warning="; ".join(warnings) or None,
        pattern=pattern,
        term=term,
        inverted=inverted and pattern is not None,
        literal=literal,
        requirements=tuple(requirements),
    )


def parse_selector(selector: str) -> tuple[list[LabelRequirement], list[str]]:
    """`app=web,tier!=db,canary,!legacy` → requirements, and a warning per bad one.

    Empty pieces (a trailing comma while typing) are skipped silently.
    """
    requirements: list[LabelRequirement] = []
    problems: list[str] = []
    for piece in selector.split(","):
        piece = piece.strip()
        if not piece:
            continue
        requirement = parse_requirement(piece)
        if requirement is None:
            problems.append(f"invalid label requirement '{piece}' — ignored")
        else:
            requirements.append(requirement)
    return requirements, problems


def parse_requirement(piece: str) -> LabelRequirement | None:
    """One of k=v, k==v, k!=v, k, !k; None if it has no usable key.

    The value is everything after the operator, so it may hold '=', '/', '.',
    or any character a Compose label can carry.
    """
    key, equals, value = piece.partition("=")
    if not equals:
        if key.startswith("!"):
            return _requirement(key[1:], LabelOp.ABSENT)
        return _requirement(key, LabelOp.EXISTS)
    if key.endswith("!"):
        return _requirement(key[:-1], LabelOp.NOT_EQUALS, value)
    if value.startswith("="):  # k==v
        value = value[1:]
    return _requirement(key, LabelOp.EQUALS, value)


def _requirement(key: str, op: LabelOp, value: str = "") -> LabelRequirement | None:
    key = key.strip()
    if not key or key.startswith("!"):
        return None
    return LabelRequirement(key, op, value)


def _compile(term: str, warnings: list[str]) -> tuple[re.Pattern[str], bool]:
    """The term as a case-insensitive regex, else as a literal (with a warning)."""
    try:
        return re.compile(term, re.IGNORECASE), False
    except re.error as exc:
        warnings.append(f"invalid regex '{term}': {exc.msg} — matching literally")
        return re.compile(re.escape(term), re.IGNORECASE), True
