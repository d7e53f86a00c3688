"""From "promote web" to a plan: where the service's compose files are, the resolved
service, its translation, and the text the preview and `--dry-run` show.

The compose files come from `-f` when given; else from the labels Compose put on the
service's running containers (`com.docker.compose.project.config_files`,
`.working_dir`), so `p` on a row needs no path; else the compose CLI's own defaults in
the current directory.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backends.model import Instance, Source
from backends.promote.model import ChecklistItem, PromoteError, ResolvedService, Status, TranslateOptions, Translation
from backends.promote.names import kube_name
from backends.promote.resolve import compose_files_from_labels, resolve_service
from backends.promote.translate import masked, to_yaml, translate

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"

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
    diff: str = ""  # against what the cluster has now (`with_live_diff`); "" when not compared

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


def promotion_plan(plan: Plan, settings: Any) -> Any:
    """What the pipeline runs for `plan`, with the config's `promote:` settings (delivery).
    (Typed loosely: the pipeline imports the hub, which this module must not need.)"""
    from backends.model import WorkloadKey
    from backends.promote.deliver import DeliverySettings
    from backends.promote.pipeline import PromotionPlan

    delivery = DeliverySettings(settings.delivery, cluster=settings.k3d_cluster, registry=settings.registry,
                                k3s_command=tuple(settings.k3s_command))
    workload = WorkloadKey(Source.COMPOSE, plan.project, plan.service)
    return PromotionPlan(workload, plan.namespace, plan.translation.objects, delivery=delivery)


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


# ---- the diff against the cluster -------------------------------------------------------------

# What a server adds to an object, which says nothing about what the promotion changes.
_SERVER_FIELDS = ("status",)
_SERVER_METADATA = ("managedFields", "uid", "resourceVersion", "creationTimestamp", "generation",
                    "selfLink", "ownerReferences", "finalizers")
_SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` without what the API server adds (status, uid, managedFields…)."""
    out = {k: v for k, v in obj.items() if k not in _SERVER_FIELDS}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in _SERVER_ANNOTATIONS and not k.startswith("ferryman.io/state")}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def diff_objects(planned: Sequence[Mapping[str, Any]], live: Sequence[Mapping[str, Any] | None]) -> str:
    """What applying `planned` changes against `live` (the same objects as the cluster has
    them, None where missing): new objects, objects that are somebody else's (the
    promotion will refuse), and a unified diff of the fields the plan sets. Secret
    values are masked on both sides."""
    lines: list[str] = []
    for want, have in zip(masked(list(planned)), live, strict=True):
        meta = want.get("metadata") or {}
        what = f"{want.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}".replace(" /", " ")
        if have is None:
            lines.append(f"+ {what}: new")
            continue
        labels = (have.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != "ferryman":
            lines.append(f"! {what}: exists and is not managed by Ferryman: the promotion will refuse it")
            continue
        have_c = masked([comparable(have)])[0]
        # Only what the plan sets is compared: the server's defaults are not changes.
        have_c = _only_keys_of(have_c, comparable(want))
        before = to_yaml([have_c]).splitlines()
        after = to_yaml([comparable(want)]).splitlines()
        if before == after:
            lines.append(f"= {what}: unchanged")
            continue
        lines.append(f"~ {what}: changes")
        lines += [f"  {d}" for d in difflib.unified_diff(before, after, "cluster", "promotion", lineterm="", n=1)
                  if not d.startswith(("---", "+++"))]
    return "\n".join(lines)


def _only_keys_of(have: Any, want: Any) -> Any:
    if isinstance(have, dict) and isinstance(want, dict):
        return {k: _only_keys_of(have[k], want[k]) for k in want if k in have}
    if isinstance(have, list) and isinstance(want, list) and len(have) == len(want):
        return [_only_keys_of(h, w) for h, w in zip(have, want, strict=True)]
    return have


async def with_live_diff(plan: Plan, get_object: Callable[[Any], Awaitable[Mapping[str, Any] | None]],
                         object_id: Callable[[Mapping[str, Any]], Any]) -> Plan:
    """The plan with its diff against the cluster (`get_object(object_id(manifest))` for
    each object); a cluster that cannot be read says so instead."""
    try:
        live = [await get_object(object_id(o)) for o in plan.translation.objects]
    except Exception as exc:  # noqa: BLE001 - the preview shows it; nothing is decided on it
        return replace(plan, diff=f"? could not read the cluster: {exc}")
    return replace(plan, diff=diff_objects(plan.translation.objects, live))


def preview_text(plan: Plan, diff: str | None = None) -> str:
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
    diff = plan.diff if diff is None else diff
    if diff:
        head += ["", "Against what the cluster has now:", *diff.splitlines()]
    comments = "\n".join(f"# {line}".rstrip() for line in head)
    return f"{comments}\n{to_yaml(masked(t.objects))}"


def checklist_summary(items: Sequence[ChecklistItem]) -> str:
    counts = {status: sum(1 for i in items if i.status == status) for status in Status}
    return f"checklist: {counts[Status.OK]} ok, {counts[Status.WARN]} to check, {counts[Status.MISSING]} missing"


__all__ = [
    "ComposeSource", "Plan", "PromoteError", "checklist_summary", "default_namespace", "find_source", "make_plan",
    "manifests_yaml", "preview_text", "diff_objects", "promotion_plan", "with_live_diff",
    "source_from_labels", "source_of_instances", "warnings_text",
]
