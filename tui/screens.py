"""Modal screens: help (`?`) and confirmation of disruptive actions."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static


class HelpScreen(ModalScreen[None]):
    """Lists the bindings active where `?` was pressed, and the `:` commands."""

    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", show=False),
    ]

    def __init__(
        self, title: str, keys: Iterable[tuple[str, str, str]], commands: Iterable[tuple[str, str]]
    ) -> None:
        super().__init__()
        self._title = title
        self._keys = list(keys)
        self._commands = list(commands)

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(Text(f"Help — {self._title}", style="bold"), id="help-title")
            keys: DataTable = DataTable(id="help-keys", cursor_type="none", show_cursor=False)
            keys.add_columns("KEY", "ACTION", "BINDING ID (remap in config: keymap)")
            for key, description, binding_id in self._keys:
                keys.add_row(Text(key, style="bold cyan"), description, Text(binding_id, style="dim"))
            yield keys
            commands: DataTable = DataTable(id="help-commands", cursor_type="none", show_cursor=False)
            commands.add_columns("COMMAND", "VIEW")
            for words, description in self._commands:
                commands.add_row(Text(words, style="bold cyan"), description)
            yield commands
            yield Static("Esc closes", classes="hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class ConfirmScreen(ModalScreen[bool]):
    """"Stop shop/web (1 container)?" — y/Enter confirms, n/Esc cancels."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self._question, markup=False)
            yield Static("y / Enter: yes    n / Esc: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class NameScreen(ModalScreen[str | None]):
    """"Save these forwards as: [dev]" — Enter answers with the name, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    NameScreen { align: center middle; }
    NameScreen #name { width: 64; height: auto; border: round $accent; background: $surface; padding: 1 2; }
    NameScreen #name-error { color: $error; height: auto; }
    """

    def __init__(self, question: str, default: str = "") -> None:
        super().__init__()
        self._question = question
        self._default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="name"):
            yield Static(self._question, markup=False)
            yield Input(self._default, id="name-input")
            yield Static("", id="name-error", markup=False)
            yield Static("Enter: save    Esc: cancel", classes="hint")

    def on_mount(self) -> None:
        self.set_focus(self.query_one(Input))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if not name:
            self.query_one("#name-error", Static).update("Enter a name")
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """A question with a few answers, each on a key: dismisses with the chosen value, or
    None on Esc."""

    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen #choice { width: 90; height: auto; border: round $accent; background: $surface; padding: 1 2; }
    """

    def __init__(self, question: str, choices: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self._question = question
        self._choices = {key: value for key, value, _ in choices}
        self._lines = [f"{key}: {label}" for key, _, label in choices]

    def compose(self) -> ComposeResult:
        with Vertical(id="choice"):
            yield Static(self._question, markup=False)
            for line in self._lines:
                yield Static(f"  {line}", markup=False)
            yield Static("Esc: cancel", classes="hint")

    def on_key(self, event) -> None:  # noqa: ANN001 - a Textual Key event
        if event.key in self._choices:
            event.stop()
            self.dismiss(self._choices[event.key])
        elif event.key == "escape":
            event.stop()
            self.dismiss(None)
