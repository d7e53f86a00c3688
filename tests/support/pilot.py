"""Waiting on conditions in Pilot tests (never on fixed sleeps)."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable

from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.pilot import Pilot


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await pilot.pause(0.02)


def notifications(app) -> list[str]:  # noqa: ANN001
    return [n.message for n in app._notifications]


def key_event(key: str) -> events.Key:
    """The `events.Key` that `Pilot.press(key)` would send (same name/character rules)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def send_key(app, key: str) -> None:  # noqa: ANN001
    """Put a key event on the app's queue the way the terminal driver does: no waiting
    between keys, as when a person types fast (Pilot.press waits for idle after each)."""
    event = key_event(key)
    event.set_sender(app)
    app._driver.send_message(event)


def rendered_text(widget) -> str:  # noqa: ANN001
    """What the widget draws right now, as plain text lines (what a person reads)."""
    from textual.geometry import Region

    width, height = widget.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))
