"""A scripted Kubernetes side for snapshot tests: fixed pods, workloads and objects, so
every run draws the same pixels. Behaviour tests use the real KubeAdapter against the
emulated API server instead (tests/test_tui_kube.py)."""

from __future__ import annotations

from datetime import timedelta

from backends.adapter import Action, ObjectRef
from backends.model import (
    ClusterEvent,
    ContainerStatus,
    ConnState,
    Health,
    Instance,
    KubeService,
    Namespace,
    Port,
    RunState,
    ServicePort,
    Snapshot,
    Source,
    SourceStatus,
    WorkloadKey,
    WorkloadSpec,
)
from tests.support.scripted import FIXED_NOW, ScriptedAdapter

NAMESPACE = "shop"


class ScriptedKube(ScriptedAdapter):
    source = Source.K3S

    def __init__(self) -> None:
        super().__init__(endpoint="k3d-dev @ https://0.0.0.0:6443")

    def connected(self, version: str = "v1.31.4+k3s1") -> SourceStatus:
        return SourceStatus(Source.K3S, ConnState.CONNECTED, self.endpoint, version, scope="all namespaces")

    def supports(self, action: Action) -> bool:
        return action in (Action.RESTART, Action.DELETE, Action.SCALE, Action.ROLLOUT_RESTART)

    async def manifest(self, ref: ObjectRef) -> str:
        return f"apiVersion: v1\nkind: {ref.kind}\nmetadata:\n  name: {ref.name}\n  namespace: {ref.namespace}\n"


def pod(workload: str, suffix: str, *, ready: bool = True, status: str = "Running", restarts: int = 0,
        minutes: float = 30, kind: str = "Deployment") -> Instance:
    name = f"{workload}-{suffix}"
    running = status in ("Running", "CrashLoopBackOff")
    return Instance(
        source=Source.K3S,
        id=f"uid-{name}",
        name=name,
        workload=WorkloadKey(Source.K3S, NAMESPACE, workload),
        state=RunState.RESTARTING if status == "CrashLoopBackOff" else RunState.RUNNING,
        health=Health.CRASH_LOOPING if status == "CrashLoopBackOff" else Health.HEALTHY if ready else Health.NOT_READY,
        health_reason=(
            "CrashLoopBackOff: back-off 5m0s restarting failed container — last run: Error (exit 1)"
            if status == "CrashLoopBackOff" else ""
        ),
        container_statuses=(
            ContainerStatus(workload, ready, restarts, "waiting", "CrashLoopBackOff",
                            "back-off 5m0s restarting failed container", last_reason="Error", last_exit_code=1,
                            last_finished=FIXED_NOW - timedelta(seconds=40)),
        ) if status == "CrashLoopBackOff" else (),
        image=f"registry.local/{workload}:sha-1f3e" if kind == "Deployment" else "redis:7",
        ports=(Port(8080),),
        created_at=FIXED_NOW - timedelta(minutes=minutes),
        started_at=FIXED_NOW - timedelta(minutes=minutes) if running else None,
        restarts=restarts,
        status_text=status,
        containers_ready=1 if ready else 0,
        containers_total=1,
        ip=f"10.42.0.{len(name)}",
        node="k3d-dev-server-0",
    )


def spec(name: str, desired: int, ready: int, kind: str = "Deployment") -> WorkloadSpec:
    return WorkloadSpec(WorkloadKey(Source.K3S, NAMESPACE, name), kind, desired, ready=ready, updated=desired,
                        available=ready, created_at=FIXED_NOW - timedelta(days=2))


def demo_kube() -> Snapshot:
    """web (2/2, also in Compose), api (crash-looping, also in Compose), cache (k3s only)."""
    pods = (
        pod("web", "7d4b9c6f5d-x2x7k"),
        pod("web", "7d4b9c6f5d-q9w4z"),
        pod("api", "5f6c8d7b9-tr4n8", ready=False, status="CrashLoopBackOff", restarts=7, minutes=12),
        pod("cache", "0", kind="StatefulSet", minutes=2000),
    )
    specs = (spec("web", 2, 2), spec("api", 1, 0), spec("cache", 1, 1, "StatefulSet"))
    objects = (
        KubeService(NAMESPACE, "web", "ClusterIP", "10.43.12.7", (), (ServicePort("http", 80, "8080"),),
                    (("app", "web"),), created_at=FIXED_NOW - timedelta(days=2)),
        ClusterEvent(NAMESPACE, "api.1", "Warning", "BackOff", "Pod", "api-5f6c8d7b9-tr4n8",
                     "Back-off restarting failed container api", 31, FIXED_NOW - timedelta(minutes=12),
                     FIXED_NOW - timedelta(seconds=20), "kubelet"),
        ClusterEvent(NAMESPACE, "web.1", "Normal", "ScalingReplicaSet", "Deployment", "web",
                     "Scaled up replica set web-7d4b9c6f5d to 2", 1, FIXED_NOW - timedelta(minutes=30),
                     FIXED_NOW - timedelta(minutes=30), "deployment-controller"),
        Namespace(NAMESPACE, "Active", created_at=FIXED_NOW - timedelta(days=9)),
        Namespace("default", "Active", created_at=FIXED_NOW - timedelta(days=30)),
    )
    return Snapshot(Source.K3S, pods, specs, objects)
