"""The scale dialog: "Scale default/web (Deployment) — now 3 replicas", a number, Enter.

Dismisses with the new replica count, or None on Esc. Nothing is sent from here: the
caller decides what scaling means for the workload.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Static

MAX_REPLICAS = 1000


def parse_replicas(value: str) -> int | str:
    """The replica count in `value`, or why it is not one (shown under the input)."""
    text = value.strip()
    if not text.lstrip("+-").isdigit():
        return "Enter a whole number of replicas"
    count = int(text)
    if not 0 <= count <= MAX_REPLICAS:
        return f"Replicas must be between 0 and {MAX_REPLICAS}"
    return count


class ReplicaCount(Validator):
    def validate(self, value: str) -> ValidationResult:
        parsed = parse_replicas(value)
        return self.failure(parsed, value) if isinstance(parsed, str) else self.success()


class ReplicaInput(Input):
    """`+`/`-` step the count. They are priority bindings: an Input would otherwise take
    them as text (a minus sign is never valid here anyway)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus", "step(1)", "One more", id="scale.more", priority=True),
        Binding("minus", "step(-1)", "One fewer", id="scale.fewer", priority=True),
    ]

    def action_step(self, delta: int) -> None:
        parsed = parse_replicas(self.value)
        current = parsed if isinstance(parsed, int) else 0
        self.value = str(max(0, min(MAX_REPLICAS, current + delta)))
        self.cursor_position = len(self.value)


class ScaleScreen(ModalScreen[int | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="scale.cancel"),
    ]

    DEFAULT_CSS = """
    ScaleScreen {
        align: center middle;
    }
    ScaleScreen #scale {
        width: 64;
        height: auto;
        border: round $accent;
        background: $surface;
        padding: 1 2;
    }
    ScaleScreen #scale-error {
        color: $error;
        height: auto;
    }
    ScaleScreen .hint {
        color: $text-muted;
    }
    """

    def __init__(self, target: str, current: int, *, kind: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.current = current
        self.kind = kind

    @property
    def question(self) -> str:
        noun = "replica" if self.current == 1 else "replicas"
        kind = f" ({self.kind})" if self.kind else ""
        return f"Scale {self.target}{kind} — now {self.current} {noun}"

    def compose(self) -> ComposeResult:
        with Vertical(id="scale"):
            yield Static(self.question, id="scale-question", markup=False)
            yield ReplicaInput(
                str(self.current), id="scale-input", validators=[ReplicaCount()], validate_on=["changed", "submitted"]
            )
            yield Static("", id="scale-error", markup=False)
            yield Static(f"Enter: scale    +/-: adjust    Esc: cancel    (0–{MAX_REPLICAS})", classes="hint")

    def on_mount(self) -> None:
        self.set_focus(self.query_one(ReplicaInput))

    @property
    def error(self) -> str:
        """The validation message shown under the input ("" when the value is valid)."""
        return str(self.query_one("#scale-error", Static).content)

    def _show_error(self, message: str) -> None:
        self.query_one("#scale-error", Static).update(message)

    @on(Input.Changed, "#scale-input")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        # Clear a stale message while typing; a new one waits for Enter.
        if event.validation_result is None or event.validation_result.is_valid:
            self._show_error("")

    @on(Input.Submitted, "#scale-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        parsed = parse_replicas(event.value)
        if isinstance(parsed, str):
            self._show_error(parsed)
            return
        self.dismiss(parsed)

    def action_cancel(self) -> None:
        self.dismiss(None)
