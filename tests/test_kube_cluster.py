"""The k3s adapter against a cluster, written only against `tests.support.cluster.Cluster`:
the emulated API server by default (ids ``[emulated]``), a real cluster when
``FERRYMAN_TEST_KUBECONFIG`` names its kubeconfig (ids ``[real]``) — see that module for
the variables and the command.

Each test works in its own throwaway namespace. Nothing here knows pod names a controller
chose: pods of a Deployment are asked of the cluster. Waits are conditions polled up to
the cluster's deadline, never fixed sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import yaml

from backends.adapter import Action
from backends.kube import RESTARTED_AT, KubeAdapter
from backends.model import (
    Health,
    Instance,
    InstanceChanged,
    InstanceGone,
    Source,
    WorkloadKey,
)
from tests.support.feed import KubeFeed

if TYPE_CHECKING:  # imported by pytest below, as a plugin (so that its asserts are rewritten)
    from tests.support.cluster import Cluster

# The fixtures `cluster` (and `real_cluster`, which it uses when a real cluster is configured).
pytest_plugins = ["tests.support.cluster"]


class Feed(KubeFeed):
    def __init__(self, adapter: KubeAdapter, cluster: Cluster) -> None:
        super().__init__(adapter)
        self.deadline = cluster.timeout

    def pods_of(self, workload: str) -> dict[str, Instance]:
        return {name: inst for name, inst in self.pods().items() if inst.workload.name == workload}

    def all_healthy(self, names: set[str]) -> bool:
        pods = self.pods()
        return names <= set(pods) and all(pods[n].health == Health.HEALTHY for n in names)

    def desired(self, namespace: str, name: str) -> int | None:
        spec = self.store.specs.get(WorkloadKey(Source.K3S, namespace, name).id)
        return spec.desired if spec is not None else None


def adapter_for(cluster: Cluster, namespace: str | None = None) -> KubeAdapter:
    return KubeAdapter(kubeconfig=cluster.kubeconfig, context=cluster.context,
                       namespace=namespace or cluster.namespace, reconnect_min=0.05, reconnect_max=2.0)


async def web_and_solo(cluster: Cluster) -> set[str]:
    """web: a Deployment of 2 ready pods; solo: a bare ready pod. Returns all pod names."""
    await cluster.create_deployment("web", replicas=2)
    await cluster.create_pod("solo", labels={"app": "solo"})
    await cluster.wait_ready()
    web = set(await cluster.pods_of("web"))
    assert len(web) == 2
    return web | {"solo"}


def key(cluster: Cluster, name: str) -> WorkloadKey:
    return WorkloadKey(Source.K3S, cluster.namespace, name)


async def test_snapshot_has_the_pods_and_the_deployment(cluster: Cluster) -> None:
    expected = await web_and_solo(cluster)
    async with Feed(adapter_for(cluster), cluster) as feed:
        await feed.synced()
        [snapshot] = feed.snapshots
        assert {i.name for i in snapshot.instances} == expected
        assert {(s.key.name, s.kind, s.desired) for s in snapshot.specs} == {("web", "Deployment", 2)}
        assert {i.workload for i in snapshot.instances if i.name != "solo"} == {key(cluster, "web")}
        assert feed.pods()["solo"].workload == key(cluster, "solo")
        await feed.until(lambda: feed.all_healthy(expected), "every pod healthy")
        web = feed.store.workloads[key(cluster, "web").id]
        assert (web.running, web.desired, web.health) == (2, 2, Health.HEALTHY)


async def test_pods_created_and_deleted_later_are_changes(cluster: Cluster) -> None:
    expected = await web_and_solo(cluster)
    async with Feed(adapter_for(cluster), cluster) as feed:
        await feed.synced()
        await cluster.create_pod("late", labels={"app": "late"})
        await feed.until(lambda: "late" in feed.pod_names(), "the new pod")
        await cluster.make_ready(cluster.namespace, "late")
        await feed.until(lambda: feed.all_healthy({"late"}), "the new pod healthy")
        assert any(isinstance(e, InstanceChanged) and e.instance.name == "late" for e in feed.events)

        late_id = feed.pods()["late"].id
        await cluster.delete_pod("solo")
        await feed.until(lambda: "solo" not in feed.pod_names(), "the deleted pod gone")
        assert feed.pod_names() == expected - {"solo"} | {"late"}
        assert feed.pods()["late"].id == late_id
        assert len(feed.snapshots) == 1  # all of it arrived as changes, not resyncs
        assert any(isinstance(e, InstanceGone) for e in feed.events)


async def test_scale_up(cluster: Cluster) -> None:
    await web_and_solo(cluster)
    adapter = adapter_for(cluster)
    async with Feed(adapter, cluster) as feed:
        await feed.synced()
        await adapter.scale(key(cluster, "web"), 3)
        deploy = await cluster.get("deployments", "web")
        assert deploy is not None and deploy["spec"]["replicas"] == 3
        await feed.until(lambda: feed.desired(cluster.namespace, "web") == 3, "desired 3 in the store")
        await cluster.wait_rollout("web")
        web = set(await cluster.pods_of("web"))
        assert len(web) == 3
        await feed.until(lambda: set(feed.pods_of("web")) == web and feed.all_healthy(web), "3 healthy web pods")
        workload = feed.store.workloads[key(cluster, "web").id]
        assert (workload.running, workload.desired) == (3, 3)


async def test_rollout_restart_stamps_the_template_and_pods_are_replaced(cluster: Cluster) -> None:
    await web_and_solo(cluster)
    before_pods = set(await cluster.pods_of("web"))
    adapter = adapter_for(cluster)
    async with Feed(adapter, cluster) as feed:
        await feed.synced()
        before = datetime.now(UTC).replace(microsecond=0)
        await adapter.rollout_restart(key(cluster, "web"))
        deploy = await cluster.get("deployments", "web")
        assert deploy is not None
        stamp = deploy["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        assert stamp.endswith("Z") and datetime.fromisoformat(stamp) >= before
        await cluster.wait_rollout("web")
        after_pods = set(await cluster.pods_of("web"))
        assert len(after_pods) == 2 and not after_pods & before_pods
        await feed.until(lambda: set(feed.pods_of("web")) == after_pods and feed.all_healthy(after_pods),
                         "the new web pods, and only those")
        assert len(feed.snapshots) == 1


async def test_restart_a_pod_of_a_deployment(cluster: Cluster) -> None:
    await web_and_solo(cluster)
    adapter = adapter_for(cluster)
    async with Feed(adapter, cluster) as feed:
        await feed.synced()
        victim = min(feed.pods_of("web"))
        await adapter.perform(Action.RESTART, [feed.pods()[victim]])
        await cluster.wait_rollout("web")
        web = set(await cluster.pods_of("web"))
        assert len(web) == 2 and victim not in web
        await feed.until(lambda: set(feed.pods_of("web")) == web and feed.all_healthy(web), "a replacement pod")


async def test_delete_pods(cluster: Cluster) -> None:
    expected = await web_and_solo(cluster)
    adapter = adapter_for(cluster)
    async with Feed(adapter, cluster) as feed:
        await feed.synced()
        await adapter.delete_pods([feed.pods()["solo"]])
        await feed.until(lambda: "solo" not in feed.pod_names(), "the deleted pod gone from the store")
        assert await cluster.get("pods", "solo") is None
        assert feed.pod_names() == expected - {"solo"}


async def test_get_yaml_names_the_object(cluster: Cluster) -> None:
    await web_and_solo(cluster)
    adapter = adapter_for(cluster)
    deploy = yaml.safe_load(await adapter.get_yaml("deploy", cluster.namespace, "web"))
    assert (deploy["kind"], deploy["metadata"]["name"]) == ("Deployment", "web")
    assert (deploy["metadata"]["namespace"], deploy["spec"]["replicas"]) == (cluster.namespace, 2)
    assert "managedFields" not in deploy["metadata"]
    pod = yaml.safe_load(await adapter.get_yaml("pod", cluster.namespace, "solo"))
    assert (pod["kind"], pod["metadata"]["name"]) == ("Pod", "solo")


async def test_namespaces_lists_the_test_namespace(cluster: Cluster) -> None:
    assert cluster.namespace in await adapter_for(cluster).namespaces()


async def test_set_namespace_resyncs_without_duplicates(cluster: Cluster) -> None:
    first = await web_and_solo(cluster)
    second = await cluster.create_namespace("b")
    if second is None:
        pytest.skip("the cluster does not let these credentials create a second namespace")
    await cluster.create_pod("other", labels={"app": "other"}, namespace=second)
    await cluster.make_ready(second, "other")
    adapter = adapter_for(cluster)
    async with Feed(adapter, cluster) as feed:
        await feed.synced()
        assert feed.pod_names() == first
        await adapter.set_namespace(second)
        await feed.synced(2)
        assert adapter.namespace == second
        assert feed.pod_names() == {"other"} and not feed.store.specs
        await adapter.set_namespace(cluster.namespace)
        await feed.synced(3)
        assert feed.pod_names() == first  # and each once: Feed.pods() checks
        assert feed.desired(cluster.namespace, "web") == 2
        await cluster.create_pod("again", labels={"app": "again"})  # the new session is live too
        await feed.until(lambda: "again" in feed.pod_names(), "a pod created after the switch back")
        assert feed.pod_names() == first | {"again"}
