"""The hybrid rows: which Compose service and which Kubernetes workload are one row, and
how the store keeps those rows as workloads come, change sides and go."""

from __future__ import annotations

from dataclasses import replace

from backends.model import (
    Health,
    InstanceChanged,
    InstanceGone,
    KubeService,
    Namespace,
    ObjectChanged,
    ObjectGone,
    RunState,
    Snapshot,
    Source,
    SpecChanged,
    SpecGone,
    WorkloadKey,
    WorkloadSpec,
)
from backends.pairing import Naming, combined_health, naming_from, rows_of_group
from backends.store import Store
from tests.support.scripted import make_instance


def compose(project: str, name: str, **kw):
    return make_instance(project, name, **kw)


def pod(namespace: str, workload: str, name: str, *, health: Health = Health.HEALTHY):
    base = make_instance(namespace, workload, health=health)
    return replace(
        base, source=Source.K3S, id=f"uid-{namespace}-{name}", name=name,
        workload=WorkloadKey(Source.K3S, namespace, workload),
    )


def spec(namespace: str, name: str, desired: int = 1) -> WorkloadSpec:
    return WorkloadSpec(WorkloadKey(Source.K3S, namespace, name), "Deployment", desired)


def rows(store: Store) -> dict[str, tuple[str, str]]:
    """row id -> (name, location)"""
    return {k: (s.name, s.location) for k, s in store.services.items()}


def test_a_compose_service_and_a_deployment_of_the_same_name_are_one_row() -> None:
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "web"), compose("shop", "db"))))
    store.apply(Snapshot(Source.K3S, (pod("default", "web", "web-1"), pod("default", "api", "api-1")),
                         (spec("default", "web"), spec("default", "api"))))
    assert rows(store) == {
        "name:web": ("web", "both"),
        "name:db": ("db", "compose"),
        "name:api": ("api", "k3s"),
    }
    both = store.services["name:web"]
    assert both.compose is not None and both.compose.key.group == "shop"
    assert both.k3s is not None and both.k3s.key.group == "default"
    assert [i.name for i in store.instances_of_service("name:web")] == [
        store.instances_of(both.compose.id)[0].name, "web-1"]


def test_promotion_keeps_the_row_and_changes_it_in_place() -> None:
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "web"),)))
    seen = []
    store.subscribe(seen.append)
    store.apply(SpecChanged(spec("default", "web")))
    # Paired at once (one row), but it runs in Compose only until its pods do.
    assert seen[-1].services["name:web"].location == "compose"
    assert seen[-1].services["name:web"].k3s is not None
    assert not seen[-1].services_removed
    store.apply(Snapshot(Source.COMPOSE, ()))  # the Compose container stopped and removed
    assert seen[-1].services["name:web"].location == "k3s"
    assert not seen[-1].services_removed
    store.apply(SpecGone(WorkloadKey(Source.K3S, "default", "web")))
    assert seen[-1].services_removed == {"name:web"}
    assert store.services == {}
    assert store.service_of("k3s/default/web") is None


def test_an_ambiguous_name_pairs_a_project_with_its_namespace_and_leaves_the_rest_alone() -> None:
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "db"), compose("blog", "db"))))
    store.apply(Snapshot(Source.K3S, (), (spec("shop", "db"), spec("default", "db"))))
    assert rows(store) == {
        "name:db@shop": ("db", "compose"),  # paired (one row); its Deployment has no pod running yet
        "name:db@compose/blog": ("db", "compose"),
        "name:db@k3s/default": ("db", "k3s"),
    }
    assert store.service_of("k3s/shop/db") == "name:db@shop"


def test_explicit_pairs_join_different_names() -> None:
    store = Store(naming_from([("shop/web", "default/web-api")]))
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "web"),)))
    store.apply(Snapshot(Source.K3S, (), (spec("default", "web-api"), spec("default", "web"))))
    assert rows(store) == {"pair:shop/web": ("web", "compose"), "name:web": ("web", "k3s")}
    assert store.services["pair:shop/web"].k3s is not None  # paired, though no pod of web-api runs yet


def test_name_matching_off_keeps_every_workload_its_own_row() -> None:
    store = Store(Naming(by_name=False))
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "web"),)))
    store.apply(Snapshot(Source.K3S, (), (spec("default", "web"),)))
    assert sorted(loc for _name, loc in rows(store).values()) == ["compose", "k3s"]


def test_row_health_is_the_worst_running_side() -> None:
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "web", health=Health.HEALTHY),)))
    store.apply(Snapshot(Source.K3S, (pod("default", "web", "web-1", health=Health.UNHEALTHY),)))
    assert store.services["name:web"].health == Health.UNHEALTHY
    store.apply(InstanceGone(Source.K3S, "uid-default-web-1"))
    assert store.services["name:web"].location == "compose"
    assert store.services["name:web"].health == Health.HEALTHY


def test_combined_health_ignores_stopped_sides() -> None:
    assert combined_health(None, None) == (Health.STOPPED, "")
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (compose("shop", "web", state=RunState.EXITED, health=Health.STOPPED),)))
    store.apply(InstanceChanged(pod("default", "web", "web-1", health=Health.STARTING)))
    assert store.services["name:web"].health == Health.STARTING


def test_rows_of_an_empty_group() -> None:
    assert rows_of_group("name:x", []) == []


def test_kubernetes_objects_follow_snapshots_and_changes() -> None:
    store = Store()
    svc = KubeService("default", "web", "ClusterIP", "10.43.0.10", (), (), ())
    ns = Namespace("default", "Active")
    seen = []
    store.subscribe(seen.append)
    store.apply(Snapshot(Source.K3S, (), (), (svc, ns)))
    assert set(seen[-1].objects) == {svc.key, ns.key}
    store.apply(ObjectChanged(Namespace("default", "Terminating")))
    assert store.objects[ns.key].phase == "Terminating"
    store.apply(ObjectGone(svc.key))
    assert seen[-1].objects_removed == {svc.key}
    store.apply(Snapshot(Source.K3S, (), (), ()))
    assert store.objects == {}
    assert store.objects_of(Namespace) == {}
