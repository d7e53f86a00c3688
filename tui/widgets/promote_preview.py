"""`p` on a Compose service: the promotion preview — what will be applied (YAML, secret
values masked), the readiness checklist and every Compose key not carried over, as a
searchable viewer. The plan is made off the event loop (the compose CLI resolves the
service); a compose file that does not parse or a missing service is shown in place.
`a` promotes (after a confirm), with the plan that is on screen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.binding import Binding

from tui.widgets.text_viewer import TextViewerScreen


class PromotePreviewScreen(TextViewerScreen):
    BINDINGS = [Binding("a", "apply", "Promote…", id="promote.apply")]

    def __init__(self, title: str, make_plan: Callable[[], Awaitable[Any]], render: Callable[[Any], str],
                 on_apply: Callable[[Any], None] | None) -> None:
        self.plan: Any = None

        async def load() -> str:
            self.plan = await make_plan()
            self.refresh_bindings()
            return render(self.plan)

        super().__init__(title, "", language="yaml", loader=load)
        self._on_apply = on_apply

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply":
            if self._on_apply is None:
                return False  # read-only: a preview only
            return True if self.plan is not None else None  # dimmed until the plan is there
        return True

    def action_apply(self) -> None:
        if self.plan is not None and self._on_apply is not None:
            self._on_apply(self.plan)
