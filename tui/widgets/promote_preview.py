"""`p` on a Compose service: the promotion preview — what will be applied (YAML, secret
values masked), the readiness checklist and every Compose key not carried over, as a
searchable viewer. The plan is made off the event loop (the compose CLI resolves the
service); a compose file that does not parse or a missing service is shown in place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tui.widgets.text_viewer import TextViewerScreen


class PromotePreviewScreen(TextViewerScreen):
    def __init__(self, title: str, make_text: Callable[[], Awaitable[str]]) -> None:
        super().__init__(title, "", language="yaml", loader=make_text)
