"""Promotion of a Compose service to Kubernetes: resolution and translation.

`resolve_service` asks the compose CLI for the resolved project; `translate` turns
one service into Kubernetes objects, findings and a readiness checklist (pure);
`to_yaml` prints them for previews and `--dry-run`.
"""

from backends.promote.model import (
    ChecklistItem,
    ComposeService,
    Finding,
    HostPort,
    PromoteError,
    ResolvedService,
    Severity,
    Status,
    TranslateOptions,
    Translation,
)
from backends.promote.names import kube_name
from backends.promote.resolve import (
    ComposeCli,
    ResolvedProject,
    compose_cli,
    compose_files_from_labels,
    read_referenced_files,
    resolve_project,
    resolve_service,
    service_from_config,
)
from backends.promote.translate import (
    MANAGED_BY,
    SELECTOR_LABEL,
    masked,
    to_yaml,
    translate,
)

__all__ = [
    "MANAGED_BY", "SELECTOR_LABEL", "ChecklistItem", "ComposeCli", "ComposeService", "Finding", "HostPort",
    "PromoteError", "ResolvedProject", "ResolvedService", "Severity", "Status", "TranslateOptions", "Translation", "compose_cli",
    "compose_files_from_labels", "kube_name", "masked", "read_referenced_files", "resolve_project", "resolve_service",
    "service_from_config", "to_yaml", "translate",
]
