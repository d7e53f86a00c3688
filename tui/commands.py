"""The `:` command registry: names, aliases, completion.

Views and capabilities register their commands here (`:wk`, `:ctr`, later `:pods`,
`:pf` …); the prompt only knows this registry. Resolution is pure and tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from os.path import commonprefix
from typing import Any

Handler = Callable[[str], Any]


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    help: str
    run: Handler  # receives the argument text after the command word

    @property
    def words(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._by_word: dict[str, Command] = {}

    def register(self, command: Command) -> None:
        for word in command.words:
            if word in self._by_word:
                raise ValueError(f"command word {word!r} is already taken by :{self._by_word[word].name}")
        self._commands.append(command)
        for word in command.words:
            self._by_word[word] = command

    def __iter__(self) -> Iterable[Command]:
        return iter(self._commands)

    def resolve(self, text: str) -> tuple[Command, str] | None:
        """`"ctr shop"` -> (containers command, "shop"); unknown words -> None."""
        word, _, rest = text.strip().partition(" ")
        command = self._by_word.get(word.lower())
        return (command, rest.strip()) if command else None

    def completions(self, prefix: str) -> list[str]:
        """Every command word starting with `prefix`, names before aliases."""
        prefix = prefix.strip().lower()
        return sorted(
            {w for w in self._by_word if w.startswith(prefix)},
            key=lambda w: (self._by_word[w].name != w, len(w), w),
        )

    def complete(self, prefix: str) -> str:
        """What Tab turns `prefix` into: the single match, or the longest shared prefix."""
        matches = self.completions(prefix)
        if not matches:
            return prefix
        if len(matches) == 1:
            return matches[0]
        return max(commonprefix(matches), prefix.strip().lower(), key=len)
