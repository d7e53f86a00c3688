"""The startup baseline: a bare Textual app, a Header and a Static, nothing else.

    .venv/bin/python -m tests.bench._bare_app
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Header, Static


class BareApp(App[None]):
    TITLE = "Bare"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("bare textual app")


if __name__ == "__main__":
    BareApp().run()
