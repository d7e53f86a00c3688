"""What promotion passes around: a resolved Compose service in, Kubernetes objects,
findings and a readiness checklist out. Plain immutable values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from backends.adapter import ActionError


class PromoteError(ActionError):
    """Promotion cannot go on; the message says why in the user's terms."""


@dataclass(frozen=True)
class ComposeService:
    """One service as Compose itself resolved it (`config` output: interpolation, env
    files, extends and profiles already applied), with Compose's `$$` escapes undone so
    every string is the literal value the container sees."""

    name: str  # as written in the Compose file ("My_Service.v2")
    project: str
    config: Mapping[str, Any]
    # The project's top-level definitions the service may refer to.
    volumes: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    configs: Mapping[str, Any] = field(default_factory=dict)
    # Every service of the project (this one included): depends_on targets' ports,
    # name collisions after Kubernetes normalisation.
    project_services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    project_dir: Path | None = None
    # Content of the files the service refers to (secret/config files, bind-mounted
    # single files), by absolute path: the bytes, or why they could not be read.
    # Filled by `read_referenced_files` so that `translate` itself stays pure.
    file_contents: Mapping[str, bytes | str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedService:
    """A service resolved through the compose CLI, with where it came from."""

    service: ComposeService
    files: tuple[Path, ...]  # the compose files given to the CLI (empty: its defaults)
    project_dir: Path
    cli: tuple[str, ...]  # ("docker", "compose") or ("docker-compose",)
    # What the CLI said on stderr while succeeding ("The X variable is not set…"):
    # worth showing in the preview, since an unset variable changes the manifests.
    cli_warnings: tuple[str, ...] = ()


class Severity(StrEnum):
    INFO = "info"  # carried over differently, nothing to do
    WARNING = "warning"  # not carried over, or differently enough to matter


@dataclass(frozen=True)
class Finding:
    """One Compose key not carried over, or carried over differently, and why."""

    key: str  # the Compose key, dotted for nested ones ("deploy.placement", "volumes[2]")
    message: str
    severity: Severity = Severity.WARNING

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    MISSING = "missing"


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the migration checklist for this service."""

    topic: str
    status: Status
    detail: str


@dataclass(frozen=True)
class HostPort:
    """A port Compose published on the host: after promotion a port-forward on
    `host_ip:host_port` to the Service's `service_port` keeps localhost answering."""

    host_port: int
    service_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class TranslateOptions:
    # The image was imported into the node's containerd (k3s ctr / k3d image import):
    # `Never` pull it, so a missing import fails loudly instead of hitting a registry.
    image_imported: bool = False
    # Add one init container per depends_on target that waits for its Service.
    wait_for_dependencies: bool = False
    wait_image: str = "busybox:1.36"
    # Compose volumes have no size; PVCs must ask for one.
    volume_size: str = "1Gi"
    # The image's own HEALTHCHECK (Docker API form: Test, Interval, Timeout, Retries,
    # StartPeriod, StartInterval in ns), used when the Compose file has none, since
    # Kubernetes ignores image healthchecks.
    image_healthcheck: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Translation:
    name: str  # the Kubernetes name of the Deployment, its Service and its container
    objects: list[dict[str, Any]]  # in apply order: ConfigMaps, Secrets, PVCs, Service, Deployment
    warnings: list[Finding]
    checklist: list[ChecklistItem]
    host_ports: list[HostPort]
