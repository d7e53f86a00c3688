"""The port-forward dialog (shift-f): remote port, local port, bind address, prefilled.

Dismisses with a `ForwardSpec`, or None on Esc. Nothing is started from here: the app
starts the forward and, when the local port is taken, opens the dialog again with the
reason and the next free port filled in.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from backends.forward_rows import ForwardTarget, spec_from
from backends.model import ForwardSpec


def parse_port(value: str, what: str) -> int | str:
    """A TCP port in `value`, or why it is not one."""
    text = value.strip()
    if not text.isdigit():
        return f"{what}: enter a port number"
    port = int(text)
    if not 1 <= port <= 65535:
        return f"{what}: a port is between 1 and 65535"
    return port


def parse_address(value: str, allow_remote: bool) -> str | tuple[str]:
    """The bind address, or (why not,). Non-loopback addresses expose the pod to the
    network: refused unless the config allows them (forwards.allow_remote_bind)."""
    text = value.strip() or "127.0.0.1"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (f"Address: {text!r} is not an IP address (127.0.0.1, ::1)",)
    if not address.is_loopback and not allow_remote:
        return (f"Address: {text} is not local; set forwards.allow_remote_bind: true to allow it",)
    return text


class ForwardScreen(ModalScreen[ForwardSpec | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="forward.cancel"),
    ]

    DEFAULT_CSS = """
    ForwardScreen { align: center middle; }
    ForwardScreen #forward { width: 76; height: auto; border: round $accent; background: $surface; padding: 1 2; }
    ForwardScreen Horizontal { height: auto; }
    ForwardScreen Label { width: 14; padding: 1 0 0 0; }
    ForwardScreen Input { width: 1fr; }
    ForwardScreen #forward-error { color: $error; height: auto; }
    ForwardScreen .hint { color: $text-muted; height: auto; }
    """

    def __init__(self, target: ForwardTarget, *, local_port: int | None = None, remote_port: int | None = None,
                 address: str = "127.0.0.1", error: str = "", allow_remote: bool = False) -> None:
        super().__init__()
        self.target = target
        self.remote = remote_port or (target.ports[0] if target.ports else None)
        self.local = local_port or target.local_port
        self.address = address
        self.initial_error = error
        self.allow_remote = allow_remote

    def compose(self) -> ComposeResult:
        with Vertical(id="forward"):
            yield Static(f"Port-forward {self.target.label}", id="forward-title", markup=False)
            ports = ", ".join(self.target.port_hints) or "none declared"
            what = "Service ports" if self.target.kind == "service" else "container ports"
            yield Static(f"{what}: {ports}", classes="hint", markup=False)
            with Horizontal():
                yield Label("Remote port")
                yield Input(str(self.remote or ""), id="forward-remote")
            with Horizontal():
                yield Label("Local port")
                yield Input(str(self.local), id="forward-local")
            with Horizontal():
                yield Label("Address")
                yield Input(self.address, id="forward-address")
            yield Static(self.initial_error, id="forward-error", markup=False)
            yield Static("Enter: start    Tab: next field    Esc: cancel", classes="hint")

    def on_mount(self) -> None:
        # A retry after "port in use" lands on the local port; a first open on the remote.
        self.set_focus(self.query_one("#forward-local" if self.initial_error else "#forward-remote", Input))
        # What the fields were opened with: their first Changed events are not edits.
        self._opened = {box.id: box.value for box in self.query(Input)}

    @property
    def error(self) -> str:
        return str(self.query_one("#forward-error", Static).content)

    def _value(self, id: str) -> str:
        return self.query_one(f"#{id}", Input).value

    def result(self) -> ForwardSpec | str:
        """The spec the fields say, or the first problem with them."""
        remote = parse_port(self._value("forward-remote"), "Remote port")
        if isinstance(remote, str):
            return remote
        local = parse_port(self._value("forward-local"), "Local port")
        if isinstance(local, str):
            return local
        address = parse_address(self._value("forward-address"), self.allow_remote)
        if isinstance(address, tuple):
            return address[0]
        return spec_from(self.target, remote, local, address)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        outcome = self.result()
        if isinstance(outcome, str):
            self.query_one("#forward-error", Static).update(outcome)
            return
        self.dismiss(outcome)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        # An edit clears the message; the fields being filled when the dialog opens
        # (with "port in use" shown on a retry) do not.
        if event.value != getattr(self, "_opened", {}).get(event.input.id, event.value):
            self.query_one("#forward-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)
