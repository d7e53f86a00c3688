"""The bottom prompt, in `:` command mode or `/` filter mode (k9s habits).

Command mode completes with Tab and walks history with Up/Down; filter mode reports
every keystroke so the table filters live. The prompt only collects text: the app
decides what a command or filter does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input

Mode = Literal["command", "filter"]


class CommandSuggester(Suggester):
    def __init__(self, complete: Callable[[str], list[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self._complete = complete

    async def get_suggestion(self, value: str) -> str | None:
        matches = self._complete(value)
        return matches[0] if matches else None


class Prompt(Input):
    BINDINGS = [
        Binding("tab", "complete", "Complete", show=False),
        Binding("up", "history(-1)", "Previous", show=False),
        Binding("down", "history(1)", "Next", show=False),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    class Done(Message):
        """The user pressed Enter (`value`) or Esc (`value` is None)."""

        def __init__(self, mode: Mode, value: str | None) -> None:
            super().__init__()
            self.mode = mode
            self.value = value

    class FilterChanged(Message):
        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

    def __init__(self, completions: Callable[[str], list[str]], complete: Callable[[str], str]) -> None:
        super().__init__(id="prompt", suggester=CommandSuggester(completions), select_on_focus=False)
        self.mode: Mode = "command"
        self._complete = complete
        self._history: list[str] = []
        self._history_pos = 0

    def open(self, mode: Mode, value: str = "") -> None:
        self.mode = mode
        self.set_class(mode == "filter", "-filter")
        self.placeholder = "filter: regex · !inverse · -l key=value" if mode == "filter" else "command (Tab completes)"
        self.value = value
        self.cursor_position = len(value)
        self._history_pos = len(self._history)
        self.display = True
        self.screen.set_focus(self)  # now, not a tick later: the next key is already queued

    def close(self) -> None:
        self.display = False

    def action_complete(self) -> None:
        if self.mode == "command":
            self.value = self._complete(self.value)
            self.cursor_position = len(self.value)

    def action_history(self, step: int) -> None:
        if self.mode != "command" or not self._history:
            return
        self._history_pos = max(0, min(len(self._history), self._history_pos + step))
        self.value = self._history[self._history_pos] if self._history_pos < len(self._history) else ""
        self.cursor_position = len(self.value)

    def action_cancel(self) -> None:
        self.post_message(self.Done(self.mode, None))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if self.mode == "command" and value and (not self._history or self._history[-1] != value):
            self._history.append(value)
        self.post_message(self.Done(self.mode, value))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.mode == "filter" and self.display:
            self.post_message(self.FilterChanged(event.value))
