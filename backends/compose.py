"""The Compose adapter: Docker containers labelled by Compose, live from the events stream.

The docker SDK is synchronous, so every call to the engine runs in a thread; the
events stream is read by a dedicated thread that hands each event to the loop.
No polling: one full list per connection (the `Snapshot`), then only the
containers that events name are inspected again. When the stream ends (the daemon
stopped or restarted) the adapter says so, reconnects with back-off and lists
again, and the store diffs that fresh snapshot against what it holds.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import socket
import struct
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import docker
import docker.errors
import requests
import urllib3.exceptions
import yaml
from docker.types.daemon import CancellableStream

from backends.adapter import Action, ActionError, Adapter, ObjectRef, backoff_delays
from backends.describe import describe_container
from backends.logs import LogEnded, LogLine, LogOptions, LogTarget
from backends.logtext import LineAssembler, clean_text, parse_line
from backends.model import (
    PROBE_OUTPUT_CHARS,
    AdapterEvent,
    ConnState,
    Health,
    Instance,
    InstanceChanged,
    InstanceGone,
    Port,
    ProbeRun,
    RunState,
    Snapshot,
    Source,
    SourceStatus,
    WorkloadKey,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "unix:///var/run/docker.sock"

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"

# The daemon filters by label too, so other containers' events never cross the socket.
EVENT_FILTERS = {"type": ["container"], "label": [PROJECT_LABEL]}

# Container actions that can change what an `Instance` shows. exec_* are left out on
# purpose: dockerd emits three of them for every healthcheck probe (and more for every
# `docker exec`); `ProbeWatch` picks the one per probe that matters.
STATE_ACTIONS = frozenset(
    {
        "create", "start", "die", "stop", "kill", "restart", "pause", "unpause",
        "rename", "health_status", "oom", "update",
    }
)

# Bounds the parallel inspects of a snapshot below the SDK's connection pool (10).
_INSPECT_CONCURRENCY = 8
# A probe's end was announced before dockerd wrote its result (see ProbeWatch): ask again
# this much later, once. Never seen on the engine (64 of 64 probes under CPU load were
# already written), but dockerd logs exec_die before the probe's goroutine records it.
_PROBE_RECHECK_SECONDS = 0.3
# A crash-loop window's end is inspected this much after it, so that it is surely over.
_CRASH_LOOP_RECHECK_SLACK = 0.5
_PUMP_THREAD_NAME = "ferryman-docker-events"
_SHELL_SCRIPT = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"


# ---- inspect -> Instance (pure) -------------------------------------------------------


# States whose ExitCode means something: the last run ended (or is being retried).
_EXITED_STATES = frozenset({RunState.EXITED, RunState.DEAD, RunState.RESTARTING})


def instance_from_inspect(attrs: Mapping[str, Any], *, now: datetime | None = None) -> Instance | None:
    """Map `docker inspect` output to an `Instance`; None for containers that are not
    a Compose service's (no project label) or are one-off `run` containers. `now` (default:
    the clock) decides whether a container restarted a moment ago is still crash-looping."""
    config = attrs.get("Config") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    project = labels.get(PROJECT_LABEL)
    if not project or labels.get(ONEOFF_LABEL, "").lower() == "true":
        return None
    state_attrs = attrs.get("State") or {}
    name = str(attrs.get("Name") or "").lstrip("/")
    state = _run_state(state_attrs.get("Status"))
    exit_code = state_attrs.get("ExitCode") if state in _EXITED_STATES else None
    exit_code = exit_code if isinstance(exit_code, int) else None
    health, reason = container_health(attrs, now=now)
    return Instance(
        source=Source.COMPOSE,
        id=str(attrs.get("Id") or ""),
        name=name,
        workload=WorkloadKey(Source.COMPOSE, project, labels.get(SERVICE_LABEL) or name),
        state=state,
        health=health,
        image=str(config.get("Image") or attrs.get("Image") or ""),
        ports=_ports(attrs),
        created_at=parse_docker_time(attrs.get("Created")),
        started_at=parse_docker_time(state_attrs.get("StartedAt")),
        finished_at=parse_docker_time(state_attrs.get("FinishedAt")),
        restarts=_restart_count(attrs),
        exit_code=exit_code,
        oom_killed=bool(state_attrs.get("OOMKilled")),
        labels=tuple(sorted(labels.items())),
        number=_container_number(labels.get(NUMBER_LABEL)),
        status_text=_status_text(state, exit_code),
        health_reason=reason,
        probes=probe_runs(state_attrs.get("Health")),
    )


def _run_state(status: object) -> RunState:
    try:
        return RunState(str(status))
    except ValueError:
        return RunState.UNKNOWN


def _restart_count(attrs: Mapping[str, Any]) -> int:
    count = attrs.get("RestartCount")
    return count if isinstance(count, int) and count > 0 else 0


# ---- health (pure) -------------------------------------------------------------------------

# A running container that its restart policy brought back at least CRASH_LOOP_RESTARTS
# times and that started less than CRASH_LOOP_WINDOW ago is crash-looping, not healthy.
# Why these numbers: dockerd's restart back-off doubles from 100 ms up to one minute and
# is reset only by a run of 10 s or more, so a container caught in the loop spends most of
# its time `restarting` (always crash-looping, below) and comes up for moments; a minute up
# outlasts any back-off, so by then it has broken out of the loop and its healthcheck
# speaks for it again (the adapter re-inspects it when the minute is over, see
# `crash_loop_ends`). `docker start`/`restart` set RestartCount back to 0, so only the
# policy's own restarts count; one or two of them are a container that died and came
# back, not yet a loop.
CRASH_LOOP_RESTARTS = 3
CRASH_LOOP_WINDOW = timedelta(seconds=60)
# dockerd keeps the last five probe runs; an inspect holding more (made by hand, another
# engine) is cut to as many, so an Instance stays small whatever it is given.
_PROBES_KEPT = 5
# How much of a probe's first output line a one-line reason quotes.
_REASON_OUTPUT_CHARS = 120
# What dockerd 20.10 records (with exit code -1) for a probe still running at its timeout:
# "Health check exceeded timeout (1s)". The probe process is killed after that, and its
# exec_die (exit 127 or 137) comes after the record.
_TIMEOUT_OUTPUT = "Health check exceeded timeout"
# A probe's output lines, joined for one line of screen (ProbeRun.output holds no control
# characters, so the newlines between lines are shown as this).
_LINE_JOIN = " ⏎ "
# The healthcheck's default number of failures in a row before "unhealthy" (Retries 0).
_DEFAULT_RETRIES = 3


def container_health(attrs: Mapping[str, Any], *, now: datetime | None = None) -> tuple[Health, str]:
    """A container's health and the one line that says why, from its inspect.

    Never "healthy" without a healthcheck ("no healthcheck"); a restart loop outranks any
    probe result (the probes of a container that keeps dying say little); a stopped
    container is "stopped", with its exit (or OOM kill) as the reason."""
    state = attrs.get("State") or {}
    status = _run_state(state.get("Status"))
    restarts = _restart_count(attrs)
    exit_code = state.get("ExitCode")
    exit_code = exit_code if isinstance(exit_code, int) else None
    if status == RunState.RESTARTING:
        return Health.CRASH_LOOPING, f"restarting: {_exit_text(exit_code, state)}, {_plural(restarts, 'restart')}"
    if status in (RunState.EXITED, RunState.DEAD):
        # As `docker ps` says it; a clean stop (exit 0) needs no reason.
        if state.get("OOMKilled"):
            reason = _exit_text(exit_code, state)
        else:
            reason = f"exited ({exit_code})" if exit_code else ""
        if status == RunState.DEAD:
            reason = f"dead ({reason})" if reason else "dead"
        if reason and restarts:
            reason += f" after {_plural(restarts, 'restart')}"
        return Health.STOPPED, reason
    if status == RunState.CREATED:
        return Health.STOPPED, "created, never started"
    if status == RunState.REMOVING:
        return Health.STOPPED, "being removed"
    if status not in (RunState.RUNNING, RunState.PAUSED):
        return Health.UNKNOWN, f"unknown state: {state.get('Status')}" if state.get("Status") else ""
    if status == RunState.RUNNING and _crash_loop_until(attrs) > (now or datetime.now(UTC)):
        return Health.CRASH_LOOPING, f"{_plural(restarts, 'restart')}, the last one less than a minute ago"
    health, reason = _probe_health(state.get("Health"), (attrs.get("Config") or {}).get("Healthcheck"))
    if status == RunState.PAUSED:
        # Docker keeps probing a paused container (the probes fail to run): the probe
        # state is still the truth, and "paused" is why it will not serve meanwhile.
        reason = f"paused; {reason}" if reason else "paused"
    return health, reason


def _crash_loop_until(attrs: Mapping[str, Any]) -> datetime:
    """Until when a running container counts as crash-looping (the distant past if not)."""
    started = parse_docker_time((attrs.get("State") or {}).get("StartedAt"))
    if started is None or _restart_count(attrs) < CRASH_LOOP_RESTARTS:
        return datetime.min.replace(tzinfo=UTC)
    return started + CRASH_LOOP_WINDOW


def crash_loop_ends(instance: Instance, now: datetime) -> float | None:
    """Seconds until a running container that is crash-looping by the restart rule stops
    being so if nothing else happens, else None: no event marks that moment, so the
    adapter sets a timer to inspect it again then."""
    if instance.health != Health.CRASH_LOOPING or instance.state != RunState.RUNNING:
        return None
    if instance.started_at is None or instance.restarts < CRASH_LOOP_RESTARTS:
        return None
    return max((instance.started_at + CRASH_LOOP_WINDOW - now).total_seconds(), 0.0)


def _probe_health(health: Mapping[str, Any] | None, check: Mapping[str, Any] | None) -> tuple[Health, str]:
    """A running container's health from its healthcheck state (State.Health)."""
    if not health:
        # No State.Health: no healthcheck, or one disabled with ["NONE"].
        return Health.NO_CHECK, "no healthcheck"
    try:
        value = Health(str(health.get("Status")))
    except ValueError:
        value = Health.UNKNOWN
    log = [run for run in (health.get("Log") or []) if isinstance(run, Mapping)]
    last = log[-1] if log else None
    streak = health.get("FailingStreak")
    streak = streak if isinstance(streak, int) and streak > 0 else 0
    retries = (check or {}).get("Retries")
    retries = retries if isinstance(retries, int) and retries > 0 else _DEFAULT_RETRIES
    failed = last is not None and last.get("ExitCode") != 0
    match value:
        case Health.HEALTHY:
            # Still healthy while fewer than `retries` probes failed in a row: say so.
            return value, (f"last probe failed ({streak} of {retries} allowed): {_run_text(last)}" if failed else "")
        case Health.STARTING:
            if last is None:
                return value, "waiting for the first probe"
            return value, (f"last probe failed: {_run_text(last)}" if failed else "starting")
        case Health.UNHEALTHY:
            if last is None:
                return value, "healthcheck failing"
            times = f"{_plural(max(streak, 1), 'time')} in a row"
            if _timed_out(last):
                return value, f"healthcheck timed out{_timeout_text(last)} ({times})"
            return value, f"healthcheck failed {times}: {_run_text(last)}"
    # Only the three probe results are Docker's to say ("none" means no check at all).
    if str(health.get("Status")) == "none":
        return Health.NO_CHECK, "no healthcheck"
    return Health.UNKNOWN, f"unknown healthcheck status: {health.get('Status')}"


