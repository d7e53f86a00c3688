"""Health of Kubernetes pods and workloads: what every waiting and terminated reason, pod
condition and rollout condition turns into, and why.

First the pure mapping over pods as the API serves them (hand-written dicts); then end to
end: the real `KubeAdapter` (kr8s over HTTP) against the emulated API server, in a real
`Hub`, with the kubelet's and the controllers' statuses set through the emulator and
arriving through the watches. Nothing of kr8s or the adapter is patched; the grace of
"starting" is made short by giving a pod a start time just inside it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backends.hub import Hub
from backends.kube import (
    STARTUP_GRACE,
    KubeAdapter,
    instance_from_pod,
    spec_from_workload,
    starting_until,
)
from backends.model import (
    PROBE_OUTPUT_CHARS,
    ClusterEvent,
    Condition,
    ConnState,
    ContainerStatus,
    Health,
    Instance,
    RunState,
    Source,
    Workload,
    WorkloadKey,
    aggregate,
)
from backends.store import Store
from tests.support import hubs
from tests.support.hubs import until
from tests.support.kube_emulator import KubeEmulator

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NS = "shop"

BACK_OFF = "back-off 40s restarting failed container=web pod=web-7d4b9c6f5d-x2x7k_shop(0b1e)"
NOT_READY = "ContainersNotReady: containers with unready status: [web]"


# ---- pods as the API serves them ----------------------------------------------------------------


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running(name: str = "web", ready: bool = True, restarts: int = 0, **extra: Any) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts, "started": True,
            "state": {"running": {"startedAt": rfc3339(NOW - timedelta(minutes=50))}}, **extra}


def waiting(reason: str, message: str | None = None, name: str = "web", restarts: int = 0, **extra: Any) -> dict:
    state: dict[str, Any] = {"reason": reason}
    if message is not None:
        state["message"] = message
    return {"name": name, "ready": False, "restartCount": restarts, "started": False,
            "state": {"waiting": state}, **extra}


def ended(reason: str | None, code: int, message: str | None = None) -> dict:
    """A `terminated` state (current or last)."""
    state: dict[str, Any] = {"exitCode": code, "startedAt": rfc3339(NOW - timedelta(minutes=3)),
                             "finishedAt": rfc3339(NOW - timedelta(minutes=2))}
    if reason:
        state["reason"] = reason
    if message is not None:
        state["message"] = message
    return state


def terminated(reason: str | None, code: int, name: str = "web", restarts: int = 0, **extra: Any) -> dict:
    return {"name": name, "ready": False, "restartCount": restarts, "started": False,
            "state": {"terminated": ended(reason, code)}, **extra}


def last(reason: str, code: int) -> dict:
    return {"lastState": {"terminated": ended(reason, code)}}


def cond(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict:
    found: dict[str, Any] = {"type": kind, "status": status, "lastTransitionTime": rfc3339(NOW - timedelta(minutes=1))}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


def pod(
    *statuses: dict,
    phase: str = "Running",
    started: datetime | None = NOW - timedelta(hours=1),
    init: list[dict] | None = None,
    containers: tuple[str, ...] = ("web",),
    conditions: list[dict] | None = None,
    deleting: bool = False,
    **status_extra: Any,
) -> dict:
    """A pod of the Deployment shop/web. Without `conditions`, the kubelet's: Ready when
    every container is; not ready with its reason and message otherwise."""
    statuses_ = list(statuses) if statuses else [running()]
    if conditions is None:
        unready = [s["name"] for s in statuses_ if not s.get("ready")]
        truth = "True" if phase == "Running" and not unready else "False"
        why = (None, None)
        if unready:
            why = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
        done = all((s["state"].get("terminated") or {}).get("exitCode") == 0 for s in init or [])
        conditions = [cond("PodScheduled", "True"), cond("Initialized", "True" if done else "False"),
                      cond("ContainersReady", truth, *why), cond("Ready", truth, *why)]
    meta: dict[str, Any] = {
        "name": "web-7d4b9c6f5d-x2x7k", "namespace": NS, "uid": "uid-web-1",
        "creationTimestamp": rfc3339(NOW - timedelta(hours=2)),
        "labels": {"app": "web", "pod-template-hash": "7d4b9c6f5d"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c6f5d",
                             "uid": "rs", "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    spec: dict[str, Any] = {"containers": [{"name": c, "image": f"shop/{c}:1"} for c in containers]}
    if init is not None:
        spec["initContainers"] = [{"name": s["name"], "image": "shop/migrate:1"} for s in init]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "containerStatuses": statuses_, **status_extra}
    if init is not None:
        status["initContainerStatuses"] = init
    if started is not None:
        status["startTime"] = rfc3339(started)
    return {"metadata": meta, "spec": spec, "status": status}


# ---- pure: every reason ----------------------------------------------------------------------------


CASES: dict[str, tuple[dict, Health, str]] = {
    "ready": (pod(), Health.HEALTHY, ""),
    "ready-after-an-oom-kill": (
        pod(running(restarts=2, **last("OOMKilled", 137))),
        Health.HEALTHY, "ready; restarted 2×, last: OOMKilled (exit 137)"),
    "crashloop": (
        pod(waiting("CrashLoopBackOff", BACK_OFF, restarts=5, **last("Error", 1))),
        Health.CRASH_LOOPING, f"CrashLoopBackOff: {BACK_OFF} — last run: Error (exit 1)"),
    "crashloop-oom": (
        pod(waiting("CrashLoopBackOff", BACK_OFF, restarts=3, **last("OOMKilled", 137))),
        Health.CRASH_LOOPING, f"CrashLoopBackOff: {BACK_OFF} — last run: OOMKilled (exit 137)"),
    "crashloop-bare": (pod(waiting("CrashLoopBackOff", restarts=1)), Health.CRASH_LOOPING, "CrashLoopBackOff"),
    "imagepullbackoff": (
        pod(waiting("ImagePullBackOff", 'Back-off pulling image "shop/web:9"'), phase="Pending"),
        Health.UNHEALTHY, 'ImagePullBackOff: Back-off pulling image "shop/web:9"'),
    "errimagepull": (
        pod(waiting("ErrImagePull", 'failed to pull and unpack image "docker.io/shop/web:9": not found'),
            phase="Pending"),
        Health.UNHEALTHY, 'ErrImagePull: failed to pull and unpack image "docker.io/shop/web:9": not found'),
    "errimageneverpull": (
        pod(waiting("ErrImageNeverPull",
                    'Container image "shop/web:1" is not present with pull policy of Never'), phase="Pending"),
        Health.UNHEALTHY, 'ErrImageNeverPull: Container image "shop/web:1" is not present with pull policy of Never'),
    "invalidimagename": (
        pod(waiting("InvalidImageName", 'Failed to apply default image tag "Shop/Web": invalid reference format'),
            phase="Pending"),
        Health.UNHEALTHY, 'InvalidImageName: Failed to apply default image tag "Shop/Web": invalid reference format'),
    "createcontainerconfigerror": (
        pod(waiting("CreateContainerConfigError", 'secret "db-pass" not found'), phase="Pending"),
        Health.UNHEALTHY, 'CreateContainerConfigError: secret "db-pass" not found'),
    "createcontainererror": (
        pod(waiting("CreateContainerError", "failed to reserve container name"), phase="Pending"),
        Health.UNHEALTHY, "CreateContainerError: failed to reserve container name"),
    "runcontainererror": (
        pod(waiting("RunContainerError", 'exec: "/app/run": permission denied', restarts=2)),
        Health.UNHEALTHY, 'RunContainerError: exec: "/app/run": permission denied'),
    "a-reason-of-a-newer-kubelet": (
        pod(waiting("ErrSomethingNew", "it broke"), phase="Pending"), Health.UNHEALTHY, "ErrSomethingNew: it broke"),
    "oomkilled-being-restarted": (
        pod(terminated("OOMKilled", 137, restarts=1)), Health.UNHEALTHY, "OOMKilled (exit 137)"),
    "error-being-restarted": (pod(terminated("Error", 2, restarts=1)), Health.UNHEALTHY, "Error (exit 2)"),
    "not-ready-young": (
        pod(running(ready=False), started=NOW - timedelta(seconds=30)), Health.STARTING, NOT_READY),
    "not-ready-past-the-grace": (
        pod(running(ready=False), started=NOW - STARTUP_GRACE - timedelta(seconds=1)), Health.NOT_READY, NOT_READY),
    "not-ready-after-a-restart": (
        pod(running(ready=False, restarts=1), started=NOW - timedelta(seconds=30)), Health.NOT_READY, NOT_READY),
    "not-ready-without-a-reason": (
        pod(running(ready=False), conditions=[cond("Ready", "False")]), Health.NOT_READY, "not ready"),
    "container-creating-young": (
        pod(waiting("ContainerCreating"), phase="Pending", started=NOW - timedelta(seconds=5)),
        Health.STARTING, "ContainerCreating"),
    "unschedulable": (
        pod(phase="Pending", started=None, containerStatuses=[], conditions=[
            cond("PodScheduled", "False", "Unschedulable", "0/1 nodes are available: 1 Insufficient cpu.")]),
        Health.UNHEALTHY, "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."),
    "init-crashloop": (
        pod(waiting("PodInitializing"), phase="Pending",
            init=[waiting("CrashLoopBackOff", "back-off 20s", name="migrate", restarts=2, **last("Error", 1))]),
        Health.CRASH_LOOPING, "init container migrate: CrashLoopBackOff: back-off 20s — last run: Error (exit 1)"),
    "init-image-pull": (
        pod(waiting("PodInitializing"), phase="Pending",
            init=[waiting("ImagePullBackOff", 'Back-off pulling image "shop/migrate:1"', name="migrate")]),
        Health.UNHEALTHY, 'init container migrate: ImagePullBackOff: Back-off pulling image "shop/migrate:1"'),
    "init-failed-will-retry": (
        pod(waiting("PodInitializing"), phase="Pending", init=[terminated("Error", 3, name="migrate")]),
        Health.UNHEALTHY, "init container migrate: Error (exit 3)"),
    "init-running-young": (
        pod(waiting("PodInitializing"), phase="Pending", started=NOW - timedelta(seconds=5),
            init=[running("migrate", ready=False)]),
        Health.STARTING, "Init:0/1"),
    "worst-container-named": (
        pod(waiting("ImagePullBackOff", name="web"), waiting("CrashLoopBackOff", BACK_OFF, name="proxy", restarts=4),
            containers=("web", "proxy")),
        Health.CRASH_LOOPING, f"proxy: CrashLoopBackOff: {BACK_OFF}"),
    "failed-oom": (pod(terminated("OOMKilled", 137), phase="Failed"), Health.STOPPED, "OOMKilled (exit 137)"),
    "evicted": (
        pod(phase="Failed", containerStatuses=[], reason="Evicted",
            message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi."),
        Health.STOPPED, "Evicted: The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi."),
    "init-failed-for-good": (
        pod(waiting("PodInitializing"), phase="Failed", init=[terminated("Error", 3, name="migrate")]),
        Health.STOPPED, "Error (exit 3)"),
    "completed": (pod(terminated("Completed", 0), phase="Succeeded"), Health.STOPPED, "Completed"),
    "terminating": (pod(deleting=True), Health.STOPPED, "Terminating"),
    "node-lost": (
        pod(phase="Unknown", reason="NodeLost", message="Node k3s-1 which was running pod web is unresponsive"),
        Health.UNKNOWN, "NodeLost: Node k3s-1 which was running pod web is unresponsive"),
}


@pytest.mark.parametrize(("shape", "health", "reason"), CASES.values(), ids=CASES.keys())
def test_pod_health_and_reason(shape: dict, health: Health, reason: str) -> None:
    inst = instance_from_pod(shape, NOW)
    assert (inst.health, inst.health_reason) == (health, reason)


def test_a_crash_looping_pod_is_restarting_and_still_holds_its_workload_down() -> None:
    # kubectl says "Running" for the phase: the run state must not read as a healthy, running pod.
    looping = instance_from_pod(pod(waiting("CrashLoopBackOff", BACK_OFF, restarts=5, **last("OOMKilled", 137))), NOW)
    assert (looping.state, looping.running, looping.oom_killed, looping.exit_code) == (
        RunState.RESTARTING, True, True, 137)
    pulling = instance_from_pod(pod(waiting("ImagePullBackOff"), phase="Pending"), NOW)
    assert (pulling.state, pulling.running) == (RunState.CREATED, False)
    key = WorkloadKey(Source.K3S, NS, "web")
    workload = aggregate(key, [pulling])
    assert (workload.health, workload.health_reason) == (Health.UNHEALTHY, "ImagePullBackOff")


def test_a_termination_message_is_one_clean_short_line() -> None:
    # A container writes its own termination message: escapes, newlines, 4 KiB of it.
    message = "\x1b[31mpanic:\x1b[0m boom\n\tgoroutine 1 [running]:\r\n" + "x" * 4000
    shape = pod(terminated("Error", 2, restarts=1, state={"terminated": ended("Error", 2, message)}))
    inst = instance_from_pod(shape, NOW)
    assert inst.health == Health.UNHEALTHY
    assert inst.health_reason.startswith("Error (exit 2): [31mpanic: [0m boom goroutine 1 [running]: xxx")
    assert len(inst.health_reason) == len("Error (exit 2): ") + 300 and inst.health_reason.endswith("…")
    assert not any(ord(c) < 32 for c in inst.health_reason)
    # The health pane gets more of it, as clean.
    kept = inst.container_statuses[0].message
    assert kept.startswith("[31mpanic: [0m boom goroutine 1 [running]: xxx") and len(kept) == PROBE_OUTPUT_CHARS


def test_container_statuses_and_conditions() -> None:
    shape = pod(
        waiting("CrashLoopBackOff", BACK_OFF, restarts=4, **last("OOMKilled", 137)),
        running("proxy", restarts=0),
        containers=("web", "proxy"),
        init=[terminated("Completed", 0, name="migrate")],
    )
    inst = instance_from_pod(shape, NOW)
    assert inst.container_statuses == (
        ContainerStatus("migrate", ready=False, restarts=0, state="terminated", reason="Completed", exit_code=0,
                        started_at=NOW - timedelta(minutes=3)),
        ContainerStatus("web", ready=False, restarts=4, state="waiting", reason="CrashLoopBackOff", message=BACK_OFF,
                        last_reason="OOMKilled", last_exit_code=137, last_finished=NOW - timedelta(minutes=2)),
        ContainerStatus("proxy", ready=True, restarts=0, state="running", started_at=NOW - timedelta(minutes=50)),
    )
    changed = NOW - timedelta(minutes=1)
    why = "containers with unready status: [web]"
    assert inst.conditions == (
        Condition("PodScheduled", "True", changed=changed),
        Condition("Initialized", "True", changed=changed),
        Condition("ContainersReady", "False", "ContainersNotReady", why, changed),
        Condition("Ready", "False", "ContainersNotReady", why, changed),
    )
    assert (inst.containers_ready, inst.containers_total) == (1, 2)


def test_a_container_state_that_says_nothing_is_waiting() -> None:
    # The API's rule for a ContainerState with none of its three members.
    inst = instance_from_pod(pod({"name": "web", "ready": False, "restartCount": 0, "state": {}}, phase="Pending"), NOW)
    assert inst.container_statuses == (ContainerStatus("web", ready=False, restarts=0, state="waiting"),)


def test_starting_turns_not_ready_when_the_grace_ends() -> None:
    started = NOW - timedelta(minutes=1)
    shape = pod(running(ready=False), started=started)
    until = starting_until(shape)
    assert until == started + STARTUP_GRACE
    assert instance_from_pod(shape, until - timedelta(seconds=1)).health == Health.STARTING
    assert instance_from_pod(shape, until).health == Health.NOT_READY
    pending = pod(waiting("ContainerCreating"), phase="Pending", started=started)
    assert instance_from_pod(pending, until - timedelta(seconds=1)).health == Health.STARTING
    assert (instance_from_pod(pending, until).health, instance_from_pod(pending, until).health_reason) == (
        Health.NOT_READY, "ContainerCreating")


def deployment(conditions: list[dict]) -> dict:
    return {
        "metadata": {"name": "web", "namespace": NS, "generation": 3},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "shop/web:2"}]}}},
        "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                   "updatedReplicas": 1, "conditions": conditions},
    }


def test_a_rollout_past_its_deadline_reaches_the_spec_and_the_workload() -> None:
    stuck = "ReplicaSet \"web-6d4cf56db6\" has timed out progressing."
    spec = spec_from_workload(deployment([
        {**cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
         "lastUpdateTime": rfc3339(NOW)},
        {**cond("Progressing", "False", "ProgressDeadlineExceeded", stuck), "lastUpdateTime": rfc3339(NOW)},
    ]), "Deployment")
    assert spec.conditions == (
        Condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
                  NOW - timedelta(minutes=1)),
        Condition("Progressing", "False", "ProgressDeadlineExceeded", stuck, NOW - timedelta(minutes=1)),
    )
    pods = [instance_from_pod(pod(), NOW)]
    workload = aggregate(spec.key, pods, spec)
    assert (workload.health, workload.health_reason) == (
        Health.UNHEALTHY, f"rollout stuck: ProgressDeadlineExceeded — {stuck}")


def test_a_condition_that_only_moves_its_update_time_is_no_change() -> None:
    # Deployment conditions' lastUpdateTime moves with every step of a rollout.
    first = deployment([{**cond("Progressing", "True", "ReplicaSetUpdated"), "lastUpdateTime": rfc3339(NOW)}])
    later = deployment([{**cond("Progressing", "True", "ReplicaSetUpdated"),
                         "lastUpdateTime": rfc3339(NOW + timedelta(seconds=5))}])
    assert spec_from_workload(first, "Deployment") == spec_from_workload(later, "Deployment")


# ---- end to end: the adapter in a hub, against the emulated API server -----------------------------------


def running_hub(kube: KubeEmulator):  # noqa: ANN201
    adapter = KubeAdapter(kubeconfig=str(kube.kubeconfig), reconnect_min=0.05, reconnect_max=0.3, api_timeout=3.0)
    return hubs.running_hub(Hub([adapter]), wait_connected=Source.K3S)


def pods(store: Store) -> dict[str, Instance]:
    return {inst.name: inst for inst in store.instances.values()}


def workload(store: Store, name: str) -> Workload | None:
    return store.workloads.get(WorkloadKey(Source.K3S, NS, name).id)


def health_of(store: Store, name: str) -> tuple[Health, str] | None:
    inst = pods(store).get(name)
    return (inst.health, inst.health_reason) if inst is not None else None


async def test_every_waiting_and_terminated_reason_reaches_the_store(kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", replicas=6)
    for name in ("web-a-ok", "web-a-loop", "web-a-pull", "web-a-never", "web-a-config", "web-a-oom"):
        kube.add_pod(NS, name, owner="web")
    kube.set_container_state(NS, "web-a-loop", state="waiting", reason="CrashLoopBackOff", message="back-off 1m20s",
                             restarts=4, last_reason="Error", last_exit_code=2)
    kube.set_container_state(NS, "web-a-pull", state="waiting", reason="ImagePullBackOff", phase="Pending",
                             message='Back-off pulling image "busybox:1.36"')
    kube.set_container_state(NS, "web-a-never", state="waiting", reason="ErrImageNeverPull", phase="Pending",
                             message='Container image "busybox:1.36" is not present with pull policy of Never')
    kube.set_container_state(NS, "web-a-config", state="waiting", reason="CreateContainerConfigError",
                             phase="Pending", message='configmap "web-env" not found')
    kube.set_container_state(NS, "web-a-oom", state="terminated", reason="OOMKilled", restarts=1)
    expected = {
        "web-a-ok": (Health.HEALTHY, ""),
        "web-a-loop": (Health.CRASH_LOOPING, "CrashLoopBackOff: back-off 1m20s — last run: Error (exit 2)"),
        "web-a-pull": (Health.UNHEALTHY, 'ImagePullBackOff: Back-off pulling image "busybox:1.36"'),
        "web-a-never": (Health.UNHEALTHY,
                        'ErrImageNeverPull: Container image "busybox:1.36" is not present with pull policy of Never'),
        "web-a-config": (Health.UNHEALTHY, 'CreateContainerConfigError: configmap "web-env" not found'),
        "web-a-oom": (Health.UNHEALTHY, "OOMKilled (exit 137)"),
    }
    async with running_hub(kube) as hub:
        store = hub.store
        await until(lambda: {n: health_of(store, n) for n in expected} == expected, "every pod's health")
        loop = pods(store)["web-a-loop"]
        [web] = loop.container_statuses
        assert (web.name, web.state, web.reason, web.restarts, web.last_reason, web.last_exit_code) == (
            "web", "waiting", "CrashLoopBackOff", 4, "Error", 2)
        assert loop.state == RunState.RESTARTING
        ready = {c.type: (c.status, c.reason, c.message) for c in loop.conditions}
        assert ready["Ready"] == ("False", "ContainersNotReady", "containers with unready status: [web]")
        [oom] = pods(store)["web-a-oom"].container_statuses
        assert (oom.state, oom.reason, oom.exit_code) == ("terminated", "OOMKilled", 137)
        assert pods(store)["web-a-oom"].oom_killed
        # The worst pod speaks for the workload, by name.
        assert (workload(store, "web").health, workload(store, "web").health_reason) == (
            Health.CRASH_LOOPING, "web-a-loop: CrashLoopBackOff: back-off 1m20s — last run: Error (exit 2)")


async def test_ready_then_crash_looping_then_ready_again_through_the_watch(kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", replicas=1)
    kube.add_pod(NS, "web-a-1", owner="web")
    async with running_hub(kube) as hub:
        store = hub.store
        seen: list[tuple[Health, Health]] = []  # (pod, workload), as each change left them

        def record(change: object) -> None:
            inst, wl = pods(store).get("web-a-1"), workload(store, "web")
            if inst is not None and wl is not None and (not seen or seen[-1] != (inst.health, wl.health)):
                seen.append((inst.health, wl.health))

        store.subscribe(record)
        await until(lambda: health_of(store, "web-a-1") == (Health.HEALTHY, ""), "web-a-1 healthy")
        record(None)
        await kube.wait_for_watches(resource="pods")
        kube.set_container_state(NS, "web-a-1", state="terminated", reason="OOMKilled", restarts=1)
        await until(lambda: health_of(store, "web-a-1") == (Health.UNHEALTHY, "OOMKilled (exit 137)"), "OOMKilled")
        kube.set_container_state(NS, "web-a-1", state="waiting", reason="CrashLoopBackOff",
                                 message="back-off 10s restarting failed container", restarts=1,
                                 last_reason="OOMKilled")
        await until(lambda: pods(store)["web-a-1"].health == Health.CRASH_LOOPING, "crash-looping")
        assert pods(store)["web-a-1"].health_reason == (
            "CrashLoopBackOff: back-off 10s restarting failed container — last run: OOMKilled (exit 137)")
        kube.set_container_state(NS, "web-a-1", state="running", restarts=2)
        await until(lambda: pods(store)["web-a-1"].health == Health.HEALTHY, "healthy again")
        assert pods(store)["web-a-1"].health_reason == "ready; restarted 2×, last: OOMKilled (exit 137)"
        assert seen == [
            (Health.HEALTHY, Health.HEALTHY),
            (Health.UNHEALTHY, Health.UNHEALTHY),
            (Health.CRASH_LOOPING, Health.CRASH_LOOPING),
            (Health.HEALTHY, Health.HEALTHY),
        ]


async def test_a_rollout_stuck_past_its_deadline_makes_the_workload_unhealthy(kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", replicas=1)
    kube.add_pod(NS, "web-a-1", owner="web")
    key = WorkloadKey(Source.K3S, NS, "web").id
    stuck = 'ReplicaSet "web-6d4cf56db6" has timed out progressing.'
    async with running_hub(kube) as hub:
        store = hub.store
        await until(lambda: workload(store, "web") is not None and workload(store, "web").health == Health.HEALTHY,
                    "web healthy")
        await kube.wait_for_watches(resource="deployments")
        kube.set_workload_conditions(NS, "web", {"type": "Progressing", "status": "False",
                                                 "reason": "ProgressDeadlineExceeded", "message": stuck})
        await until(lambda: workload(store, "web").health == Health.UNHEALTHY, "web unhealthy")
        assert workload(store, "web").health_reason == f"rollout stuck: ProgressDeadlineExceeded — {stuck}"
        progressing = next(c for c in store.specs[key].conditions if c.type == "Progressing")
        assert (progressing.status, progressing.reason, progressing.message) == (
            "False", "ProgressDeadlineExceeded", stuck)
        assert progressing.changed is not None
        assert {c.type for c in store.specs[key].conditions} == {"Available", "Progressing"}
        # The pod itself is fine: the rollout is what is stuck.
        assert pods(store)["web-a-1"].health == Health.HEALTHY
        kube.set_workload_conditions(NS, "web", {"type": "Progressing", "status": "True",
                                                 "reason": "NewReplicaSetAvailable"})
        await until(lambda: workload(store, "web").health == Health.HEALTHY, "web healthy again")


async def test_a_pod_that_never_gets_ready_is_starting_then_not_ready(kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", replicas=1)
    kube.add_pod(NS, "web-a-1", owner="web")
    # Started just inside the grace: "starting" now, "not ready" in three seconds (time enough
    # to connect and list on a busy machine) with no event from the cluster to say so.
    almost = datetime.now(UTC) - STARTUP_GRACE + timedelta(seconds=3)
    kube.set_pod_status(NS, "web-a-1", startTime=rfc3339(almost))
    kube.set_container_state(NS, "web-a-1", state="running", ready=False)
    async with running_hub(kube) as hub:
        store = hub.store
        await until(lambda: pods(store).get("web-a-1") is not None, "web-a-1")
        why = "ContainersNotReady: containers with unready status: [web]"
        assert health_of(store, "web-a-1") == (Health.STARTING, why)
        await until(lambda: health_of(store, "web-a-1") == (Health.NOT_READY, why), "not ready", timeout=6)
        assert (workload(store, "web").health, workload(store, "web").health_reason) == (Health.NOT_READY, why)
        # Ready at last: healthy, and no timer turns it back.
        kube.set_container_state(NS, "web-a-1", state="running", ready=True)
        await until(lambda: health_of(store, "web-a-1") == (Health.HEALTHY, ""), "healthy")


async def test_an_unschedulable_pod_is_unhealthy_with_the_schedulers_words(kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", replicas=1)
    kube.add_pod(NS, "web-a-1", owner="web", phase="Pending")
    message = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available."
    kube.set_pod_conditions(NS, "web-a-1", {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": message}, containerStatuses=[])
    async with running_hub(kube) as hub:
        store = hub.store
        await until(lambda: health_of(store, "web-a-1") == (Health.UNHEALTHY, f"Unschedulable: {message}"),
                    "unschedulable")
        inst = pods(store)["web-a-1"]
        assert (inst.state, inst.container_statuses) == (RunState.CREATED, ())
        # Not running, but its problem is the workload's.
        assert (workload(store, "web").health, workload(store, "web").health_reason) == (
            Health.UNHEALTHY, f"Unschedulable: {message}")


async def test_an_init_container_crash_looping(kube: KubeEmulator) -> None:
    kube.add_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api", "namespace": NS},
                     "spec": {"initContainers": [{"name": "migrate", "image": "shop/migrate:1"}],
                              "containers": [{"name": "api", "image": "shop/api:1"}]}})
    kube.set_container_state(NS, "api", "api", state="waiting", reason="PodInitializing", phase="Pending")
    kube.set_container_state(NS, "api", "migrate", state="waiting", reason="CrashLoopBackOff", init=True,
                             message="back-off 20s", restarts=3, last_reason="Error", last_exit_code=1)
    async with running_hub(kube) as hub:
        store = hub.store
        reason = "init container migrate: CrashLoopBackOff: back-off 20s — last run: Error (exit 1)"
        await until(lambda: health_of(store, "api") == (Health.CRASH_LOOPING, reason), "init crash loop")
        inst = pods(store)["api"]
        assert [(c.name, c.state, c.reason) for c in inst.container_statuses] == [
            ("migrate", "waiting", "CrashLoopBackOff"), ("api", "waiting", "PodInitializing")]
        initialized = next(c for c in inst.conditions if c.type == "Initialized")
        assert (initialized.status, initialized.reason, initialized.message) == (
            "False", "ContainersNotInitialized", "containers with incomplete status: [migrate]")
        assert inst.status_text == "Init:CrashLoopBackOff"
        # The init container gets through: the pod is on its way (no longer a problem).
        kube.set_container_state(NS, "api", "migrate", state="terminated", reason="Completed", init=True)
        await until(lambda: pods(store)["api"].health in (Health.STARTING, Health.NOT_READY), "initialized")
        assert next(c for c in pods(store)["api"].conditions if c.type == "Initialized").status == "True"


async def test_warning_events_reach_the_store_even_for_pods_that_are_gone(kube: KubeEmulator) -> None:
    kube.add_deployment(NS, "web", replicas=1)
    kube.add_pod(NS, "web-a-1", owner="web")
    async with running_hub(kube) as hub:
        store = hub.store
        await until(lambda: "web-a-1" in pods(store), "web-a-1")
        await kube.wait_for_watches(resource="events")

        def warnings(pod_name: str) -> list[ClusterEvent]:
            return [e for e in store.objects_of(ClusterEvent).values()
                    if isinstance(e, ClusterEvent) and e.type == "Warning" and e.object_name == pod_name]

        probe = "Liveness probe failed: Get \"http://10.42.0.7:8080/health\": context deadline exceeded"
        kube.add_event(NS, ("Pod", "web-a-1"), "Unhealthy", probe, type="Warning", count=3, component="kubelet")
        await until(lambda: warnings("web-a-1"), "the liveness warning")
        [event] = warnings("web-a-1")
        assert (event.reason, event.message, event.count, event.object_kind, event.component) == (
            "Unhealthy", probe, 3, "Pod", "kubelet")
        # The pod goes; events about it (and about a pod never seen) still come, and change nothing else.
        kube.delete_object("pods", NS, "web-a-1")
        await until(lambda: "web-a-1" not in pods(store), "web-a-1 gone")
        kube.add_event(NS, ("Pod", "web-a-1"), "BackOff", "Back-off restarting failed container", type="Warning")
        kube.add_event(NS, {"kind": "Pod", "namespace": NS, "name": "ghost-1", "uid": "gone"}, "FailedMount",
                       'MountVolume.SetUp failed for volume "data": not found', type="Warning")
        await until(lambda: len(warnings("web-a-1")) == 2 and warnings("ghost-1"), "the events of gone pods")
        assert set(pods(store)) == set()
        assert workload(store, "ghost-1") is None
        assert store.status[Source.K3S].state == ConnState.CONNECTED
        # The stream goes on.
        kube.add_pod(NS, "web-a-2", owner="web")
        await until(lambda: health_of(store, "web-a-2") == (Health.HEALTHY, ""), "web-a-2")
