"""The hybrid view's one rule: which Compose service and which Kubernetes workload are
the same logical service, and so one row.

By default a Compose service and a Deployment/StatefulSet of the same name pair up
(`web` in project `shop` with `web` in namespace `default`). Config can add explicit
pairs for names that differ (`shop/web` ↔ `default/web-api`) or turn name matching off.

A name can be ambiguous: two Compose projects with a `db`, or `db` in three namespaces.
Then a Compose project pairs with the namespace of the same name (the "namespace per
project" habit) and everything else stands alone — a guess that could join the wrong two
would be worse than two rows. Explicit pairs resolve what names cannot.

Row ids are chosen to survive promotion: a service's row keeps its id while it goes
compose → both → k3s, so the cursor stays on it and the row changes in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from backends.model import HEALTH_SEVERITY, Health, LogicalService, Source, Workload, WorkloadKey


@dataclass(frozen=True, slots=True)
class Pair:
    """An explicit pairing from config; each side is "name" or "group/name"."""

    compose: str
    k3s: str

    @property
    def name(self) -> str:
        return self.compose.rsplit("/", 1)[-1]


def _matches(ref: str, key: WorkloadKey) -> bool:
    group, _, name = ref.rpartition("/")
    return name == key.name and (not group or group == key.group)


@dataclass(frozen=True, slots=True)
class Naming:
    """How workloads group into logical services."""

    by_name: bool = True
    pairs: tuple[Pair, ...] = ()

    def group_of(self, key: WorkloadKey) -> str:
        """The group a workload belongs to; its members are paired by `rows_of_group`."""
        for pair in self.pairs:
            if _matches(pair.compose if key.source == Source.COMPOSE else pair.k3s, key):
                return f"pair:{pair.compose}"
        return f"name:{key.name}" if self.by_name else f"own:{key.id}"


def rows_of_group(group: str, members: Iterable[Workload]) -> list[LogicalService]:
    """The rows of one group (see the module docstring for the rule)."""
    members = list(members)
    compose = sorted((w for w in members if w.key.source == Source.COMPOSE), key=lambda w: w.key)
    k3s = sorted((w for w in members if w.key.source == Source.K3S), key=lambda w: w.key)
    if len(compose) <= 1 and len(k3s) <= 1:
        if not compose and not k3s:
            return []
        c, k = (compose[0] if compose else None), (k3s[0] if k3s else None)
        return [service_row(group, (c or k).key.name, c, k)]  # type: ignore[union-attr]
    rows = []
    by_namespace = {w.key.group: w for w in k3s}
    for c in compose:
        partner = by_namespace.pop(c.key.group, None)
        row_id = f"{group}@{c.key.group}" if partner else f"{group}@{c.key.source}/{c.key.group}"
        rows.append(service_row(row_id, c.key.name, c, partner))
    for k in by_namespace.values():
        rows.append(service_row(f"{group}@{k.key.source}/{k.key.group}", k.key.name, None, k))
    return rows


def service_row(row_id: str, name: str, compose: Workload | None, k3s: Workload | None) -> LogicalService:
    health, reason = combined_health(compose, k3s)
    return LogicalService(id=row_id, name=name, compose=compose, k3s=k3s, health=health, health_reason=reason)


def combined_health(compose: Workload | None, k3s: Workload | None) -> tuple[Health, str]:
    """The worst health of the sides that run something (stopped if none does), and its
    reason, prefixed by the side's name when both sides are there."""
    present = [w for w in (compose, k3s) if w is not None]
    live = [w for w in present if w.health != Health.STOPPED]
    if not live:
        return Health.STOPPED, present[0].health_reason if len(present) == 1 else ""
    worst = min(live, key=lambda w: HEALTH_SEVERITY[w.health])
    reason = worst.health_reason
    if reason and len(present) == 2:
        reason = f"{worst.key.source}: {reason}"
    return worst.health, reason


def naming_from(pairs: Sequence[tuple[str, str]], by_name: bool = True) -> Naming:
    return Naming(by_name=by_name, pairs=tuple(Pair(c, k) for c, k in pairs))
