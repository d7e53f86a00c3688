"""The `:` command registry: resolution, aliases, completion."""

import pytest

from tui.commands import Command, CommandRegistry


def registry() -> CommandRegistry:
    reg = CommandRegistry()
    for name, aliases in [("workloads", ("wk", "workload")), ("containers", ("ctr", "co")), ("quit", ("q",))]:
        reg.register(Command(name, aliases, "", lambda arg, name=name: (name, arg)))
    return reg


@pytest.mark.parametrize(
    ("text", "expected"),
    [("wk", ("workloads", "")), ("  CTR  shop api ", ("containers", "shop api")), ("q", ("quit", ""))],
)
def test_resolve_words_aliases_and_arguments(text, expected):
    command, arg = registry().resolve(text)
    assert command.run(arg) == expected


def test_unknown_and_empty_resolve_to_nothing():
    assert registry().resolve("nope") is None
    assert registry().resolve("") is None


def test_completion_prefers_names_and_completes_shared_prefixes():
    reg = registry()
    assert reg.completions("w") == ["workloads", "wk", "workload"]
    assert reg.complete("wo") == "workload"  # shared prefix of workload/workloads
    assert reg.complete("con") == "containers"
    assert reg.complete("zz") == "zz"
    assert reg.complete("c") == "c"  # ctr, co, containers share only "c"


def test_a_word_cannot_be_taken_twice():
    reg = registry()
    with pytest.raises(ValueError, match="already taken by :workloads"):
        reg.register(Command("wk", (), "", lambda arg: None))
