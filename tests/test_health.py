"""Health over time, pure: a workload's health and reason, the hybrid row's, the session
history the store keeps, restarts, the header's summary, the timeline and the pane."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from backends.health import (
    KEEP_INSTANCES,
    HealthLog,
    SideSummary,
    Transition,
    sparkline,
    summarize,
    timeline,
)
from backends.health_rows import health_report, health_row_of, health_table_row, report_text
from backends.model import (
    ClusterEvent,
    Condition,
    ContainerStatus,
    Health,
    HttpCheck,
    InstanceChanged,
    ObjectChanged,
    ProbeRun,
    RunState,
    Snapshot,
    Source,
    SpecChanged,
    WorkloadKey,
    WorkloadSpec,
    aggregate,
    workload_health,
)
from backends.pairing import combined_health
from backends.store import Store
from tests.support.scripted import FIXED_NOW, make_instance

WEB = WorkloadKey(Source.COMPOSE, "shop", "web")
K_WEB = WorkloadKey(Source.K3S, "shop", "web")


def pod(name: str, *, health: Health = Health.HEALTHY, reason: str = "", state: RunState = RunState.RUNNING, **kw):
    base = make_instance("shop", "web", health=health)
    return replace(base, source=Source.K3S, id=f"uid-{name}", name=name, workload=K_WEB, state=state,
                   health=health, health_reason=reason, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = FIXED_NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def store_with_clock() -> tuple[Store, Clock]:
    store = Store()
    clock = Clock()
    store.health_log.clock = clock
    return store, clock


# ---- a workload's health and its reason -------------------------------------------------------


def test_the_worst_instance_names_the_workload_health_and_why():
    a = replace(make_instance("shop", "web", 1), health_reason="")
    b = replace(make_instance("shop", "web", 2, health=Health.UNHEALTHY), health_reason="healthcheck failed 3 times: exit 1")
    assert workload_health([a, b]) == (Health.UNHEALTHY, "shop_web_2: healthcheck failed 3 times: exit 1")
    # One instance: its reason alone, no name in front.
    assert workload_health([b]) == (Health.UNHEALTHY, "healthcheck failed 3 times: exit 1")


def test_crash_looping_counts_even_when_the_pod_is_not_running():
    waiting = pod("web-1", health=Health.CRASH_LOOPING, reason="CrashLoopBackOff: exit 1", state=RunState.CREATED)
    fine = pod("web-2")
    health, reason = workload_health([fine, waiting], WorkloadSpec(K_WEB, "Deployment", 2))
    assert health == Health.CRASH_LOOPING and reason == "web-1: CrashLoopBackOff: exit 1"


def test_a_stuck_rollout_and_missing_replicas_are_the_controllers_to_say():
    stuck = WorkloadSpec(K_WEB, "Deployment", 2, conditions=(
        Condition("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-7d" has timed out progressing.'),
    ))
    health, reason = workload_health([pod("web-1")], stuck)
    assert health == Health.UNHEALTHY
    assert reason == 'rollout stuck: ProgressDeadlineExceeded — ReplicaSet "web-7d" has timed out progressing.'
    quota = WorkloadSpec(K_WEB, "Deployment", 2, conditions=(
        Condition("ReplicaFailure", "True", "FailedCreate", 'pods "web-7d-x" is forbidden: exceeded quota'),
    ))
    assert workload_health([pod("web-1")], quota) == (
        Health.UNHEALTHY, 'cannot create pods: FailedCreate — pods "web-7d-x" is forbidden: exceeded quota')
    # Healthy pods, fewer than wanted: not ready, and how many.
    assert workload_health([pod("web-1")], WorkloadSpec(K_WEB, "Deployment", 3)) == (Health.NOT_READY, "1/3 running")
    # Nothing runs at all: unknown, never "stopped" (it is wanted).
    assert workload_health([], WorkloadSpec(K_WEB, "Deployment", 2)) == (Health.UNKNOWN, "0/2 running")
    assert workload_health([], WorkloadSpec(K_WEB, "Deployment", 0)) == (Health.STOPPED, "")


def test_a_stopped_service_says_how_it_ended():
    died = make_instance("shop", "web", state=RunState.EXITED, exit_code=137)
    assert workload_health([died]) == (Health.STOPPED, "exited (137)")
    assert workload_health([replace(died, oom_killed=True)]) == (Health.STOPPED, "OOMKilled")
    assert workload_health([make_instance("shop", "web", state=RunState.EXITED, exit_code=0)]) == (Health.STOPPED, "")


def test_the_hybrid_row_takes_the_worse_side_and_names_it():
    compose = aggregate(WEB, [make_instance("shop", "web")])
    k3s = aggregate(K_WEB, [pod("web-1", health=Health.NOT_READY, reason="ContainersNotReady")])
    assert combined_health(compose, k3s) == (Health.NOT_READY, "k3s: ContainersNotReady")
    assert combined_health(None, k3s) == (Health.NOT_READY, "ContainersNotReady")
    stopped = aggregate(WEB, [make_instance("shop", "web", state=RunState.EXITED, exit_code=2)])
    assert combined_health(stopped, None) == (Health.STOPPED, "exited (2)")


# ---- the history ------------------------------------------------------------------------------


def test_the_store_records_each_health_change_once_with_its_time():
    store, clock = store_with_clock()
    web = make_instance("shop", "web")
    store.apply(Snapshot(Source.COMPOSE, (web,)))
    clock.advance(30)
    failing = replace(web, health=Health.UNHEALTHY, health_reason="healthcheck failed: exit 1")
    store.apply(InstanceChanged(failing))
    clock.advance(5)
    store.apply(InstanceChanged(failing))  # the same again: nothing new
    store.apply(Snapshot(Source.COMPOSE, (failing,)))  # a resync that finds it as it was
    clock.advance(25)
    store.apply(InstanceChanged(web))
    history = store.health_log.of_service("name:web")
    assert [(t.at - FIXED_NOW, t.health, t.reason) for t in history] == [
        (timedelta(0), Health.HEALTHY, ""),
        (timedelta(seconds=30), Health.UNHEALTHY, "healthcheck failed: exit 1"),
        (timedelta(seconds=60), Health.HEALTHY, ""),
    ]
    assert [t.health for t in store.health_log.of_instance(web.key)] == [Health.HEALTHY, Health.UNHEALTHY, Health.HEALTHY]


def test_restarts_are_recorded_with_why_the_instance_died():
    store, clock = store_with_clock()
    web = make_instance("shop", "web", restarts=2)  # restarts before we looked are in the count only
    store.apply(Snapshot(Source.COMPOSE, (web,)))
    died = replace(web, state=RunState.EXITED, health=Health.STOPPED, exit_code=137, oom_killed=True)
    store.apply(InstanceChanged(died))
    clock.advance(3)
    store.apply(InstanceChanged(replace(web, restarts=3, oom_killed=True, started_at=clock.now)))
    restarts = store.health_log.restarts_of([WEB.id])
    assert [(r.instance, r.count, r.detail, r.at) for r in restarts] == [
        ("shop_web_1", 3, "exit 137, OOMKilled", clock.now),
    ]
    # A pod: its container's last termination says why.
    store.apply(Snapshot(Source.K3S, (pod("web-a", restarts=0),)))
    last = ContainerStatus("web", False, 1, "waiting", "CrashLoopBackOff", last_reason="Error", last_exit_code=1)
    store.apply(InstanceChanged(pod("web-a", restarts=1, container_statuses=(last,))))
    assert [r.detail for r in store.health_log.restarts_of([K_WEB.id])] == ["exit 1"]


def test_instance_histories_are_bounded():
    log = HealthLog(lambda: FIXED_NOW)
    base = make_instance("shop", "web")
    for i in range(KEEP_INSTANCES + 50):
        inst = replace(base, id=f"c{i}")
        log.observe({}, {inst.key: inst}, {})
    assert len(log.instances) == KEEP_INSTANCES
    assert log.of_instance(replace(base, id="c0").key) == []  # the oldest went first


# ---- summary, timeline ---------------------------------------------------------------------------


def test_the_header_summary_counts_each_side():
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (
        make_instance("shop", "web"),
        make_instance("shop", "api", health=Health.UNHEALTHY),
        make_instance("shop", "worker", health=Health.NO_CHECK),
        make_instance("shop", "mailer", state=RunState.EXITED),  # stopped: not counted
    )))
    store.apply(Snapshot(Source.K3S, (pod("web-1", health=Health.STARTING),)))
    summary = summarize(store.services.values())
    assert summary[Source.COMPOSE] == SideSummary(healthy=2, degraded=0, down=1)
    assert summary[Source.K3S] == SideSummary(healthy=0, degraded=1, down=0)


def test_the_timeline_shows_the_worst_moment_of_each_bucket():
    now = FIXED_NOW
    history = [
        Transition(now - timedelta(minutes=4), Health.HEALTHY, ""),
        Transition(now - timedelta(minutes=3, seconds=50), Health.UNHEALTHY, "x"),  # 5 s of it: still shows
        Transition(now - timedelta(minutes=3, seconds=45), Health.HEALTHY, ""),
        Transition(now - timedelta(minutes=1), Health.STARTING, ""),
    ]
    buckets = timeline(history, now, window=timedelta(minutes=10), width=20)
    assert buckets[:12] == [None] * 12  # before the history began
    assert buckets[12] == Health.UNHEALTHY
    assert sparkline(buckets) == " " * 12 + "▁" + "█" * 5 + "▄▄"
    # A history older than the window: its last state fills the whole window.
    old = [Transition(now - timedelta(hours=2), Health.CRASH_LOOPING, "")]
    assert sparkline(timeline(old, now, width=5)) == "▁▁▁▁▁"


# ---- the row and the pane ------------------------------------------------------------------------


def test_the_health_row_and_pane_explain_a_service():
    store, clock = store_with_clock()
    probe_fail = ProbeRun(FIXED_NOW, FIXED_NOW + timedelta(seconds=1), 1, "curl: (7) Failed to connect")
    web = replace(make_instance("shop", "web", health=Health.UNHEALTHY, restarts=1),
                  health_reason="healthcheck failed 3 times in a row: exit 1", probes=(probe_fail,))
    store.apply(Snapshot(Source.COMPOSE, (web,)))
    ready = Condition("Ready", "False", "ContainersNotReady", "containers with unready status: [web]")
    waiting = ContainerStatus("web", False, 4, "waiting", "CrashLoopBackOff", "back-off 40s restarting failed container",
                              last_reason="OOMKilled", last_exit_code=137)
    k = pod("web-7d-x", health=Health.CRASH_LOOPING, reason="CrashLoopBackOff: back-off 40s",
            container_statuses=(waiting,), conditions=(ready,))
    store.apply(Snapshot(Source.K3S, (k,), specs=(WorkloadSpec(K_WEB, "Deployment", 1, conditions=(
        Condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
    )),), objects=(
        ClusterEvent("shop", "web-7d-x.1", "Warning", "Unhealthy", "Pod", "web-7d-x",
                     "Liveness probe failed: HTTP probe failed with statuscode: 500", 3, FIXED_NOW, FIXED_NOW),
        ClusterEvent("shop", "gone.1", "Warning", "BackOff", "Pod", "web-gone", "old pod", 1, FIXED_NOW, FIXED_NOW),
    )))
    store.apply(ObjectChanged(HttpCheck(WEB, "/health", "http://127.0.0.1:8080/health", False, None, None,
                                        "timed out after 2 s", FIXED_NOW, (True, False))))
    clock.advance(90)
    row = health_row_of(store, "name:web")
    assert row is not None
    cells = [c.text for c in health_table_row(row, clock.now)]
    assert cells[:4] == ["web", "both", "crash-looping", "k3s: CrashLoopBackOff: back-off 40s"]
    assert cells[4] == "90s" and cells[6] == "1"
    assert cells[7] == "/health ✖ timed out after 2 s"
    text = report_text(health_report(store, "name:web", clock.now))
    for expected in [
        "web  both  crash-looping — k3s: CrashLoopBackOff: back-off 40s",
        "compose: shop/web",
        "healthcheck failed 3 times in a row: exit 1",
        "exit 1 1.0s  curl: (7) Failed to connect",
        "web: waiting CrashLoopBackOff — back-off 40s restarting failed container",
        "last ended OOMKilled (137)",
        "condition Ready False ContainersNotReady",
        "Deployment Available False MinimumReplicasUnavailable",
        "Unhealthy ×3  Liveness probe failed: HTTP probe failed with statuscode: 500",
        "compose /health  no answer  timed out after 2 s",
        "✓✗",
        "State changes this session",
    ]:
        assert expected in text, expected
    assert "old pod" not in text  # an event about a pod that is gone is not shown against this one
    assert report_text(health_report(store, "name:nope", clock.now)).startswith("This service is gone")
