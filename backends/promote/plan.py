"""From "promote web" to a plan: where the service's compose files are, the resolved
service, its translation, and the text the preview and `--dry-run` show.

The compose files come from `-f` when given; else from the labels Compose put on the
service's running containers (`com.docker.compose.project.config_files`,
`.working_dir`), so `p` on a row needs no path; else the compose CLI's own defaults in
the current directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.model import Instance, Source
from backends.promote.model import ChecklistItem, PromoteError, ResolvedService, Status, TranslateOptions, Translation
from backends.promote.names import kube_name
from backends.promote.resolve import compose_files_from_labels, resolve_service
from backends.promote.translate import masked, to_yaml, translate

CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class Plan:
    """What a promotion of one service would do."""

    resolved: ResolvedService
    namespace: str
    translation: Translation

    @property
    def service(self) -> str:
        return self.resolved.service.name

    @property
    def project(self) -> str:
        return self.resolved.service.project


@dataclass(frozen=True)
class ComposeSource:
    """Where a service's compose files are."""

    files: list[Path] | None
    project_dir: Path
    project: str | None


def source_from_labels(labels: Mapping[str, str]) -> ComposeSource | None:
    """The compose files of a running container's project, from its labels."""
    config_files = labels.get(CONFIG_FILES_LABEL)
    working_dir = labels.get(WORKING_DIR_LABEL)
    if not config_files and not working_dir:
        return None
    files, project_dir = compose_files_from_labels(config_files or "", working_dir or ".")
    return ComposeSource(files, project_dir, labels.get(PROJECT_LABEL))


def source_of_instances(instances: Sequence[Instance]) -> ComposeSource | None:
    for inst in instances:
        if inst.source == Source.COMPOSE and (found := source_from_labels(inst.label_map())) is not None:
            return found
    return None


def find_source(service: str, project: str | None = None, *, docker_host: str | None = None) -> ComposeSource | None:
    """The compose files of a service that has (or had) containers, from their labels
    (blocking: the docker SDK; call it in a thread)."""
    import docker

    filters = [f"{SERVICE_LABEL}={service}"] + ([f"{PROJECT_LABEL}={project}"] if project else [])
    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    try:
        containers = client.api.containers(all=True, filters={"label": filters})
    except docker.errors.DockerException:
        return None  # no engine: the compose files must then be given (or be here)
    finally:
        client.close()
    for container in containers:
        if (found := source_from_labels(container.get("Labels") or {})) is not None:
            return found
    return None


def default_namespace(project: str) -> str:
    """A project promotes into the namespace of its name: the hybrid view pairs a
    project with the namespace of the same name."""
    return kube_name(project)


async def make_plan(
    service: str,
    source: ComposeSource,
    *,
    namespace: str | None = None,
    image: str | None = None,
    options: TranslateOptions | None = None,
) -> Plan:
    resolved = await resolve_service(service, source.files, source.project_dir, project_name=source.project)
    ns = namespace or default_namespace(resolved.service.project)
    # Translation reads nothing and calls nothing, but a big project takes a moment:
    # off the event loop, like everything else that is not instant.
    translation = await asyncio.to_thread(translate, resolved.service, namespace=ns, image=image, options=options)
    return Plan(resolved, ns, translation)


# ---- what the preview and --dry-run say ----------------------------------------------------

STATUS_MARK = {Status.OK: "✔", Status.WARN: "▲", Status.MISSING: "✖"}


def manifests_yaml(plan: Plan) -> str:
    return to_yaml(plan.translation.objects)


def warnings_text(plan: Plan) -> list[str]:
    """The findings, the checklist and what the compose CLI said, a line each."""
    lines = [f"compose: {w}" for w in plan.resolved.cli_warnings]
    lines += [f"{f.severity}: {f}" for f in plan.translation.warnings]
    lines += [f"checklist {STATUS_MARK[c.status]} {c.topic}: {c.detail}" for c in plan.translation.checklist]
    for port in plan.translation.host_ports:
        lines.append(f"forward: localhost:{port.host_port} will keep answering through a port-forward to "
                     f"service {plan.translation.name}:{port.service_port}")
    return lines


def preview_text(plan: Plan, diff: str = "") -> str:
    """The preview `p` opens: what will happen, the checklist and the warnings as YAML
    comments above the manifests (secret values masked: this is on screen)."""
    t = plan.translation
    head = [
        f"Promote compose {plan.project}/{plan.service} to k3s namespace {plan.namespace}",
        f"{len(t.objects)} objects, applied server-side (field manager ferryman, label "
        "app.kubernetes.io/managed-by: ferryman); the Compose container stops only once the pods are ready",
        "",
        checklist_summary(t.checklist),
        *warnings_text(plan),
    ]
    if diff:
        head += ["", "Against what the cluster has now:", *diff.splitlines()]
    comments = "\n".join(f"# {line}".rstrip() for line in head)
    return f"{comments}\n{to_yaml(masked(t.objects))}"


def checklist_summary(items: Sequence[ChecklistItem]) -> str:
    counts = {status: sum(1 for i in items if i.status == status) for status in Status}
    return f"checklist: {counts[Status.OK]} ok, {counts[Status.WARN]} to check, {counts[Status.MISSING]} missing"


__all__ = [
    "ComposeSource", "Plan", "PromoteError", "checklist_summary", "default_namespace", "find_source", "make_plan",
    "manifests_yaml", "preview_text",
    "source_from_labels", "source_of_instances", "warnings_text",
]
