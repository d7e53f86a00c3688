"""Compose's short and long syntaxes, read into one shape.

`config` output is not fully canonical: Compose v1 prints ports as "127.0.0.1:5000:5000/udp"
strings beside dicts, volumes as "data:/var/lib/data:rw" and commands as strings;
Compose v2 prints long syntax with string host ports. Every reader here takes all of
those and raises `SyntaxProblem` (with the entry) for what it cannot read, so the
caller can report that entry by name instead of dropping it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SyntaxProblem(ValueError):
    pass


@dataclass(frozen=True)
class PortSpec:
    target: int
    protocol: str = "TCP"  # Kubernetes spelling
    published: int | None = None  # the host port; None: not published, or a random one
    host_ip: str = ""
    name: str | None = None
    app_protocol: str | None = None
    # A published range Compose picks one port from ("8000-8010:80"): nothing fixed to forward.
    published_range: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class MountSpec:
    type: str  # volume | bind | tmpfs | npipe | cluster | image
    target: str
    source: str | None = None  # None: an anonymous volume
    read_only: bool = False
    # The long syntax's sub-dicts ("volume": {...}, "bind": {...}, "tmpfs": {...}) and
    # other keys (consistency), and short-syntax flags other than ro/rw ("z", "nocopy").
    extra: Mapping[str, Any] = field(default_factory=dict)


_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}
_MOUNT_FLAGS_IGNORED = frozenset({"rw", "ro"})


def _port_number(text: object) -> int:
    try:
        number = int(str(text).strip())
    except ValueError:
        raise SyntaxProblem(f"not a port number: {text!r}") from None
    if not 0 < number < 65536:
        raise SyntaxProblem(f"port out of range: {number}")
    return number


def _port_range(text: str) -> list[int]:
    low, dash, high = text.partition("-")
    if not dash:
        return [_port_number(low)]
    first, last = _port_number(low), _port_number(high)
    if last < first:
        raise SyntaxProblem(f"empty port range: {text!r}")
    return list(range(first, last + 1))


def _protocol(text: object) -> str:
    proto = _PROTOCOLS.get(str(text or "tcp").lower())
    if proto is None:
        raise SyntaxProblem(f"unknown protocol {text!r}")
    return proto


def _short_port(entry: str) -> list[PortSpec]:
    spec, _, proto_text = entry.partition("/")
    protocol = _protocol(proto_text or "tcp")
    parts = spec.rsplit(":", 2)
    host_ip = ""
    if len(parts) == 3:
        host_ip = parts[0].strip("[]")
        parts = parts[1:]
    if len(parts) == 1:
        return [PortSpec(target=t, protocol=protocol) for t in _port_range(parts[0])]
    published_text, target_text = parts
    targets = _port_range(target_text)
    if not published_text:
        return [PortSpec(target=t, protocol=protocol, host_ip=host_ip) for t in targets]
    published = _port_range(published_text)
    if len(published) == len(targets):
        return [PortSpec(target=t, protocol=protocol, published=p, host_ip=host_ip)
                for p, t in zip(published, targets, strict=True)]
    if len(targets) == 1:
        return [PortSpec(target=targets[0], protocol=protocol, host_ip=host_ip, published_range=published_text)]
    raise SyntaxProblem(f"host and container port ranges differ in length: {entry!r}")


def _long_port(entry: Mapping[str, Any]) -> list[PortSpec]:
    if "target" not in entry:
        raise SyntaxProblem(f"port without a target: {dict(entry)!r}")
    common = {
        "protocol": _protocol(entry.get("protocol")),
        "host_ip": str(entry.get("host_ip") or ""),
        "name": entry.get("name"),
        "app_protocol": entry.get("app_protocol"),
        "mode": entry.get("mode"),
    }
    targets = _port_range(str(entry["target"]))
    published = entry.get("published")
    if published in (None, "", 0, "0"):
        return [PortSpec(target=t, **common) for t in targets]
    hosts = _port_range(str(published))
    if len(hosts) == len(targets):
        return [PortSpec(target=t, published=p, **common) for p, t in zip(hosts, targets, strict=True)]
    if len(targets) == 1:
        return [PortSpec(target=targets[0], published_range=str(published), **common)]
    raise SyntaxProblem(f"host and container port ranges differ in length: {dict(entry)!r}")


def read_port(entry: object) -> list[PortSpec]:
    """One `ports` entry (80, "8080:80", "127.0.0.1:5000-5001:5000-5001/udp", a dict)."""
    if isinstance(entry, Mapping):
        return _long_port(entry)
    if isinstance(entry, int) and not isinstance(entry, bool):
        return [PortSpec(target=_port_number(entry))]
    if isinstance(entry, str):
        return _short_port(entry.strip())
    raise SyntaxProblem(f"not a port: {entry!r}")


def read_expose(entry: object) -> list[PortSpec]:
    """One `expose` entry: "3000", "3000-3005", "3000/udp", 3000."""
    text = str(entry).strip()
    spec, _, proto_text = text.partition("/")
    protocol = _protocol(proto_text or "tcp")
    return [PortSpec(target=t, protocol=protocol) for t in _port_range(spec)]


def read_mount(entry: object) -> MountSpec:
    """One service `volumes` entry, short ("data:/var/lib/data:ro") or long syntax."""
    if isinstance(entry, Mapping):
        kind = str(entry.get("type") or "volume")
        target = entry.get("target")
        if not target:
            raise SyntaxProblem(f"mount without a target: {dict(entry)!r}")
        extra = {k: v for k, v in entry.items() if k not in ("type", "source", "target", "read_only")}
        return MountSpec(type=kind, target=str(target), source=entry.get("source") or None,
                         read_only=bool(entry.get("read_only")), extra=extra)
    if not isinstance(entry, str) or not entry.strip():
        raise SyntaxProblem(f"not a mount: {entry!r}")
    parts = entry.split(":")
    if len(parts) == 1:
        return MountSpec(type="volume", target=parts[0])
    if len(parts) > 3:
        raise SyntaxProblem(f"not a mount: {entry!r}")
    source, target = parts[0], parts[1]
    flags = parts[2].split(",") if len(parts) == 3 else []
    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    extra = {"flags": [f for f in flags if f not in _MOUNT_FLAGS_IGNORED]} if set(flags) - _MOUNT_FLAGS_IGNORED else {}
    return MountSpec(type=kind, target=target, source=source, read_only="ro" in flags, extra=extra)


def read_pairs(value: object, what: str) -> list[tuple[str, Any]]:
    """A dict, or a list of "KEY=VALUE" / "KEY" (environment, labels, sysctls), in
    order. A list entry without "=" has the value None (Compose: "from the shell")."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        pairs = []
        for item in value:
            name, eq, rest = str(item).partition("=")
            pairs.append((name, rest if eq else None))
        return pairs
    raise SyntaxProblem(f"{what}: expected a mapping or a list, got {value!r}")


