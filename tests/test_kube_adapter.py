"""The k3s adapter: pure mapping on dicts, and the adapter over real HTTP against the
project's emulated Kubernetes API server (`kube` fixture) with real kr8s — nothing patched.

Live tests wait on conditions in a Store fed by the adapter (20 ms polling, 10 s deadline),
never on fixed sleeps.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backends.adapter import Action, ActionError, ref_of
from backends.kube import (
    DEPLOYMENTS,
    PODS,
    RESTARTED_AT,
    STARTUP_GRACE,
    STATEFULSETS,
    WATCHED,
    KubeAdapter,
    KubeconfigError,
    backoff_delays,
    denial_message,
    event_from,
    namespace_from,
    service_from,
    instance_from_pod,
    kubectl_status,
    load_target,
    pod_owner,
    resolve_target,
    spec_from_workload,
)
from backends.model import (
    ClusterEvent,
    KubeService,
    Namespace,
    ConnState,
    Health,
    InstanceGone,
    Port,
    RunState,
    Source,
    SourceStatus,
    WorkloadKey,
    WorkloadSpec,
)
from tests.support.feed import KubeFeed
from tests.support.kube_emulator import KubeEmulator

DEADLINE = 10.0
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


# ---- pure: pods ----------------------------------------------------------------------------


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running(ready: bool = True, restarts: int = 0, name: str = "web", **extra: Any) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts, "started": True,
            "state": {"running": {"startedAt": rfc3339(NOW - timedelta(hours=1))}}, **extra}


def waiting(reason: str, restarts: int = 0, name: str = "web", **extra: Any) -> dict:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}},
            **extra}


def terminated(reason: str | None, code: int, restarts: int = 0, name: str = "web", **extra: Any) -> dict:
    state: dict[str, Any] = {"exitCode": code, "finishedAt": rfc3339(NOW - timedelta(minutes=1))}
    if reason:
        state["reason"] = reason
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"terminated": state}, **extra}


def pod(
    name: str = "web-7d4b9c6f5d-x2x7k",
    *,
    namespace: str = "shop",
    phase: str = "Running",
    ready: bool | None = None,
    statuses: list[dict] | None = None,
    init_statuses: list[dict] | None = None,
    init_containers: list[dict] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-7d4b9c6f5d"),
    labels: dict[str, str] | None = None,
    started: datetime | None = NOW - timedelta(hours=1),
    deleting: bool = False,
    containers: list[dict] | None = None,
    **status_extra: Any,
) -> dict:
    """A pod as the API serves it, trimmed to what the mapping reads."""
    statuses = [running()] if statuses is None else statuses
    if ready is None:
        ready = phase == "Running" and all(s.get("ready") for s in statuses)
    meta: dict[str, Any] = {
        "name": name, "namespace": namespace, "uid": f"uid-{name}",
        "creationTimestamp": rfc3339(NOW - timedelta(hours=2)),
        "labels": {"app": "web", "pod-template-hash": "7d4b9c6f5d"} if labels is None else labels,
    }
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "o",
                                    "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    spec: dict[str, Any] = {"containers": containers or [
        {"name": "web", "image": "shop/web:1.2", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}
    if init_containers:
        spec["initContainers"] = init_containers
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Initialized", "status": "True"},
                       {"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": statuses,
        **status_extra,
    }
    if started is not None:
        status["startTime"] = rfc3339(started)
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    return {"metadata": meta, "spec": spec, "status": status}


@pytest.mark.parametrize(
    ("shape", "status_text", "state", "health"),
    [
        (pod(), "Running", RunState.RUNNING, Health.HEALTHY),
        (pod(statuses=[running(ready=False)], started=NOW - timedelta(seconds=30)),
         "Running", RunState.RUNNING, Health.STARTING),
        (pod(statuses=[running(ready=False)], started=NOW - timedelta(minutes=6)),
         "Running", RunState.RUNNING, Health.NOT_READY),
        (pod(statuses=[running(ready=False, restarts=1)], started=NOW - timedelta(seconds=30)),
         "Running", RunState.RUNNING, Health.NOT_READY),
        (pod(statuses=[waiting("CrashLoopBackOff", restarts=5,
                               lastState={"terminated": {"exitCode": 1, "reason": "Error"}})]),
         "CrashLoopBackOff", RunState.RESTARTING, Health.CRASH_LOOPING),
        (pod(phase="Pending", statuses=[waiting("ImagePullBackOff")]),
         "ImagePullBackOff", RunState.CREATED, Health.UNHEALTHY),
        (pod(phase="Pending", statuses=[waiting("ErrImageNeverPull")]),
         "ErrImageNeverPull", RunState.CREATED, Health.UNHEALTHY),
        # Pending past STARTUP_GRACE (started an hour ago, created two): on its way, not stopped.
        (pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
         "ContainerCreating", RunState.CREATED, Health.NOT_READY),
        (pod(phase="Pending", statuses=[], started=None), "Pending", RunState.CREATED, Health.NOT_READY),
        (pod(statuses=[terminated("OOMKilled", 137, restarts=1)]),
         "OOMKilled", RunState.RESTARTING, Health.UNHEALTHY),
        (pod(phase="Succeeded", statuses=[terminated("Completed", 0)]),
         "Completed", RunState.EXITED, Health.STOPPED),
        (pod(phase="Failed", statuses=[terminated("Error", 2)]), "Error", RunState.EXITED, Health.STOPPED),
        (pod(phase="Failed", statuses=[terminated(None, 3)]), "ExitCode:3", RunState.EXITED, Health.STOPPED),
        (pod(phase="Failed", statuses=[{"name": "web", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]),
         "Signal:9", RunState.EXITED, Health.STOPPED),
        (pod(deleting=True), "Terminating", RunState.REMOVING, Health.STOPPED),
        (pod(phase="Succeeded", deleting=True, statuses=[terminated("Completed", 0)]),
         "Completed", RunState.EXITED, Health.STOPPED),
        (pod(phase="Unknown", statuses=[]), "Unknown", RunState.UNKNOWN, Health.UNKNOWN),
        (pod(phase="Failed", reason="Evicted", statuses=[]), "Evicted", RunState.EXITED, Health.STOPPED),
    ],
    ids=["ready", "not-ready-young", "not-ready-old", "not-ready-restarted", "crashloop", "imagepullbackoff",
         "errimageneverpull", "containercreating", "pending", "oomkilled", "completed", "error", "exitcode",
         "signal", "terminating", "completed-deleting", "unknown", "evicted"],
)
def test_pod_state_health_and_kubectl_status(shape: dict, status_text: str, state: RunState, health: Health) -> None:
    inst = instance_from_pod(shape, NOW)
    assert (inst.status_text, inst.state, inst.health) == (status_text, state, health)
    assert kubectl_status(shape) == status_text


def test_pod_fields() -> None:
    shape = pod(
        statuses=[running(), running(name="proxy", restarts=2)],
        containers=[{"name": "web", "image": "shop/web:1.2",
                     "ports": [{"containerPort": 8080, "protocol": "TCP", "hostPort": 80},
                               {"containerPort": 53, "protocol": "UDP"}]},
                    {"name": "proxy", "image": "envoy:1", "ports": [{"containerPort": 8080}]}],
        labels={"tier": "front", "app": "web", "pod-template-hash": "7d4b9c6f5d"},
    )
    inst = instance_from_pod(shape, NOW)
    assert inst.source == Source.K3S and inst.id == "uid-web-7d4b9c6f5d-x2x7k"
    assert inst.key == "k3s/uid-web-7d4b9c6f5d-x2x7k"
    assert inst.name == "web-7d4b9c6f5d-x2x7k"
    assert inst.workload == WorkloadKey(Source.K3S, "shop", "web")
    assert inst.image == "shop/web:1.2"
    assert inst.ports == (Port(53, "udp"), Port(8080, "tcp"))  # no host ports, no duplicates
    assert inst.created_at == NOW - timedelta(hours=2) and inst.started_at == NOW - timedelta(hours=1)
    assert inst.restarts == 2 and inst.exit_code is None and not inst.oom_killed
    assert inst.labels == (("app", "web"), ("pod-template-hash", "7d4b9c6f5d"), ("tier", "front"))
    assert inst.number == 1 and inst.running


def test_exit_codes_and_oom_kills() -> None:
    done = instance_from_pod(pod(phase="Failed", statuses=[terminated("Error", 2)]), NOW)
    assert done.exit_code == 2 and done.finished_at == NOW - timedelta(minutes=1)
    crashing = instance_from_pod(pod(statuses=[waiting(
        "CrashLoopBackOff", restarts=3, lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})]), NOW)
    assert crashing.oom_killed and crashing.exit_code == 137 and crashing.restarts == 3
    assert crashing.status_text == "CrashLoopBackOff"
    assert instance_from_pod(pod(statuses=[terminated("OOMKilled", 137, restarts=1)]), NOW).oom_killed


@pytest.mark.parametrize(
    ("init_statuses", "expected", "state"),
    [
        ([{"name": "migrate", "state": {"running": {}}}], "Init:0/1", RunState.CREATED),
        ([waiting("CrashLoopBackOff", restarts=2, name="migrate")], "Init:CrashLoopBackOff", RunState.RESTARTING),
        ([terminated(None, 3, name="migrate")], "Init:ExitCode:3", RunState.CREATED),
        ([terminated("Error", 1, name="migrate")], "Init:Error", RunState.CREATED),
        ([terminated("Completed", 0, name="migrate")], "Running", RunState.RUNNING),
    ],
)
def test_init_containers(init_statuses: list[dict], expected: str, state: RunState) -> None:
    phase = "Running" if expected == "Running" else "Pending"
    statuses = [running()] if phase == "Running" else [waiting("PodInitializing")]
    shape = pod(phase=phase, statuses=statuses, init_statuses=init_statuses,
                init_containers=[{"name": "migrate", "image": "shop/migrate:1"}])
    if phase == "Pending":
        shape["status"]["conditions"][0]["status"] = "False"
    assert kubectl_status(shape) == expected
    assert instance_from_pod(shape, NOW).state == state


def test_sidecars_and_completed_containers_beside_running_ones() -> None:
    sidecar = pod(init_containers=[{"name": "mesh", "image": "mesh:1", "restartPolicy": "Always"}],
                  init_statuses=[{"name": "mesh", "started": True, "state": {"running": {}}}])
    assert kubectl_status(sidecar) == "Running"
    done_beside_ready = pod(statuses=[terminated("Completed", 0, name="setup"), running()], ready=True)
    assert kubectl_status(done_beside_ready) == "Running"
    done_beside_ready["status"]["conditions"][1]["status"] = "False"
    assert kubectl_status(done_beside_ready) == "NotReady"
    gated = pod(phase="Pending", statuses=[], started=None,
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert kubectl_status(gated) == "SchedulingGated"


@pytest.mark.parametrize(
    ("name", "owner", "labels", "workload", "number"),
    [
        ("web-7d4b9c6f5d-x2x7k", ("ReplicaSet", "web-7d4b9c6f5d"), {"pod-template-hash": "7d4b9c6f5d"}, "web", 1),
        ("my-api-v2-5f6b7-abcde", ("ReplicaSet", "my-api-v2-5f6b7"), {"pod-template-hash": "5f6b7"}, "my-api-v2", 1),
        ("lone-rs-abcde", ("ReplicaSet", "lone-rs"), {}, "lone-rs", 1),  # a bare ReplicaSet keeps its name
        ("db-2", ("StatefulSet", "db"), {}, "db", 2),
        ("db-0", ("StatefulSet", "db"), {}, "db", 0),
        ("agent-k8x2p", ("DaemonSet", "agent"), {}, "agent", 1),
        ("backup-28971-q2x9z", ("Job", "backup-28971"), {}, "backup-28971", 1),
        ("debug", None, {}, "debug", 1),
    ],
)
def test_pod_owner_names_the_workload(name: str, owner: tuple[str, str] | None, labels: dict, workload: str,
                                      number: int) -> None:
    inst = instance_from_pod(pod(name, owner=owner, labels=labels), NOW)
    assert inst.workload == WorkloadKey(Source.K3S, "shop", workload)
    assert inst.number == number


def test_the_controller_owner_wins() -> None:
    shape = pod("x-1", owner=None, labels={})
    shape["metadata"]["ownerReferences"] = [
        {"kind": "ConfigMap", "name": "holder"},
        {"kind": "StatefulSet", "name": "x", "controller": True},
    ]
    assert pod_owner(shape) == ("StatefulSet", "x")
    assert pod_owner(pod("bare", owner=None)) is None


def test_a_pod_with_nothing_in_it_still_maps() -> None:
    inst = instance_from_pod({"metadata": {"name": "x", "namespace": "n"}}, NOW)
    assert (inst.id, inst.workload.name, inst.state, inst.image, inst.status_text) == (
        "n/x", "x", RunState.UNKNOWN, "", "Unknown")


# ---- pure: workloads ------------------------------------------------------------------------


def workload(kind: str = "Deployment", replicas: int | None = 3, generation: int = 4,
             status: dict | None = None) -> dict:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "web", "image": "shop/web:1.2"},
                                                               {"name": "proxy", "image": "envoy:1"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "metadata": {"name": "web", "namespace": "shop", "generation": generation, "labels": {"b": "2", "a": "1"},
                     "creationTimestamp": rfc3339(NOW)},
        "spec": spec,
        "status": {"observedGeneration": 4, "readyReplicas": 2, "updatedReplicas": 3} if status is None else status,
    }


def test_workload_spec_mapping() -> None:
    spec = spec_from_workload(workload(), "Deployment")
    assert spec == WorkloadSpec(
        key=WorkloadKey(Source.K3S, "shop", "web"), kind="Deployment", desired=3, image="shop/web:1.2", ready=2,
        updated=3, labels=(("a", "1"), ("b", "2")), created_at=NOW, observed=True)
    assert spec_from_workload(workload(replicas=None), "Deployment").desired == 1  # the API's default
    assert spec_from_workload(workload(replicas=0), "StatefulSet").desired == 0
    assert spec_from_workload(workload(replicas=0), "StatefulSet").kind == "StatefulSet"
    assert not spec_from_workload(workload(generation=5), "Deployment").observed  # controller behind
    fresh = spec_from_workload(workload(status={}), "Deployment")
    assert (fresh.ready, fresh.updated, fresh.observed) == (0, 0, False)


# ---- pure: kubeconfig, messages, back-off -----------------------------------------------------


def kubeconfig(*contexts: str, current: str = "", server: str = "https://10.0.0.1:6443") -> dict:
    return {"clusters": [{"name": c, "cluster": {"server": f"{server}/{c}"}} for c in contexts],
            "contexts": [{"name": c, "context": {"cluster": c, "user": c}} for c in contexts],
            "current-context": current}


def test_resolve_target() -> None:
    config = kubeconfig("a", "b", current="b")
    assert resolve_target([config], None).context == "b"
    assert resolve_target([config], "a").server == "https://10.0.0.1:6443/a"
    assert resolve_target([kubeconfig("a", "b")], None).context == "a"  # no current-context: the first
    merged = resolve_target([kubeconfig("a", server="https://first"), kubeconfig("a", "c", current="c",
                                                                                  server="https://second")], None)
    assert (merged.context, merged.contexts) == ("c", ("a", "c"))
    assert resolve_target([kubeconfig("a", server="https://first"), kubeconfig("a", server="https://second")],
                          "a").server == "https://first/a"  # the first file wins
    with pytest.raises(KubeconfigError, match=r"^k3s: context 'x' not in kubeconfig \(contexts: a, b\)$"):
        resolve_target([config], "x")
    with pytest.raises(KubeconfigError, match="has no contexts"):
        resolve_target([{}], None)


def test_load_target_messages(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(KubeconfigError) as exc:
        load_target(missing, None)
    assert str(exc.value) == f"k3s: no kubeconfig ({missing} not found; set KUBECONFIG or --kubeconfig)"
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_target(str(broken), None)
    good = tmp_path / "good"
    good.write_text(yaml.safe_dump(kubeconfig("dev", current="dev")))
    assert load_target(f"{missing}:{good}", None).context == "dev"  # KUBECONFIG lists: missing files skipped


def test_denial_message() -> None:
    assert denial_message({}, "x") is None
    assert denial_message({STATEFULSETS: "list"}, "x") == "k3s: no permission to list statefulsets in namespace x"
    assert denial_message({STATEFULSETS: "list", PODS: "list"}, None) == (
        "k3s: no permission to list pods, statefulsets in all namespaces")
    assert denial_message({PODS: "list", STATEFULSETS: "watch"}, "x") == (
        "k3s: no permission to list pods in namespace x; no permission to watch statefulsets in namespace x")
    assert denial_message({DEPLOYMENTS: "serve"}, "x") == "k3s: deployments not served by this cluster"


def test_backoff_delays() -> None:
    delays = backoff_delays(0.5, 3)
    assert [next(delays) for _ in range(5)] == [0.5, 1, 2, 3, 3]


# ---- live: helpers -------------------------------------------------------------------------------


class Feed(KubeFeed):
    deadline = DEADLINE

    def workload(self, namespace: str, name: str):
        return self.store.workloads.get(WorkloadKey(Source.K3S, namespace, name).id)

    def has_state(self, state: ConnState, fragment: str = "") -> bool:
        status = self.status
        return status is not None and status.state == state and fragment in (status.message or "")


def emulator_pods(kube: KubeEmulator, namespace: str | None = None) -> set[str]:
    return {p["metadata"]["name"] for p in kube.list_objects("pods", namespace)}


def adapter_for(kube: KubeEmulator, **kwargs: Any) -> KubeAdapter:
    options: dict[str, Any] = dict(kubeconfig=str(kube.kubeconfig), reconnect_min=0.05, reconnect_max=0.4,
                                   api_timeout=3.0)
    options.update(kwargs)
    return KubeAdapter(**options)


def watch_requests(kube: KubeEmulator, path: str) -> list:
    return [r for r in kube.requests_to(path, "GET") if r.params.get("watch") == "true"]


def list_requests(kube: KubeEmulator, path: str) -> list:
    return [r for r in kube.requests_to(path, "GET") if r.params.get("watch") != "true"]


def shop(kube: KubeEmulator, namespace: str = "default") -> None:
    """web: a Deployment with 2 ready pods; db: a StatefulSet with 1; idle: scaled to 0;
    debug: a bare pod."""
    kube.add_deployment(namespace, "web", replicas=2, ports=[8080], image="shop/web:1")
    kube.add_pod(namespace, "web-aaa-1", owner="web")
    kube.add_pod(namespace, "web-aaa-2", owner="web")
    kube.add_statefulset(namespace, "db", replicas=1, image="postgres:16")
    kube.add_pod(namespace, "db-0", owner="db", owner_kind="StatefulSet")
    kube.add_deployment(namespace, "idle", replicas=0)
    kube.add_pod(namespace, "debug")


# ---- live: snapshot and changes ---------------------------------------------------------------


async def test_snapshot_of_pods_deployments_and_statefulsets(kube: KubeEmulator) -> None:
    shop(kube)
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        assert feed.status == SourceStatus(Source.K3S, ConnState.CONNECTED, f"emulated @ {kube.url}",
                                           version="v1.31.4+k3s1", message=None, scope="all namespaces")
        assert [s.state for s in feed.statuses()][:2] == [ConnState.CONNECTING, ConnState.CONNECTED]
        assert feed.pod_names() == {"web-aaa-1", "web-aaa-2", "db-0", "debug"}
        web = feed.workload("default", "web")
        assert (web.state, web.running, web.desired, web.health) == ("running", 2, 2, Health.HEALTHY)
        assert web.ports == (Port(8080, "tcp"),)
        db = feed.workload("default", "db")
        assert (db.state, db.running, db.desired, db.image) == ("running", 1, 1, "postgres:16")
        idle = feed.workload("default", "idle")
        assert (idle.state, idle.running, idle.desired) == ("scaled to 0", 0, 0)
        assert feed.workload("default", "debug").desired == 1
        assert feed.store.specs[WorkloadKey(Source.K3S, "default", "db").id].kind == "StatefulSet"
        assert feed.pods()["db-0"].number == 0
        assert len(feed.snapshots) == 1
        # One list per kind, then one watch per kind from the list's resourceVersion.
        await kube.wait_for_watches(len(WATCHED))
        for path in ("/api/v1/pods$", "/apis/apps/v1/deployments$", "/apis/apps/v1/statefulsets$"):
            assert len(list_requests(kube, path)) == 1
            [watch] = watch_requests(kube, path)
            assert watch.params["resourceVersion"] and watch.params["allowWatchBookmarks"] == "true"


async def test_live_changes_reach_the_store(kube: KubeEmulator) -> None:
    shop(kube)
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        await kube.wait_for_watches(len(WATCHED))
        kube.add_pod("default", "web-aaa-3", owner="web", phase="Pending")
        await feed.until(lambda: "web-aaa-3" in feed.pod_names(), "the new pod")
        assert feed.pods()["web-aaa-3"].state in (RunState.CREATED, RunState.RUNNING)
        kube.set_pod_status("default", "web-aaa-1", phase="Running", ready=False, restarts=2)
        await feed.until(lambda: feed.pods()["web-aaa-1"].health == Health.NOT_READY, "web-aaa-1 not ready")
        assert feed.pods()["web-aaa-1"].restarts == 2
        kube.patch_object("deployments", "default", "web", {"spec": {"replicas": 5}})
        await feed.until(lambda: feed.workload("default", "web").desired == 5, "desired 5")
        kube.delete_object("pods", "default", "debug")
        await feed.until(lambda: "debug" not in feed.pod_names(), "debug gone")
        assert feed.workload("default", "debug") is None
        kube.delete_object("statefulsets", "default", "db")  # cascades to db-0
        await feed.until(lambda: feed.workload("default", "db") is None, "db gone")
        assert feed.pod_names() == {"web-aaa-1", "web-aaa-2", "web-aaa-3"}
        assert len(feed.snapshots) == 1
        gone = [e for e in feed.events if isinstance(e, InstanceGone)]
        assert len(gone) == 2  # debug, db-0


async def test_namespace_filter_and_all_namespaces(kube: KubeEmulator) -> None:
    kube.add_pod("team-a", "a-1")
    kube.add_pod("team-b", "b-1")
    async with Feed(adapter_for(kube, namespace="team-a")) as feed:
        await feed.synced()
        assert feed.pod_names() == {"a-1"}
        kube.add_pod("team-b", "b-2")
        kube.add_pod("team-a", "a-2")
        await feed.until(lambda: "a-2" in feed.pod_names(), "a-2")
        assert feed.pod_names() == {"a-1", "a-2"}
        assert watch_requests(kube, "^/api/v1/namespaces/team-a/pods$")
        assert not watch_requests(kube, "^/api/v1/pods$")
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        assert feed.pod_names() == {"a-1", "a-2", "b-1", "b-2"}
        assert {i.workload.group for i in feed.store.instances.values()} == {"team-a", "team-b"}
        await kube.wait_for_watches(len(WATCHED))
        assert watch_requests(kube, "^/api/v1/pods$")


async def test_set_namespace_resyncs(kube: KubeEmulator) -> None:
    kube.add_pod("team-a", "a-1")
    kube.add_deployment("team-b", "api")
    kube.add_pod("team-b", "api-x-1", owner="api")
    adapter = adapter_for(kube, namespace="team-a")
    async with Feed(adapter) as feed:
        await feed.synced()
        assert feed.pod_names() == {"a-1"}
        await adapter.set_namespace("team-b")
        await feed.synced(2)
        assert adapter.namespace == "team-b"
        assert feed.pod_names() == {"api-x-1"} and feed.workload("team-b", "api").desired == 1
        await adapter.set_namespace(None)
        await feed.synced(3)
        assert feed.pod_names() == {"a-1", "api-x-1"}
        assert ConnState.UNREACHABLE not in [s.state for s in feed.statuses()]
        kube.add_pod("team-c", "c-1")  # the new session is live too
        await feed.until(lambda: "c-1" in feed.pod_names(), "c-1")


async def test_a_pod_starting_for_too_long_turns_not_ready_by_itself(kube: KubeEmulator) -> None:
    kube.add_pod("default", "slow", ready=False)
    almost = datetime.now(UTC) - STARTUP_GRACE + timedelta(seconds=1.5)
    kube.set_pod_status("default", "slow", phase="Running", ready=False, startTime=rfc3339(almost))
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        assert feed.pods()["slow"].health == Health.STARTING
        await kube.wait_for_watches(len(WATCHED))
        await feed.until(lambda: feed.pods()["slow"].health == Health.NOT_READY, "slow not ready", timeout=5)


# ---- live: resync ----------------------------------------------------------------------------


async def test_a_cut_watch_resumes_without_duplicates_or_losses(kube: KubeEmulator) -> None:
    shop(kube)
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        await kube.wait_for_watches(len(WATCHED))
        assert kube.cut_watches() == len(WATCHED)
        # Changes while no watch is open: the resumed watches must replay them.
        kube.add_pod("default", "web-aaa-3", owner="web")
        kube.delete_object("pods", "default", "debug")
        kube.patch_object("deployments", "default", "idle", {"spec": {"replicas": 1}})
        await feed.until(lambda: feed.pod_names() == emulator_pods(kube), "the gap replayed")
        await feed.until(lambda: feed.workload("default", "idle").desired == 1, "idle scaled")
        await kube.wait_for_watches(len(WATCHED))
        for path in ("/api/v1/pods$", "/apis/apps/v1/deployments$", "/apis/apps/v1/statefulsets$"):
            assert len(list_requests(kube, path)) == 1  # resumed from a resourceVersion, not relisted
            first, resumed = watch_requests(kube, path)
            assert int(resumed.params["resourceVersion"]) >= int(first.params["resourceVersion"])
        assert len(feed.snapshots) == 1
        assert len(feed.store.instances) == len(emulator_pods(kube))


@pytest.mark.parametrize("how", ["error-event-on-open-watch", "error-event-on-rewatch", "http-410-on-rewatch"])
async def test_expired_history_relists_without_a_storm(kube: KubeEmulator, how: str) -> None:
    shop(kube)
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        await kube.wait_for_watches(len(WATCHED))
        kube.add_namespace("elsewhere")  # moves the resourceVersion past what every watch has seen
        watches_before = len(watch_requests(kube, "pods$"))
        if how == "error-event-on-open-watch":
            kube.expire_history(close_watches=True)
        else:
            kube.expire_history(as_http_error=how == "http-410-on-rewatch")
            kube.cut_watches()
        kube.add_pod("default", "web-aaa-3", owner="web")
        kube.delete_object("pods", "default", "debug")
        kube.patch_object("statefulsets", "default", "db", {"spec": {"replicas": 3}})
        await feed.until(lambda: feed.pod_names() == emulator_pods(kube), "the relist")
        await feed.until(lambda: feed.workload("default", "db").desired == 3, "db relisted")
        await kube.wait_for_watches(len(WATCHED))
        kube.add_pod("default", "web-aaa-4", owner="web")  # watching again after the relist
        await feed.until(lambda: "web-aaa-4" in feed.pod_names(), "a change after the relist")
        for path in ("/api/v1/pods$", "/apis/apps/v1/deployments$", "/apis/apps/v1/statefulsets$"):
            assert len(list_requests(kube, path)) == 2  # the first list and one relist
        # Pods: the expired attempt (when resuming) and the watch from the relist. No storm.
        assert len(watch_requests(kube, "pods$")) - watches_before == (1 if how == "error-event-on-open-watch" else 2)
        assert len(feed.snapshots) == 1  # relists are diffs, not snapshots
        assert any(isinstance(e, InstanceGone) for e in feed.events)
        assert len(feed.store.instances) == len(emulator_pods(kube))


async def test_a_server_that_keeps_expiring_gets_relists_with_back_off(kube: KubeEmulator) -> None:
    kube.add_pod("default", "a")
    async with Feed(adapter_for(kube, reconnect_min=0.05, reconnect_max=0.4)) as feed:
        await feed.synced()
        await kube.wait_for_watches(len(WATCHED))
        kube.fail("GET", r"^/api/v1/pods$", 410, query={"watch": "true"})
        started = time.monotonic()
        kube.cut_watches("pods")
        await feed.until(lambda: len(list_requests(kube, "^/api/v1/pods$")) >= 5, "four relists")
        # Back-off between attempts that get nowhere: 0.05 + 0.1 + 0.2 (+ 0.4) seconds at least.
        assert time.monotonic() - started >= 0.35
        assert len(watch_requests(kube, "^/api/v1/pods$")) <= 7
        assert feed.has_state(ConnState.CONNECTED) and feed.pod_names() == {"a"}
        kube.clear_faults()
        kube.add_pod("default", "b")
        await feed.until(lambda: feed.pod_names() == {"a", "b"}, "watching again")


async def test_bookmarks_move_the_resume_point(kube: KubeEmulator) -> None:
    kube.add_pod("default", "a")
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        await kube.wait_for_watches(len(WATCHED))
        kube.add_namespace("unrelated")  # the resourceVersion moves on; no pod changes
        mark = kube.resource_version
        kube.send_bookmarks()  # written before the cut below ends the stream
        kube.expire_history()  # anything older than the bookmark is gone
        kube.cut_watches("pods")
        kube.add_pod("default", "c")
        await feed.until(lambda: "c" in feed.pod_names(), "c after the cut")
        assert len(list_requests(kube, "^/api/v1/pods$")) == 1  # resumed from the bookmark: no relist
        first, resumed = watch_requests(kube, "^/api/v1/pods$")
        assert first.params["allowWatchBookmarks"] == "true" and resumed.params["resourceVersion"] == mark


async def test_server_down_then_back(kube: KubeEmulator) -> None:
    shop(kube)
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        await kube.stop()
        await feed.until(lambda: feed.has_state(ConnState.UNREACHABLE), "unreachable")
        assert feed.status.message == f"k3s: unreachable at {kube.url} — connection refused"
        assert feed.pod_names() == {"web-aaa-1", "web-aaa-2", "db-0", "debug"}  # rows stay meanwhile
        kube.add_pod("default", "web-aaa-3", owner="web")  # changes while the server is away
        kube.delete_object("pods", "default", "debug")
        await kube.start()
        await feed.synced(2)
        await feed.until(lambda: feed.has_state(ConnState.CONNECTED), "connected again")
        assert feed.pod_names() == {"web-aaa-1", "web-aaa-2", "web-aaa-3", "db-0"}
        assert feed.status.version == "v1.31.4+k3s1"


async def test_unauthorized(kube: KubeEmulator) -> None:
    kube.require_token = "s3cret"
    async with Feed(adapter_for(kube)) as feed:
        await feed.until(lambda: feed.has_state(ConnState.UNREACHABLE), "unreachable")
        assert feed.status.message == (
            f"k3s: unreachable at {kube.url} — 401 Unauthorized: check the kubeconfig's credentials")
        assert feed.status.endpoint == f"emulated @ {kube.url}"
        kube.require_token = None  # credentials fixed: it recovers by itself
        await feed.synced()
        assert feed.has_state(ConnState.CONNECTED)


async def test_forbidden_statefulsets_do_not_hide_the_rest(kube: KubeEmulator) -> None:
    shop(kube)
    fault = kube.fail("GET", r"/statefulsets$", 403)
    async with Feed(adapter_for(kube, denied_retry=0.3)) as feed:
        await feed.synced()
        await feed.until(lambda: feed.has_state(ConnState.CONNECTED, "no permission"), "the denial")
        assert feed.status.message == "k3s: no permission to list statefulsets in all namespaces"
        assert feed.pod_names() == {"web-aaa-1", "web-aaa-2", "db-0", "debug"}
        assert feed.workload("default", "web").desired == 2
        assert WorkloadKey(Source.K3S, "default", "db").id not in feed.store.specs
        kube.add_pod("default", "web-aaa-3", owner="web")  # the others stay live
        await feed.until(lambda: "web-aaa-3" in feed.pod_names(), "a change while denied")
        fault.cancel()  # access granted: the kind is picked up on its next try
        await feed.until(lambda: WorkloadKey(Source.K3S, "default", "db").id in feed.store.specs, "db's spec")
        await feed.until(lambda: feed.has_state(ConnState.CONNECTED) and feed.status.message is None,
                         "the denial lifted")
        assert ConnState.UNREACHABLE not in [s.state for s in feed.statuses()]
        assert len(feed.store.instances) == len(emulator_pods(kube))


async def test_forbidden_in_one_namespace_says_which(kube: KubeEmulator) -> None:
    kube.add_pod("secret", "s-1")
    kube.fail("GET", r"/namespaces/secret/(deployments|statefulsets)$", 403)
    async with Feed(adapter_for(kube, namespace="secret")) as feed:
        await feed.synced()
        await feed.until(lambda: feed.has_state(ConnState.CONNECTED, "no permission"), "the denial")
        assert feed.status.message == "k3s: no permission to list deployments, statefulsets in namespace secret"
        assert feed.pod_names() == {"s-1"}


async def test_watch_forbidden_but_list_allowed(kube: KubeEmulator) -> None:
    shop(kube)
    kube.fail("GET", r"/statefulsets$", 403, query={"watch": "true"})
    async with Feed(adapter_for(kube, namespace="default")) as feed:
        await feed.synced()
        await feed.until(lambda: feed.has_state(ConnState.CONNECTED, "no permission"), "the denial")
        assert feed.status.message == "k3s: no permission to watch statefulsets in namespace default"
        # Listed once, but without a watch it would go stale: not shown, and said so.
        await feed.until(lambda: WorkloadKey(Source.K3S, "default", "db").id not in feed.store.specs, "db hidden")
        assert feed.workload("default", "web").desired == 2


async def test_a_namespace_deleted_while_viewed(kube: KubeEmulator) -> None:
    shop(kube, "team")
    async with Feed(adapter_for(kube, namespace="team")) as feed:
        await feed.synced()
        await kube.wait_for_watches(len(WATCHED))
        kube.delete_object("namespaces", None, "team")
        await feed.until(lambda: not feed.store.instances and not feed.store.workloads, "the rows gone")
        assert feed.has_state(ConnState.CONNECTED)
        kube.add_pod("team", "back-1")  # recreated: shown again
        await feed.until(lambda: feed.pod_names() == {"back-1"}, "the namespace back")
        assert ConnState.UNREACHABLE not in [s.state for s in feed.statuses()]


# ---- live: configuration faults -------------------------------------------------------------


async def test_missing_kubeconfig(kube: KubeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "absent.yaml")
    async with Feed(adapter_for(kube, kubeconfig=missing)) as feed:
        await feed.until(lambda: feed.has_state(ConnState.ABSENT), "not configured")
        assert feed.status.message == f"k3s: no kubeconfig ({missing} not found; set KUBECONFIG or --kubeconfig)"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    async with Feed(KubeAdapter(reconnect_min=0.05)) as feed:
        await feed.until(lambda: feed.has_state(ConnState.ABSENT), "not configured")
        assert feed.status.message == (
            "k3s: no kubeconfig (~/.kube/config not found; set KUBECONFIG or --kubeconfig)")
        assert feed.status.endpoint == "~/.kube/config"


async def test_unknown_context_then_set_context(kube: KubeEmulator, tmp_path: Path) -> None:
    kube.add_pod("default", "a")
    kube.add_pod("team", "t")
    first = kube.write_kubeconfig(tmp_path / "one.yaml", context="alpha")
    second = kube.write_kubeconfig(tmp_path / "two.yaml", context="beta", namespace="team")
    adapter = adapter_for(kube, kubeconfig=f"{first}:{second}", context="gamma")
    async with Feed(adapter) as feed:
        await feed.until(lambda: feed.has_state(ConnState.UNREACHABLE), "unreachable")
        assert feed.status.message == "k3s: context 'gamma' not in kubeconfig (contexts: alpha, beta)"
        assert feed.status.endpoint == f"gamma in {first}:{second}"
        assert await adapter.contexts() == ["alpha", "beta"]
        await adapter.set_context("beta")
        await feed.synced()
        assert feed.status == SourceStatus(Source.K3S, ConnState.CONNECTED, f"beta @ {kube.url}",
                                           version="v1.31.4+k3s1", scope="all namespaces")
        assert adapter.context == "beta" and feed.pod_names() == {"a", "t"}  # namespace None: all
        await adapter.set_context("alpha")
        await feed.synced(2)
        assert feed.status.endpoint == f"alpha @ {kube.url}"
        assert [s.state for s in feed.statuses()].count(ConnState.CONNECTING) == 3


async def test_a_slow_server_times_out(kube: KubeEmulator) -> None:
    kube.delay(r"^/version", 1.5, times=1)  # the first answer comes too late, the next in time
    async with Feed(adapter_for(kube, api_timeout=0.5)) as feed:
        await feed.until(lambda: feed.has_state(ConnState.UNREACHABLE), "unreachable")
        assert feed.status.message == f"k3s: unreachable at {kube.url} — timed out"
        await feed.synced()
        assert feed.has_state(ConnState.CONNECTED)


async def test_server_errors_are_reported_and_retried(kube: KubeEmulator) -> None:
    kube.add_pod("default", "a")
    fault = kube.fail("GET", r"/api/v1/pods$", 500, times=1)
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        assert fault.hits == 1
        [failure] = [s for s in feed.statuses() if s.state == ConnState.UNREACHABLE]
        assert failure.message == (
            f"k3s: unreachable at {kube.url} — 500 Internal Server Error: Internal error occurred: injected failure")
        assert feed.pod_names() == {"a"}


# ---- live: actions --------------------------------------------------------------------------


async def test_restart_deletes_the_pod_for_its_controller(kube: KubeEmulator) -> None:
    shop(kube)
    adapter = adapter_for(kube)
    async with Feed(adapter) as feed:
        await feed.synced()
        assert adapter.supports(Action.RESTART)
        assert not adapter.supports(Action.STOP) and not adapter.supports(Action.START)
        pods = feed.pods()
        await adapter.perform(Action.RESTART, [pods["web-aaa-1"], pods["db-0"]])
        assert kube.get_object("pods", "default", "web-aaa-1") is None
        assert kube.get_object("pods", "default", "db-0") is None
        await feed.until(lambda: "web-aaa-1" not in feed.pod_names(), "the restarted pod gone")
        with pytest.raises(ActionError, match="pod debug has no controller to recreate it"):
            await adapter.perform(Action.RESTART, [pods["debug"]])
        assert kube.get_object("pods", "default", "debug") is not None
        with pytest.raises(ActionError, match='pods "web-aaa-1" not found'):
            await adapter.perform(Action.RESTART, [pods["web-aaa-1"]])
        with pytest.raises(ActionError, match="not available"):
            await adapter.perform(Action.STOP, [pods["debug"]])


async def test_delete_pods(kube: KubeEmulator) -> None:
    shop(kube)
    adapter = adapter_for(kube)
    async with Feed(adapter) as feed:
        await feed.synced()
        pods = feed.pods()
        await adapter.delete_pods([pods["debug"], pods["web-aaa-2"]])
        await feed.until(lambda: feed.pod_names() == {"web-aaa-1", "db-0"}, "the deleted pods gone")
        await adapter.delete_pods([pods["debug"]])  # already gone: nothing to do
        fault = kube.fail("DELETE", r"/pods/web-aaa-1$", 403)
        with pytest.raises(ActionError, match='pods "web-aaa-1" is forbidden'):
            await adapter.delete_pods([pods["web-aaa-1"]])
        fault.cancel()


async def test_scale(kube: KubeEmulator) -> None:
    shop(kube)
    adapter = adapter_for(kube)
    async with Feed(adapter) as feed:
        await feed.synced()
        await adapter.scale(WorkloadKey(Source.K3S, "default", "web"), 4)
        assert kube.get_object("deployments", "default", "web")["spec"]["replicas"] == 4
        await feed.until(lambda: feed.workload("default", "web").desired == 4, "desired 4")
        await adapter.scale(WorkloadKey(Source.K3S, "default", "db"), 0)
        assert kube.get_object("statefulsets", "default", "db")["spec"]["replicas"] == 0
        with pytest.raises(ActionError, match="replicas must be 0 or more"):
            await adapter.scale(WorkloadKey(Source.K3S, "default", "web"), -1)
        with pytest.raises(ActionError, match="no Deployment or StatefulSet named ghost in namespace default"):
            await adapter.scale(WorkloadKey(Source.K3S, "default", "ghost"), 1)
        kube.fail("PATCH", r"/deployments/web/scale$", 422, message="spec.replicas: Invalid value: quota exceeded")
        with pytest.raises(ActionError, match="scale Deployment web: spec.replicas: Invalid value: quota exceeded"):
            await adapter.scale(WorkloadKey(Source.K3S, "default", "web"), 9)


async def test_actions_without_a_running_stream(kube: KubeEmulator) -> None:
    kube.add_deployment("default", "web")
    adapter = adapter_for(kube)
    await adapter.scale(WorkloadKey(Source.K3S, "default", "web"), 2)  # the kind found by asking
    assert kube.get_object("deployments", "default", "web")["spec"]["replicas"] == 2
    assert "default" in await adapter.namespaces()
    await kube.stop()
    with pytest.raises(ActionError, match="connection refused"):
        await adapter.scale(WorkloadKey(Source.K3S, "default", "web"), 3)
    await kube.start()


async def test_rollout_restart(kube: KubeEmulator) -> None:
    shop(kube)
    adapter = adapter_for(kube)
    before = datetime.now(UTC).replace(microsecond=0)
    await adapter.rollout_restart(WorkloadKey(Source.K3S, "default", "web"))
    deploy = kube.get_object("deployments", "default", "web")
    stamp = deploy["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert datetime.fromisoformat(stamp) >= before and stamp.endswith("Z")
    assert deploy["metadata"]["generation"] == 2  # a template change: the controller rolls
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:1"  # the rest intact
    await adapter.rollout_restart(WorkloadKey(Source.K3S, "default", "db"))
    assert RESTARTED_AT in kube.get_object("statefulsets", "default", "db")["spec"]["template"]["metadata"][
        "annotations"]
    kube.fail("PATCH", r"/deployments/web$", 403)
    with pytest.raises(ActionError, match=r'^restart Deployment web: deployments "web" is forbidden: User .* '
                                          r'cannot patch resource "deployments"'):
        await adapter.rollout_restart(WorkloadKey(Source.K3S, "default", "web"))


async def test_get_yaml(kube: KubeEmulator) -> None:
    shop(kube)
    adapter = adapter_for(kube)
    deploy = yaml.safe_load(await adapter.get_yaml("deploy", "default", "web"))
    assert (deploy["kind"], deploy["metadata"]["name"], deploy["spec"]["replicas"]) == ("Deployment", "web", 2)
    assert "managedFields" not in deploy["metadata"]
    assert yaml.safe_load(await adapter.get_yaml("pod", "default", "db-0"))["metadata"]["name"] == "db-0"
    assert yaml.safe_load(await adapter.get_yaml("svc", "default", "kubernetes"))["kind"] == "Service"
    with pytest.raises(ActionError, match='pods "ghost" not found'):
        await adapter.get_yaml("pod", "default", "ghost")
    with pytest.raises(ActionError, match="unknown kind 'gizmo'"):
        await adapter.get_yaml("gizmo", "default", "x")


async def test_shell_command(kube: KubeEmulator) -> None:
    kube.add_pod("team", "api-0")
    adapter = adapter_for(kube)
    async with Feed(adapter) as feed:
        await feed.synced()
        argv = adapter.shell_command(feed.pods()["api-0"])
    assert argv == ["kubectl", "--kubeconfig", str(kube.kubeconfig), "--context", "emulated", "exec", "-it",
                    "-n", "team", "api-0", "--", "sh", "-c",
                    "command -v bash >/dev/null 2>&1 && exec bash || exec sh"]
    bare = KubeAdapter(context="dev")
    inst = instance_from_pod(pod("p", namespace="n", owner=None), NOW)
    assert bare.shell_command(inst)[:8] == ["kubectl", "--context", "dev", "exec", "-it", "-n", "n", "p"]


# ---- services, events, namespaces --------------------------------------------------------------


def test_service_event_and_namespace_mapping() -> None:
    svc = service_from({
        "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": rfc3339(NOW)},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.7", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 31080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.20"}]}},
    })
    assert (svc.type, svc.cluster_ip, svc.external_ips) == ("LoadBalancer", "10.43.0.7", ("192.168.1.20",))
    assert str(svc.ports[0]) == "http:80:31080►http/TCP"
    assert svc.selector == (("app", "web"),)
    event = event_from({
        "metadata": {"name": "web-1.abc", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-1"}, "reason": "BackOff", "type": "Warning",
        "message": "Back-off restarting\n failed container", "count": 7,
        "firstTimestamp": rfc3339(NOW - timedelta(minutes=9)), "lastTimestamp": rfc3339(NOW),
    })
    assert (event.object_kind, event.object_name, event.count, event.last_seen) == ("Pod", "web-1", 7, NOW)
    assert event.message == "Back-off restarting failed container"
    # events.k8s.io-style: no first/lastTimestamp, a series instead
    series = event_from({"metadata": {"name": "e", "namespace": "x"}, "eventTime": rfc3339(NOW),
                         "series": {"count": 3, "lastObservedTime": rfc3339(NOW + timedelta(seconds=5))}})
    assert series.count == 3 and series.last_seen == NOW + timedelta(seconds=5) and series.first_seen == NOW
    assert namespace_from({"metadata": {"name": "shop"}, "status": {"phase": "Terminating"}}).phase == "Terminating"


async def test_services_events_and_namespaces_are_watched(kube: KubeEmulator) -> None:
    shop(kube)
    kube.add_service("default", "web", ports=[(80, 8080)])
    kube.add_event("default", ("Pod", "web-aaa-1"), "Pulled", "image pulled")
    async with Feed(adapter_for(kube)) as feed:
        await feed.synced()
        assert "k3s/Service/default/web" in feed.store.objects_of(KubeService)
        assert [e.reason for e in feed.store.objects_of(ClusterEvent).values()] == ["Pulled"]
        assert {n.name for n in feed.store.objects_of(Namespace).values()} >= {"default", "kube-system"}
        kube.add_event("default", ("Pod", "web-aaa-2"), "BackOff", "restarting", type="Warning")
        kube.delete_object("services", "default", "web")
        await feed.until(lambda: len(feed.store.objects_of(ClusterEvent)) == 2, "the new event")
        await feed.until(lambda: "k3s/Service/default/web" not in feed.store.objects, "the service gone")


async def test_a_watched_namespace_deleted_is_said_and_comes_back(kube: KubeEmulator) -> None:
    kube.add_namespace("team")
    kube.add_pod("team", "t-1")
    async with Feed(adapter_for(kube, namespace="team")) as feed:
        await feed.synced()
        assert feed.pod_names() == {"t-1"}
        assert feed.status.message is None and feed.status.scope == "namespace team"
        kube.delete_object("namespaces", None, "team")
        await feed.until(lambda: feed.status.message is not None, "namespace gone said")
        assert feed.status.state == ConnState.CONNECTED
        assert feed.status.message == "k3s: namespace team does not exist (deleted?) — :ns switches"
        await feed.until(lambda: not feed.pod_names(), "its pods gone")
        kube.add_namespace("team")
        await feed.until(lambda: feed.status.message is None, "namespace back")


async def test_namespaces_forbidden_is_not_reported_as_a_problem(kube: KubeEmulator) -> None:
    shop(kube)
    kube.fail("GET", r"^/api/v1/namespaces$", 403)
    async with Feed(adapter_for(kube, namespace="default")) as feed:
        await feed.synced()
        assert feed.status.message is None
        assert len(feed.pod_names()) == 4


async def test_delete_action_and_describe(kube: KubeEmulator) -> None:
    shop(kube)
    kube.add_event("default", ("Pod", "debug"), "Started", "Started container debug")
    kube.add_event("default", ("Pod", "web-aaa-1"), "Pulled", "not about debug")
    adapter = adapter_for(kube)
    async with Feed(adapter) as feed:
        await feed.synced()
        await feed.until(lambda: len(feed.store.objects_of(ClusterEvent)) == 2, "events")
        debug = feed.pods()["debug"]
        assert adapter.supports(Action.DELETE)
        text = await adapter.describe(ref_of(debug))
        assert "Name:" in text and "debug" in text
        assert "Started container debug" in text and "not about debug" not in text
        manifest = yaml.safe_load(await adapter.manifest(ref_of(debug)))
        assert manifest["metadata"]["name"] == "debug"
        await adapter.perform(Action.DELETE, [debug])
        await feed.until(lambda: "debug" not in feed.pod_names(), "debug deleted")
        with pytest.raises(ActionError, match="debug"):
            await adapter.describe(ref_of(debug))
