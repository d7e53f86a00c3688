"""A promotion (or demotion) as it happens: each step with its state and detail, and a
progress bar (the rollout's ready/replicas while it waits for pods).

The screen runs the pipeline in a worker of its own. Esc while it runs cancels it: the
pipeline then undoes what it did (Compose started again, created objects deleted) and
the screen says so. Esc after it ended closes the screen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import ProgressBar, Static

from backends.promote.pipeline import Progress, Step, StepState

STATE_STYLE = {
    StepState.PENDING: ("·", "dim"),
    StepState.RUNNING: ("▶", "bold yellow"),
    StepState.DONE: ("✔", "green"),
    StepState.SKIPPED: ("–", "dim"),
    StepState.FAILED: ("✖", "bold red"),
}

Run = Callable[[Callable[[Progress], object]], Awaitable[str]]


class PromoteProgressScreen(ModalScreen[bool]):
    """Dismisses with True when the run succeeded."""

    BINDINGS = [Binding("escape", "escape", "Cancel / close", id="promote.escape")]

    DEFAULT_CSS = """
    PromoteProgressScreen { align: center middle; }
    PromoteProgressScreen #promote { width: 100; height: auto; border: round $accent; background: $surface;
                                     padding: 1 2; }
    PromoteProgressScreen #promote-steps { height: auto; }
    PromoteProgressScreen #promote-outcome { height: auto; padding-top: 1; }
    PromoteProgressScreen ProgressBar { padding-top: 1; }
    """

    def __init__(self, title: str, steps: list[Step], run: Run) -> None:
        super().__init__()
        self.title_text = title
        self.states: dict[Step, Progress] = {step: Progress(step, StepState.PENDING) for step in steps}
        self._run = run
        self.finished: bool | None = None  # None while running; then whether it succeeded
        self.outcome = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="promote"):
            yield Static(self.title_text, markup=False)
            yield Static(id="promote-steps", markup=False)
            yield ProgressBar(total=1.0, show_eta=False, id="promote-bar")
            yield Static("Esc cancels: whatever was done is undone", id="promote-outcome", markup=False)

    def on_mount(self) -> None:
        self._paint()
        self._go()

    @property
    def steps_text(self) -> str:
        return str(self.query_one("#promote-steps", Static).content)

    def _paint(self) -> None:
        text = Text()
        for i, report in enumerate(self.states.values()):
            mark, style = STATE_STYLE[report.state]
            if i:
                text.append("\n")
            text.append(f" {mark} ", style)
            text.append(f"{report.step:<16}", style if report.state != StepState.PENDING else "dim")
            if report.detail:
                text.append(f" {report.detail}")
        self.query_one("#promote-steps", Static).update(text)
        done = sum(r.state in (StepState.DONE, StepState.SKIPPED) for r in self.states.values())
        running = next((r for r in self.states.values() if r.state == StepState.RUNNING), None)
        fraction = (done + (running.progress if running else 0)) / max(len(self.states), 1)
        self.query_one(ProgressBar).update(progress=fraction)

    def report(self, progress: Progress) -> None:
        """The pipeline's on_progress (called on the event loop)."""
        self.states[progress.step] = progress
        if self.is_mounted:
            self._paint()

    @work(exclusive=True, group="promote", exit_on_error=False)
    async def _go(self) -> None:
        outcome = self.query_one("#promote-outcome", Static)
        try:
            self.outcome = await self._run(self.report)
        except Exception as exc:  # noqa: BLE001 - every failure is shown, with what was undone
            self.finished = False
            self.outcome = str(exc) or type(exc).__name__
            outcome.update(Text(f"✖ {self.outcome}\nEsc closes.", style="bold red"))
            return
        self.finished = True
        outcome.update(Text(f"✔ {self.outcome}\nEsc closes.", style="green"))

    def action_escape(self) -> None:
        if self.finished is None:
            # Cancelled: the pipeline undoes its work before the worker ends.
            self.query_one("#promote-outcome", Static).update(Text("Cancelling: undoing what was done…", "yellow"))
            self.workers.cancel_group(self, "promote")
            self.finished = False
            self.outcome = "cancelled"
            return
        self.dismiss(bool(self.finished))