def read_hosts(value: object) -> list[tuple[str, str]]:
    """extra_hosts: ["db:10.0.0.1", "db=10.0.0.1", "v6:::1"] or {"db": "10.0.0.1" | [..]}."""
    if isinstance(value, Mapping):
        hosts: list[tuple[str, str]] = []
        for host, ips in value.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                hosts.append((str(host), str(ip)))
        return hosts
    hosts = []
    for item in as_list(value):
        text = str(item)
        # "=" is the newer separator and unambiguous with IPv6; ":" splits at the first one.
        sep = "=" if "=" in text else ":"
        host, found, ip = text.partition(sep)
        if not found or not host or not ip:
            raise SyntaxProblem(f"not HOST:IP: {text!r}")
        hosts.append((host, ip.strip("[]")))
    return hosts


def read_command(value: object) -> list[str] | None:
    """`command`/`entrypoint`: a list as is, a string split the way Compose splits it
    (shell words, no shell), None when unset."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise SyntaxProblem(f"cannot split {value!r}: {exc}") from None
    if isinstance(value, list):
        return [str(v) for v in value]
    raise SyntaxProblem(f"not a command: {value!r}")


def as_list(value: object, what: str = "") -> list[Any]:
    """A key that takes "one or a list" (dns, tmpfs, env_file, cap_add) as a list."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def env_text(value: object) -> str:
    """An environment value as the container sees it: YAML true -> "true", 8080 -> "8080"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