def _timed_out(run: Mapping[str, Any]) -> bool:
    return run.get("ExitCode") == -1 and str(run.get("Output") or "").startswith(_TIMEOUT_OUTPUT)


def _timeout_text(run: Mapping[str, Any]) -> str:
    """The " after 1s" of dockerd's "Health check exceeded timeout (1s)"."""
    output = str(run.get("Output") or "")
    inside = output[len(_TIMEOUT_OUTPUT):].strip()
    if inside.startswith("(") and inside.endswith(")") and len(inside) < 20:
        return f" after {inside[1:-1]}"
    return ""


def _run_text(run: Mapping[str, Any] | None) -> str:
    """One probe run in a few words: "exit 1 — <its first output line>"."""
    if run is None:
        return ""
    if _timed_out(run):
        return f"timed out{_timeout_text(run)}"
    code = run.get("ExitCode")
    line = _first_line(run.get("Output"))
    # -1: dockerd could not run the probe at all (exec failed: no such executable…).
    head = "could not run" if code == -1 else f"exit {code}"
    return f"{head} — {line}" if line else head


def _first_line(output: object) -> str:
    """The first non-blank line of a probe's output, cleaned and cut for a reason."""
    text = str(output or "")[: _REASON_OUTPUT_CHARS * 8]  # dockerd caps output at 4 KiB; a hand-made one may not be
    for raw in text.split("\n"):
        line = clean_text(raw).strip()
        if line:
            return line if len(line) <= _REASON_OUTPUT_CHARS else line[: _REASON_OUTPUT_CHARS - 1] + "…"
    return ""


def _exit_text(exit_code: int | None, state: Mapping[str, Any]) -> str:
    if state.get("OOMKilled"):
        return f"OOMKilled (exit {exit_code if exit_code is not None else 137})"
    return f"exit {exit_code}" if exit_code is not None else "exit unknown"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def probe_runs(health: Mapping[str, Any] | None) -> tuple[ProbeRun, ...]:
    """The healthcheck's last runs (State.Health.Log), oldest first, as dockerd keeps them;
    each output cleaned for the screen and cut to PROBE_OUTPUT_CHARS, so that a probe
    printing 100 KB or binary junk costs a few hundred characters of plain text."""
    if not health:
        return ()
    log = [run for run in (health.get("Log") or []) if isinstance(run, Mapping)][-_PROBES_KEPT:]
    return tuple(
        ProbeRun(
            started=parse_docker_time(run.get("Start")),
            ended=parse_docker_time(run.get("End")),
            exit_code=run["ExitCode"] if isinstance(run.get("ExitCode"), int) else -1,
            output=probe_output(run.get("Output")),
        )
        for run in log
    )


def probe_output(output: object) -> str:
    """A probe's output as one line of text: each line cleaned (escapes, control
    characters gone), blank lines dropped, the rest joined with " ⏎ ", cut to
    PROBE_OUTPUT_CHARS (the last character then "…")."""
    # Only what can still show is cleaned: past this, every character would be cut anyway
    # unless most of them are escapes or controls (binary junk), and then little is lost.
    text = str(output or "")[: PROBE_OUTPUT_CHARS * 8]
    parts: list[str] = []
    size = 0
    for raw in text.split("\n"):
        line = clean_text(raw).strip()
        if line:
            parts.append(line)
            size += len(line) + len(_LINE_JOIN)
            if size > PROBE_OUTPUT_CHARS:
                break
    joined = _LINE_JOIN.join(parts)
    return joined if len(joined) <= PROBE_OUTPUT_CHARS else joined[: PROBE_OUTPUT_CHARS - 1] + "…"


def _ports(attrs: Mapping[str, Any]) -> tuple[Port, ...]:
    """Published bindings plus exposed-only ports (host_port None), sorted.

    Docker 20.10 binds a published port on 0.0.0.0 and on ::; that is one port to a
    user, so the :: twin of a 0.0.0.0 binding is dropped."""
    found: set[Port] = set()
    published = ((attrs.get("NetworkSettings") or {}).get("Ports")) or {}
    for spec, bindings in published.items():
        parsed = _port_spec(spec)
        if parsed is None:
            continue
        number, proto = parsed
        for binding in bindings or [{}]:
            host_port = binding.get("HostPort")
            found.add(
                Port(
                    number,
                    proto,
                    host_ip=binding.get("HostIp") or None,
                    host_port=int(host_port) if host_port and str(host_port).isdigit() else None,
                )
            )
    for spec in (attrs.get("Config") or {}).get("ExposedPorts") or {}:
        parsed = _port_spec(spec)
        if parsed is not None and not any(
            (p.container_port, p.protocol) == parsed for p in found
        ):
            found.add(Port(*parsed))
    found = {
        p for p in found
        if not (p.host_ip == "::" and Port(p.container_port, p.protocol, "0.0.0.0", p.host_port) in found)
    }
    return tuple(
        sorted(found, key=lambda p: (p.container_port, p.protocol, p.host_port or 0, p.host_ip or ""))
    )


def _port_spec(spec: str) -> tuple[int, str] | None:
    """"8080/tcp" -> (8080, "tcp")."""
    number, _, proto = str(spec).partition("/")
    return (int(number), proto or "tcp") if number.isdigit() else None


def parse_docker_time(value: object) -> datetime | None:
    """Docker's RFC 3339 times (nanoseconds, "Z") as aware UTC datetimes.

    Docker writes "0001-01-01T00:00:00Z" for "never" (a container not yet started
    or not yet finished): that is None."""
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # keep microseconds: fromisoformat does not promise more digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _container_number(value: str | None) -> int:
    try:
        return int(value) if value is not None else 1
    except ValueError:
        return 1


def _status_text(state: RunState, exit_code: int | None) -> str:
    """docker-ps-like, without the durations (the view computes those from the times)."""
    match state:
        case RunState.RUNNING:
            return "Up"
        case RunState.PAUSED:
            return "Up (Paused)"
        case RunState.RESTARTING | RunState.EXITED:
            verb = state.value.capitalize()
            return verb if exit_code is None else f"{verb} ({exit_code})"
        case RunState.REMOVING:
            return "Removal In Progress"
        case _:
            return state.value.capitalize()


# ---- events (pure) ----------------------------------------------------------------------


def _compose_attributes(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The actor's attributes of a container event of a Compose service (not a one-off
    `compose run`), else None."""
    if event.get("Type", "container") != "container":
        return None
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    if not attributes.get(PROJECT_LABEL) or str(attributes.get(ONEOFF_LABEL, "")).lower() == "true":
        return None
    return attributes


def event_target(event: Mapping[str, Any]) -> tuple[str, bool] | None:
    """(container id, destroyed?) for an event that may change a Compose instance,
    else None. Health events read "health_status: healthy"; only the verb counts."""
    attributes = _compose_attributes(event)
    if attributes is None:
        return None
    action = str(event.get("Action") or event.get("status") or "")
    verb = action.split(":", 1)[0].strip()
    container_id = (event.get("Actor") or {}).get("ID") or event.get("id")
    if not container_id or (verb != "destroy" and verb not in STATE_ACTIONS):
        return None
    return str(container_id), verb == "destroy"


def exec_event(event: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
    """(verb, container id, exec id, command line) of an exec_create or exec_die event of
    a Compose container, else None. dockerd 20.10 names the command in exec_create
    ("exec_create: wget -q -O- http://…") and says only the exec's id and exit code in
    exec_die."""
    attributes = _compose_attributes(event)
    if attributes is None:
        return None
    action = str(event.get("Action") or event.get("status") or "")
    verb, _, command = action.partition(": ")
    container_id = (event.get("Actor") or {}).get("ID") or event.get("id")
    exec_id = attributes.get("execID")
    if verb not in ("exec_create", "exec_die") or not container_id or not exec_id:
        return None
    return verb, str(container_id), str(exec_id), command


def probe_command(attrs: Mapping[str, Any]) -> str | None:
    """The command line dockerd names in the exec_create event of each healthcheck probe
    of this container (None: it has no healthcheck). dockerd builds it as the probe's
    entrypoint, a space, its arguments joined by spaces: ["CMD", "true"] gives "true "
    (trailing space), ["CMD-SHELL", "x"] gives "/bin/sh -c x" (the container's SHELL, if
    set, instead of /bin/sh -c)."""
    config = attrs.get("Config") or {}
    test = [str(part) for part in ((config.get("Healthcheck") or {}).get("Test") or [])]
    if not (attrs.get("State") or {}).get("Health") or len(test) < 2:
        return None  # no probe runs: none configured, or ["NONE"]
    if test[0] == "CMD":
        argv = test[1:]
    elif test[0] == "CMD-SHELL":
        argv = [*(config.get("Shell") or ["/bin/sh", "-c"]), test[1]]
    else:
        return None
    return f"{argv[0]} {' '.join(argv[1:])}"


class ProbeWatch:
    """Which exec events are healthcheck probes, so that `Instance.probes` stays current
    with one inspect per probe and without polling.

    What dockerd 20.10 emits per probe (verified on the engine): exec_create and
    exec_start, both naming the command, then exec_die (execID, exitCode) when it ends;
    health_status only when the status changes. The probe's result is written to
    State.Health.Log around its exec_die: just after it for a probe that exits (the race
    is the daemon's; one recheck covers it, see `inspected`), before it for a probe that
    timed out (exit code -1, "Health check exceeded timeout (1s)", then the kill). A probe
    that cannot even start (no such executable) has no exec_die at all: the next probe's
    exec_create is the first sign that it ended.

    So: exec_die of a probe → inspect; exec_create of a probe while the previous one never
    died → inspect. A probe is an exec whose command is the container's healthcheck
    command; other execs (`docker exec`, a shell) cost a dict entry and no inspect. Pure
    bookkeeping, no I/O: the adapter feeds it events and inspects."""

    # Execs created and not yet died (a shell left open never dies): the oldest are forgotten.
    MAX_EXECS = 512

    def __init__(self) -> None:
        # Container id -> its probe's command line (None: no healthcheck), from its last inspect.
        self._commands: dict[str, str | None] = {}
        # Container id -> End of the newest probe run in its last inspect.
        self._last_end: dict[str, object] = {}
        self._execs: OrderedDict[str, tuple[str, str]] = OrderedDict()  # exec id -> (container id, command)
        self._open: dict[str, str] = {}  # container id -> exec id of its probe running now
        self._probe_ended: set[str] = set()  # containers to inspect because a probe ended

    def on_exec(self, event: Mapping[str, Any]) -> str | None:
        """The container to inspect because of this event, if any."""
        parsed = exec_event(event)
        if parsed is None:
            return None
        verb, container_id, exec_id, command = parsed
        if verb == "exec_create":
            self._execs[exec_id] = (container_id, command)
            while len(self._execs) > self.MAX_EXECS:
                self._execs.popitem(last=False)
            if not self._is_probe(container_id, command):
                return None
            previous = self._open.get(container_id)
            self._open[container_id] = exec_id
            # The previous probe never reported its end: it could not start, and its
            # result (exit -1, why) is in the log now.
            return self._ended(container_id) if previous is not None else None
        created = self._execs.pop(exec_id, None)
        if created is None:
            # Its exec_create came before this stream did: a probe if the container has a check.
            if self._commands.get(container_id, "") is None:
                return None
        elif not self._is_probe(container_id, created[1]):
            return None
        if self._open.get(container_id) == exec_id:
            del self._open[container_id]
        return self._ended(container_id)

    def _is_probe(self, container_id: str, command: str) -> bool:
        if container_id not in self._commands:
            # Not inspected yet (it was just created): it is about to be; count the exec
            # as a probe rather than miss one.
            return True
        expected = self._commands[container_id]
        return expected is not None and command.strip() == expected.strip()

    def _ended(self, container_id: str) -> str:
        self._probe_ended.add(container_id)
        return container_id

    def inspected(self, container_id: str, attrs: Mapping[str, Any] | None) -> bool:
        """Record what an inspect of the container showed (None: it is gone). True when the
        inspect was asked for by a probe's end but the probe's result is not in it yet, so
        that it is worth asking once more a moment later."""
        asked_by_probe = container_id in self._probe_ended
        self._probe_ended.discard(container_id)
        if attrs is None:
            self.forget(container_id)
            return False
        health = (attrs.get("State") or {}).get("Health") or {}
        log = health.get("Log") or []
        end = log[-1].get("End") if log and isinstance(log[-1], Mapping) else None
        unchanged = container_id in self._last_end and self._last_end[container_id] == end
        self._commands[container_id] = probe_command(attrs)
        self._last_end[container_id] = end
        return asked_by_probe and unchanged and self._commands[container_id] is not None

    def forget(self, container_id: str) -> None:
        self._commands.pop(container_id, None)
        self._last_end.pop(container_id, None)
        self._open.pop(container_id, None)
        self._probe_ended.discard(container_id)


# ---- errors (pure) ----------------------------------------------------------------------


def describe_docker_error(endpoint: str, exc: BaseException) -> str:
    """The banner text for a failed connection: where, and the cause in plain words."""
    return f"Docker: unreachable at {endpoint} — {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    causes = list(_causes(exc))
    # The innermost cause is the most precise (requests wraps urllib3 wraps the OSError).
    for cause in reversed(causes):
        match cause:
            case PermissionError():
                return "permission denied"
            case FileNotFoundError():
                return "socket not found (is dockerd running?)"
            case ConnectionRefusedError():
                return "connection refused (daemon not running)"
            case (
                TimeoutError()
                | requests.Timeout()
                | urllib3.exceptions.TimeoutError()
            ):
                return "timed out"
            case (
                ConnectionResetError()
                | ConnectionAbortedError()
                | BrokenPipeError()
                | http.client.IncompleteRead()
            ):
                return "connection lost"
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    for cause in causes:
        if isinstance(cause, urllib3.exceptions.ProtocolError):
            return "connection lost"
        if isinstance(cause, docker.errors.APIError):
            return f"engine error: {cause.explanation or cause}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps, outermost first: explicit causes,
    implicit contexts, urllib3's `.reason` and exceptions passed as arguments."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in inner if isinstance(e, BaseException))


# ---- threads -----------------------------------------------------------------------------

T = TypeVar("T")


async def _in_thread(call: Callable[[], T], discard: Callable[[T], None]) -> T:
    """Run `call` in a thread; if we are cancelled meanwhile, `discard` its result when it
    arrives, so a client or stream opened for a caller that left is not leaked."""
    future = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(
            lambda f: discard(f.result()) if not f.cancelled() and f.exception() is None else None
        )
        raise


class _StreamEnded:
    """Put on the queue by the pump thread when the events stream is over."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


@dataclass(frozen=True, slots=True)
class _Recheck:
    """Put on the queue by a timer: inspect this container again (see `_Connection.recheck`)."""

    container_id: str


def _pump(events: CancellableStream, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """Thread body: forward each decoded event to the loop, then say the stream ended."""
    end = _StreamEnded(None)
    try:
        for event in events:
            loop.call_soon_threadsafe(queue.put_nowait, event)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        return
    except Exception as exc:  # noqa: BLE001 - whatever broke the stream is reported by the loop
        end = _StreamEnded(exc)
    try:
        loop.call_soon_threadsafe(queue.put_nowait, end)
    except RuntimeError:
        pass


def _close_stream(events: CancellableStream) -> None:
    """Shut the stream's socket so a thread blocked reading it returns at once."""
    try:
        events.close()
    except Exception:  # noqa: BLE001 - already closed or half-open: nothing left to release
        log.debug("closing the events stream failed", exc_info=True)


def _close_client(client: docker.DockerClient) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001
        log.debug("closing a docker client failed", exc_info=True)


class _Connection:
    """One live link to the engine: a client, its events stream, the thread pumping it."""

    def __init__(self, client: docker.DockerClient, version: str) -> None:
        self.client = client
        self.version = version
        self.queue: asyncio.Queue[dict | _StreamEnded | _Recheck] = asyncio.Queue()
        self.events: CancellableStream | None = None
        self.pump: threading.Thread | None = None
        self.probes = ProbeWatch()
        # Container id -> (when, timer) of its next planned inspect: at most one each.
        self._rechecks: dict[str, tuple[float, asyncio.TimerHandle]] = {}

    async def open_events(self) -> None:
        self.events = await _in_thread(
            lambda: self.client.api.events(decode=True, filters=EVENT_FILTERS), _close_stream
        )
        self.pump = threading.Thread(
            target=_pump,
            args=(self.events, asyncio.get_running_loop(), self.queue),
            name=_PUMP_THREAD_NAME,
            daemon=True,
        )
        self.pump.start()

    def recheck(self, container_id: str, delay: float) -> None:
        """Inspect the container again in `delay` seconds (through the queue, like an
        event). An earlier planned inspect is kept instead: every inspect plans what it
        needs anew, so the later one is planned again after it."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        planned = self._rechecks.get(container_id)
        if planned is not None:
            if planned[0] <= when:
                return
            planned[1].cancel()
        self._rechecks[container_id] = (when, loop.call_at(when, self._due, container_id))

    def forget(self, container_id: str) -> None:
        """The container is gone: nothing planned for it any more."""
        planned = self._rechecks.pop(container_id, None)
        if planned is not None:
            planned[1].cancel()

    def _due(self, container_id: str) -> None:
        self._rechecks.pop(container_id, None)
        self.queue.put_nowait(_Recheck(container_id))

    def close(self) -> None:
        """Local socket work only, so it is safe to call on the loop."""
        for _, timer in self._rechecks.values():
            timer.cancel()
        self._rechecks.clear()
        if self.events is not None:
            _close_stream(self.events)
        _close_client(self.client)


# ---- the adapter --------------------------------------------------------------------------


class ComposeAdapter(Adapter):
    source = Source.COMPOSE

    def __init__(
        self,
        host: str | None = None,
        *,
        reconnect_min: float = 0.5,
        reconnect_max: float = 5.0,
        stop_timeout: int = 10,
        api_timeout: float = 10.0,
    ) -> None:
        self._endpoint = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        # From the environment, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply too.
        self._from_env = host is None and "DOCKER_HOST" in os.environ
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._stop_timeout = stop_timeout
        self._api_timeout = api_timeout
        self._connections: set[_Connection] = set()
        self._action_client: docker.DockerClient | None = None
        self._action_client_lock = asyncio.Lock()

    @property
    def endpoint(self) -> str:
        return self._endpoint

    # ---- the stream -------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[AdapterEvent]:
        yield self._status(ConnState.CONNECTING)
        delays = backoff_delays(self._reconnect_min, self._reconnect_max)
        while True:
            try:
                conn = await self._connect()
            except Exception as exc:  # noqa: BLE001 - every failure is shown, then retried
                yield self._unreachable(exc)
                await asyncio.sleep(next(delays))
                continue
            delays = backoff_delays(self._reconnect_min, self._reconnect_max)
            self._connections.add(conn)
            try:
                yield self._status(ConnState.CONNECTED, version=conn.version)
                async for event in self._watch(conn):
                    yield event
                lost = self._status(ConnState.UNREACHABLE, message=self._message("connection lost"))
            except Exception as exc:  # noqa: BLE001 - the daemon went away mid-way: reconnect
                lost = self._unreachable(exc)
            finally:
                self._connections.discard(conn)
                conn.close()
            log.info("Docker events stream at %s ended: %s", self._endpoint, lost.message)
            yield lost
            await asyncio.sleep(next(delays))

    async def _connect(self) -> _Connection:
        def connect() -> _Connection:
            client = self._new_client()
            try:
                client.ping()
                version = str(client.version().get("Version") or "")
            except BaseException:
                _close_client(client)
                raise
            return _Connection(client, version)

        return await _in_thread(connect, lambda conn: conn.close())

    async def _watch(self, conn: _Connection) -> AsyncIterator[AdapterEvent]:
        """Snapshot, then changes, until the events stream ends."""
        # Events first: whatever happens while we list is queued, not lost.
        await conn.open_events()
        yield Snapshot(Source.COMPOSE, await self._list(conn))
        async for event in self._changes(conn):
            yield event

    async def _list(self, conn: _Connection) -> tuple[Instance, ...]:
        client = conn.client
        summaries = await asyncio.to_thread(
            client.api.containers, all=True, filters={"label": PROJECT_LABEL}
        )
        limit = asyncio.Semaphore(_INSPECT_CONCURRENCY)

        async def inspect(container_id: str) -> Instance | None:
            async with limit:
                attrs = await asyncio.to_thread(_inspect_or_none, client, container_id)
            return self._mapped(conn, container_id, attrs) if attrs is not None else None

        found = await asyncio.gather(*(inspect(s["Id"]) for s in summaries))
        return tuple(i for i in found if i is not None)

    async def _changes(self, conn: _Connection) -> AsyncIterator[AdapterEvent]:
        """Resolve queued events one container at a time, latest state only.

        Events that arrive while a container is being inspected are absorbed before
        the next one is picked, so a burst for one container costs one inspect."""
        pending: dict[str, bool] = {}  # container id -> destroyed; in arrival order
        ended: _StreamEnded | None = None
        while True:
            if not pending and ended is None:
                ended = _absorb(await conn.queue.get(), pending, conn.probes)
            while not conn.queue.empty():
                ended = _absorb(conn.queue.get_nowait(), pending, conn.probes) or ended
            if pending:
                container_id = next(iter(pending))
                destroyed = pending.pop(container_id)
                yield await self._resolve(conn, container_id, destroyed)
            elif ended is not None:
                if ended.error is not None:
                    raise ended.error
                return

    async def _resolve(self, conn: _Connection, container_id: str, destroyed: bool) -> InstanceChanged | InstanceGone:
        attrs = None if destroyed else await asyncio.to_thread(_inspect_or_none, conn.client, container_id)
        instance = self._mapped(conn, container_id, attrs)
        if instance is None:
            conn.forget(container_id)
            return InstanceGone(Source.COMPOSE, container_id)
        return InstanceChanged(instance)

    def _mapped(self, conn: _Connection, container_id: str, attrs: Mapping[str, Any] | None) -> Instance | None:
        """An inspect → its Instance, and the inspects it calls for later: once more in a
        moment when a probe's end was announced before its result was written, and when a
        crash-loop window closes (no event marks that moment)."""
        if conn.probes.inspected(container_id, attrs):
            conn.recheck(container_id, _PROBE_RECHECK_SECONDS)
        now = datetime.now(UTC)
        instance = instance_from_inspect(attrs, now=now) if attrs is not None else None
        if instance is not None and (ends := crash_loop_ends(instance, now)) is not None:
            conn.recheck(container_id, ends + _CRASH_LOOP_RECHECK_SLACK)
        return instance

    def _status(self, state: ConnState, *, version: str | None = None, message: str | None = None) -> SourceStatus:
        return SourceStatus(Source.COMPOSE, state, self._endpoint, version=version, message=message)

    def _message(self, reason: str) -> str:
        return f"Docker: unreachable at {self._endpoint} — {reason}"

    def _unreachable(self, exc: BaseException) -> SourceStatus:
        if not isinstance(
            exc, (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError, OSError)
        ):
            log.exception("unexpected error in the Compose adapter", exc_info=exc)
        return self._status(ConnState.UNREACHABLE, message=describe_docker_error(self._endpoint, exc))

    # ---- actions ----------------------------------------------------------------------

    def supports(self, action: Action) -> bool:
        return action in (Action.RESTART, Action.STOP, Action.START)

    async def perform(self, action: Action, instances: Sequence[Instance]) -> None:
        if not self.supports(action):
            raise ActionError(f"{action} is not available for Compose containers")
        client = await self._client_for_actions()
        results = await asyncio.gather(
            *(asyncio.to_thread(self._act, client, action, inst) for inst in instances),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, ActionError):
                raise failure
        if failures:
            raise ActionError("; ".join(str(f) for f in failures))

    def _act(self, client: docker.DockerClient, action: Action, instance: Instance) -> None:
        """Thread body for one container; every failure becomes a readable ActionError."""
        try:
            match action:
                case Action.RESTART:
                    client.api.restart(instance.id, timeout=self._stop_timeout)
                case Action.STOP:
                    client.api.stop(instance.id, timeout=self._stop_timeout)
                case Action.START:
                    client.api.start(instance.id)
        except docker.errors.NotFound:
            raise ActionError(f"container {instance.name} no longer exists") from None
        except docker.errors.APIError as exc:
            raise ActionError(f"{action} {instance.name}: {exc.explanation or exc}") from exc
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            raise ActionError(f"{action} {instance.name}: {describe_docker_error(self._endpoint, exc)}") from exc

    async def _client_for_actions(self) -> docker.DockerClient:
        """A client of its own, so actions work whatever state the stream is in."""
        async with self._action_client_lock:
            if self._action_client is None:
                try:
                    self._action_client = await _in_thread(self._new_client, _close_client)
                except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
                    raise ActionError(describe_docker_error(self._endpoint, exc)) from exc
            return self._action_client

    def _new_client(self) -> docker.DockerClient:
        """Thread body: the constructor asks the engine for its API version, so it is I/O."""
        _probe_unix_socket(self._endpoint, self._api_timeout)
        if self._from_env:
            return docker.DockerClient.from_env(timeout=self._api_timeout)
        return docker.DockerClient(base_url=self._endpoint, timeout=self._api_timeout)

    async def manifest(self, ref: ObjectRef) -> str:
        """`docker inspect` of the container, as YAML."""
        return yaml.safe_dump(await self._inspect(ref), sort_keys=False, allow_unicode=True)

    async def describe(self, ref: ObjectRef) -> str:
        return describe_container(await self._inspect(ref))

    async def _inspect(self, ref: ObjectRef) -> dict:
        client = await self._client_for_actions()
        try:
            attrs = await asyncio.to_thread(_inspect_or_none, client, ref.name)
        except docker.errors.APIError as exc:
            raise ActionError(f"inspect {ref.name}: {exc.explanation or exc}") from exc
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            raise ActionError(f"inspect {ref.name}: {describe_docker_error(self._endpoint, exc)}") from exc
        if attrs is None:
            raise ActionError(f"container {ref.name} no longer exists")
        return attrs

    # ---- logs -------------------------------------------------------------------------

    async def logs(self, target: LogTarget, options: LogOptions) -> AsyncIterator[list[LogLine] | LogEnded]:
        """The container's log, streamed from the engine and read by a thread of its own
        (`_LogPump`) in batches of whatever arrived meanwhile; closing this iterator shuts
        the stream's socket and waits for the thread, so no request outlives its reader."""
        container_id = target.instance.id
        try:
            client = await self._client_for_actions()
            attrs = await asyncio.to_thread(_inspect_or_none, client, container_id)
        except ActionError as exc:
            yield LogEnded(str(exc))
            return
        except _DOCKER_FAULTS as exc:
            yield LogEnded(describe_docker_error(self._endpoint, exc))
            return
        if attrs is None:
            yield LogEnded("container removed", final=True)
            return
        tty = bool((attrs.get("Config") or {}).get("Tty"))
        started = (attrs.get("State") or {}).get("StartedAt")
        params = docker_log_params(options, datetime.now(UTC))
        try:
            response = await _in_thread(
                lambda: _open_logs(client, container_id, params, self._api_timeout), _close_response
            )
        except docker.errors.NotFound:
            yield LogEnded("container removed", final=True)
            return
        except docker.errors.APIError as exc:
            # A logging driver that cannot be read back ("none", "syslog") will not change.
            final = exc.is_client_error() or exc.status_code == 501
            yield LogEnded(f"no logs: {exc.explanation or exc}", final=final)
            return
        except _DOCKER_FAULTS as exc:
            yield LogEnded(describe_docker_error(self._endpoint, exc))
            return
        pump = _LogPump(response, target.label, tty=tty)
        try:
            while (batch := await pump.next_batch()) is not None:
                yield batch
        finally:
            await pump.close()
        if pump.error is not None:
            yield LogEnded(f"stream cut: {_reason(pump.error)}")
        elif options.follow:
            # The engine ends a follow when the container stops, or when it goes away.
            try:
                attrs = await asyncio.to_thread(_inspect_or_none, client, container_id)
            except _DOCKER_FAULTS as exc:
                yield LogEnded(f"stream cut: {_reason(exc)}")
                return
            yield log_end_of(attrs, started)

    def shell_command(self, instance: Instance) -> list[str]:
        # A fixed script: nothing from names or labels reaches a shell.
        # With the endpoint from the environment the CLI reads it (and its TLS settings) too.
        target = [] if self._from_env else ["-H", self._endpoint]
        return ["docker", *target, "exec", "-it", instance.id, "sh", "-c", _SHELL_SCRIPT]

    async def close(self) -> None:
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()
        if self._action_client is not None:
            _close_client(self._action_client)
            self._action_client = None


def _probe_unix_socket(endpoint: str, timeout: float) -> None:
    """Raise the OSError of an unusable unix socket before docker-py tries it: docker-py
    leaks the socket of a failed connect, one per retry for as long as the daemon is down."""
    if endpoint.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            probe.connect(endpoint.removeprefix("unix://"))


def _inspect_or_none(client: docker.DockerClient, container_id: str) -> dict | None:
    """Thread body: the container's inspect, or None when it is already gone."""
    try:
        return client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return None


def _absorb(
    item: dict | _StreamEnded | _Recheck, pending: dict[str, bool], probes: ProbeWatch | None = None
) -> _StreamEnded | None:
    """Fold one queued item into `pending`; return it if it marks the stream's end."""
    if isinstance(item, _StreamEnded):
        return item
    if isinstance(item, _Recheck):
        pending[item.container_id] = pending.get(item.container_id, False)
        return None
    target = event_target(item)
    if target is None and probes is not None:
        probed = probes.on_exec(item)
        target = (probed, False) if probed is not None else None
    if target is not None:
        container_id, destroyed = target
        pending[container_id] = pending.get(container_id, False) or destroyed
    return None


# ---- logs ----------------------------------------------------------------------------------

_DOCKER_FAULTS = (docker.errors.DockerException, requests.RequestException, OSError)
_LOG_THREAD_NAME = "ferryman-docker-logs"
# Bytes the reader thread read that the loop has not decoded yet; past this the thread
# stops reading (the engine keeps the rest of the log) until the loop catches up.
_LOG_BACKLOG = 4 * 2**20
_LOG_READ_SIZE = 256 * 1024
# The loop decodes at most this much per step (~160 lines of 100 bytes, ~1 ms), then
# lets the UI run: a backlog is worked off between key presses and repaints.
_LOG_SLICE = 16 * 1024
_LOG_JOIN_SECONDS = 5.0
_FRAME_HEADER = 8  # Docker's multiplexed stream: [stream, 0, 0, 0, size (4 bytes, big endian)]
_FRAME = struct.Struct(">BxxxL")
_NEWLINE, _CR = ord("\n"), ord("\r")
_STREAMS = {1: "stdout", 2: "stderr"}


def docker_log_params(options: LogOptions, now: datetime) -> dict[str, str]:
    """The query of `GET /containers/ID/logs` for `options` (always timestamped)."""
    params = {
        "stdout": "1",
        "stderr": "1",
        "timestamps": "1",
        "follow": "1" if options.follow else "0",
        "tail": str(options.tail) if options.tail is not None else "all",
    }
    since = options.since_time(now)
    if since is not None:
        params["since"] = f"{max(since.timestamp(), 0.0):.6f}"  # the engine takes fractions
    return params


def _open_logs(client: docker.DockerClient, container_id: str, params: Mapping[str, str], timeout: float) -> requests.Response:
    """Thread body: the log request, its body left to stream. The SDK's own `logs()`
    reads it two small reads per line (a third of the engine's pace) and drops which
    stream a line came from; this reads it in large pieces and keeps stdout/stderr.
    No read timeout: a quiet container is not a dead stream."""
    api = client.api
    url = f"{api.base_url}/v{api.api_version}/containers/{quote(container_id, safe='')}/logs"
    response = api.get(url, params=params, stream=True, timeout=(timeout, None))
    try:
        response.raise_for_status()
    except requests.HTTPError as exc:
        response.close()
        docker.errors.create_api_error_from_http_exception(exc)  # raises NotFound / APIError
    return response


def _close_response(response: requests.Response) -> None:
    """Shut a streamed response's socket (the SDK's CancellableStream knows where it is),
    so that a thread blocked reading it returns at once."""
    _close_stream(CancellableStream(iter(()), response))
    response.close()


def log_end_of(attrs: Mapping[str, Any] | None, started_at: object) -> LogEnded:
    """Why a followed container's log ended, from its inspect right after the end
    (`started_at`: its State.StartedAt when the stream was opened)."""
    if attrs is None:
        return LogEnded("container removed", final=True)
    state = attrs.get("State") or {}
    if state.get("Running") and not state.get("Restarting"):
        if state.get("StartedAt") != started_at:
            return LogEnded("container restarted")
        return LogEnded("stream ended by the engine")
    if state.get("Status") == "created":
        return LogEnded("container not started")
    code = state.get("ExitCode")
    detail = [str(code)] if isinstance(code, int) else []
    if state.get("OOMKilled"):
        detail.append("OOMKilled")
    return LogEnded(f"container exited ({', '.join(detail)})" if detail else "container exited")


def _without_stamp(frame: bytes) -> bytes:
    """A continuation of a long line: the engine splits lines at 16 KiB into entries
    that each carry a timestamp; the ones after the first lose theirs here."""
    space = frame.find(b" ", 0, 40)
    return frame[space + 1 :] if space >= 20 and frame[:4].isdigit() else frame


class _Dechunker:
    """HTTP chunked transfer coding, undone: raw body bytes in (split anywhere), the
    body's own bytes out; `done` after the last (empty) chunk.

    The engine sends each log entry as a chunk of its own, and http.client's `read1`
    returns at most one chunk: one read, one GIL round trip and a few Python layers per
    line, a fifth of the engine's pace. Reading the socket in large pieces and undoing the
    framing here costs one short step per entry instead."""

    def __init__(self) -> None:
        self._partial = b""  # a chunk-size line cut by the end of a piece
        self._left = 0  # data bytes of the current chunk still to come
        self._skip = 0  # bytes of the CRLF after the current chunk's data still to come
        self.done = False  # the last chunk was read: nothing after it belongs to the body

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        if self._partial:
            data, self._partial = self._partial + data, b""
        parts: list[bytes] = []
        pos, end = 0, len(data)
        left, skip = self._left, self._skip
        find = data.find
        while pos < end:
            if left:  # inside a chunk's data
                stop = pos + left
                if stop > end:
                    parts.append(data[pos:])
                    left = stop - end
                    break
                parts.append(data[pos:stop])
                pos, left, skip = stop, 0, 2
                continue
            if skip:  # the CRLF after a chunk's data
                taken = min(skip, end - pos)
                pos += taken
                skip -= taken
                continue
            line_end = find(b"\n", pos)
            if line_end < 0:
                self._partial = data[pos:]
                break
            try:
                size = int(data[pos:line_end], 16)  # int() ignores the CR
            except ValueError:  # chunk extensions (";name=value"), which no engine sends
                size = int(data[pos:line_end].split(b";", 1)[0], 16)
            pos = line_end + 1
            if size == 0:  # the last chunk: its trailer is not read, the body is over
                self.done = True
                break
            # The common case, a whole chunk and its CRLF in this piece: one step.
            stop = pos + size
            if stop + 2 <= end:
                parts.append(data[pos:stop])
                pos = stop + 2
            else:
                left = size
        self._left, self._skip = left, skip
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _body_source(response: requests.Response) -> tuple[Callable[[int], bytes], _Dechunker | None]:
    """How to read the streamed body of `response` in large pieces: `(read, dechunker)`.
    `read(size)` returns whatever has arrived (up to `size` bytes; b"" at the end);
    when the body is chunked and untouched (always, from the engine) it reads the socket
    file itself and the pieces are to be fed to `dechunker`; otherwise (None) urllib3's
    `read1` decodes them, a chunk at a time."""
    raw = response.raw
    http_response = getattr(raw, "_fp", None)
    socket_file = getattr(http_response, "fp", None)
    if (
        isinstance(http_response, http.client.HTTPResponse)
        and http_response.chunked
        and http_response.chunk_left is None  # nothing of the body was read yet
        and not response.headers.get("Content-Encoding")
        and hasattr(socket_file, "read1")
    ):
        return socket_file.read1, _Dechunker()
    return raw.read1, None


class _Demuxer:
    """Docker's multiplexed log stream (containers without TTY) → `LogLine`s.

    Each frame is one log entry: a timestamp, a space, the text. An entry without a
    newline is the first part of a long line, continued (with a timestamp of its own)
    by the next entry of the same stream."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._pending = b""
        self._assemblers = {name: LineAssembler() for name in _STREAMS.values()}
        self._continuing = {name: False for name in _STREAMS.values()}

    def feed(self, data: bytes) -> list[LogLine]:
        if self._pending:
            data, self._pending = self._pending + data, b""
        source, streams, parse = self._source, _STREAMS, parse_line
        assemblers, continuing = self._assemblers, self._continuing
        header = _FRAME.unpack_from
        lines: list[LogLine] = []
        pos, size = 0, len(data)
        while size - pos >= _FRAME_HEADER:
            kind, length = header(data, pos)
            start = pos + _FRAME_HEADER
            end = start + length
            if end > size:
                break
            pos = end
            name = streams.get(kind, "stdout")
            if (
                # The common case: an entry that is one whole line, and no line of its
                # stream pending (that is what `continuing` says). The assembler's limit
                # needs no check: the engine splits entries at 16 KiB.
                length > 1
                and data[end - 1] == _NEWLINE
                and not continuing[name]
                and data.find(b"\n", start, end - 1) < 0
            ):
                if data[end - 2] == _CR:
                    end -= 1
                lines.append(parse(data[start : end - 1], source, stream=name))
                continue
            frame = data[start:end]
            if continuing[name]:
                frame = _without_stamp(frame)
            continuing[name] = not frame.endswith(b"\n")
            lines.extend(parse(raw, source, stream=name) for raw in assemblers[name].split(frame))
        if pos < size:
            self._pending = data[pos:]
        return lines

    def flush(self) -> list[LogLine]:
        return [
            parse_line(raw, self._source, stream=name)
            for name, assembler in self._assemblers.items()
            for raw in assembler.flush()
        ]


class _TtyReader:
    """A TTY container's log: one stream of bytes, stdout and stderr merged by the terminal."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._assembler = LineAssembler()

    def feed(self, data: bytes) -> list[LogLine]:
        source = self._source
        return [parse_line(raw, source) for raw in self._assembler.split(data)]

    def flush(self) -> list[LogLine]:
        return [parse_line(raw, self._source) for raw in self._assembler.flush()]


class _LogPump:
    """One container's log stream. A thread reads the socket in large pieces and does
    nothing else (it holds the GIL only to take the bytes); the loop decodes them — HTTP
    chunks, Docker frames, lines, `LogLine`s — a slice at a time. Parsing a flood in the
    thread would make it compete with the loop for the GIL, and every handover of the GIL
    costs the UI a wait; here the parsing takes turns with the UI's own work instead."""

    def __init__(self, response: requests.Response, source: str, *, tty: bool) -> None:
        self._response = response
        self._read, self._dechunker = _body_source(response)
        self._decoder: _Demuxer | _TtyReader = _TtyReader(source) if tty else _Demuxer(source)
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._lock = threading.Condition()
        self._pieces: deque[bytes] = deque()  # read, not decoded yet
        self._queued = 0  # their bytes
        self._woken = False  # a wake-up is on its way to the loop
        self._done = False  # the thread read its last piece
        self._ended = False  # the loop has decoded everything
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=_LOG_THREAD_NAME, daemon=True)
        self._thread.start()

    async def next_batch(self) -> list[LogLine] | None:
        """The lines of the next slice of what was read (waiting for some); None at the end."""
        while not self._ended:
            # Whatever the reader brought, the UI gets a turn between two slices.
            await asyncio.sleep(0)
            self._ready.clear()
            with self._lock:
                data = self._take(_LOG_SLICE)
                self._woken = False
                more = bool(self._pieces)
                done = self._done and not more
                self._lock.notify_all()
            lines = self._decode(data) if data else []
            if done or (self._dechunker is not None and self._dechunker.done):
                lines += self._end()
            if lines:
                return lines
            if not more and not self._ended:
                await self._ready.wait()
        return None

    def _take(self, size: int) -> bytes:
        """Up to `size` bytes of the pieces read (under the lock)."""
        pieces = self._pieces
        taken: list[bytes] = []
        room = size
        while pieces and room > 0:
            piece = pieces.popleft()
            if len(piece) > room:
                pieces.appendleft(piece[room:])
                piece = piece[:room]
            taken.append(piece)
            room -= len(piece)
        self._queued -= size - room
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def _decode(self, data: bytes) -> list[LogLine]:
        if self._dechunker is not None:
            data = self._dechunker.feed(data)
        return self._decoder.feed(data) if data else []

    def _end(self) -> list[LogLine]:
        """The body is over (its last chunk, or the connection's end): the last line
        without newline, and whether the end came too soon."""
        self._ended = True
        if self._dechunker is not None:
            if self._dechunker.done:
                self._shut()  # the connection stays open after the body: the thread is told to stop
            elif self.error is None and not self._closed:
                self.error = urllib3.exceptions.ProtocolError("Response ended prematurely")
        return self._decoder.flush()

    def _shut(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        _close_response(self._response)

    async def close(self) -> None:
        """Shut the stream's socket (the thread's read returns at once) and wait for the
        thread to end."""
        self._shut()
        try:
            await asyncio.wait_for(asyncio.shield(self._finished), _LOG_JOIN_SECONDS)
        except TimeoutError:
            log.warning("a docker log reader thread did not end")
            return
        # It said it finished as its last act: this join waits microseconds, not for I/O.
        self._thread.join(1.0)

    # -- the thread --

    def _run(self) -> None:
        read = self._read
        try:
            while data := read(_LOG_READ_SIZE):
                with self._lock:
                    while self._queued >= _LOG_BACKLOG and not self._closed:
                        self._lock.wait(0.5)
                    if self._closed:
                        return
                    self._pieces.append(data)
                    self._queued += len(data)
                    wake, self._woken = not self._woken, True
                if wake:
                    self._signal(self._ready.set)
        except Exception as exc:  # noqa: BLE001 - reported by the iterator as the stream's end
            if not self._closed:
                self.error = exc
        finally:
            with self._lock:
                self._done = True
            self._signal(self._ready.set)
            self._signal(self._finish)

    def _signal(self, callback: Callable[[], None]) -> None:
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            pass

    def _finish(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)
