"""The domain model's aggregation and the store's deltas: pure logic, dense tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from backends.model import (
    ConnState, Health, InstanceChanged, InstanceGone, Port, RunState, Snapshot, Source, SourceStatus, SpecChanged,
    SpecGone, WorkloadKey, WorkloadSpec, aggregate,
)
from backends.rows import WORKLOAD_COLUMNS, format_ports, humanize_age, render_table, state_tone, workload_row
from backends.store import Store
from tests.support.scripted import FIXED_NOW, demo_instances, make_instance, stopped

KEY = WorkloadKey(Source.COMPOSE, "shop", "api")


def test_aggregate_all_running_is_running_and_as_healthy_as_the_worst():
    a = make_instance("shop", "api", 1, health=Health.HEALTHY)
    b = make_instance("shop", "api", 2, health=Health.UNHEALTHY, restarts=2)
    w = aggregate(KEY, [b, a])
    assert (w.state, w.health, w.running, w.desired, w.restarts) == ("running", Health.UNHEALTHY, 2, 2, 2)
    assert w.instance_keys == (a.key, b.key)  # ordered by container number


def test_aggregate_partial_stopped_created_restarting():
    a = make_instance("shop", "api", 1)
    b = stopped(make_instance("shop", "api", 2))
    assert aggregate(KEY, [a, b]).state == "partial"
    assert aggregate(KEY, [a, b]).health == Health.HEALTHY  # only running instances count
    w = aggregate(KEY, [stopped(a), b])
    assert (w.state, w.health, w.running, w.desired, w.started_at) == ("exited (137)", Health.STOPPED, 0, 2, None)
    assert aggregate(KEY, [stopped(a, exit_code=0), b]).state == "stopped"  # different codes: no single one to show
    created = replace(stopped(a), state=RunState.CREATED)
    assert aggregate(KEY, [created]).state == "created"
    assert aggregate(KEY, [replace(a, state=RunState.RESTARTING), a]).state == "restarting"


def test_aggregate_no_healthcheck_is_not_healthy_and_mixed_images_are_said():
    a = make_instance("shop", "api", 1, health=Health.NO_CHECK)
    assert aggregate(KEY, [a]).health == Health.NO_CHECK
    b = make_instance("shop", "api", 2, health=Health.NO_CHECK, image="other:1")
    assert aggregate(KEY, [a, b]).image == "shop/api:dev (+1)"


def test_aggregate_uptime_is_the_oldest_running_start_and_ports_are_deduplicated():
    a = make_instance("shop", "api", 1, started_minutes_ago=10)
    b = make_instance("shop", "api", 2, started_minutes_ago=5)
    w = aggregate(KEY, [a, b])
    assert w.started_at == a.started_at
    assert w.ports == (Port(8080),)


def test_store_snapshot_then_changes_produce_deltas():
    store = Store()
    seen = []
    store.subscribe(seen.append)
    store.apply(SourceStatus(Source.COMPOSE, ConnState.CONNECTED, "unix:///x", "20.10"))
    first = store.apply(Snapshot(Source.COMPOSE, tuple(demo_instances())))
    assert len(first.instances) == 8 and len(first.workloads) == 7
    web = demo_instances()[0]
    change = store.apply(InstanceChanged(stopped(web)))
    assert set(change.instances) == {web.key}
    assert set(change.workloads) == {"compose/shop/web"}
    assert change.workloads["compose/shop/web"].state == "exited (137)"
    gone = store.apply(InstanceGone(Source.COMPOSE, web.id))
    assert gone.instances_removed == {web.key} and gone.workloads_removed == {"compose/shop/web"}
    assert len(seen) == 4


def test_store_identical_events_and_resyncs_are_silent():
    store = Store()
    calls = []
    store.subscribe(calls.append)
    store.apply(Snapshot(Source.COMPOSE, tuple(demo_instances())))
    assert not store.apply(Snapshot(Source.COMPOSE, tuple(demo_instances())))
    assert not store.apply(InstanceChanged(demo_instances()[0]))
    assert not store.apply(InstanceGone(Source.COMPOSE, "never-seen"))
    status = SourceStatus(Source.COMPOSE, ConnState.CONNECTED, "unix:///x")
    store.apply(status)
    assert not store.apply(status)
    assert len(calls) == 2


def test_store_resync_drops_only_the_missing_and_updates_only_the_changed():
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, tuple(demo_instances())))
    fresh = demo_instances()
    fresh[1] = replace(fresh[1], restarts=4)
    del fresh[-1]
    change = store.apply(Snapshot(Source.COMPOSE, tuple(fresh)))
    assert set(change.instances) == {fresh[1].key}
    assert change.instances_removed == {demo_instances()[-1].key}
    assert change.workloads_removed == {"compose/billing/redis"}
    assert set(change.workloads) == {"compose/shop/api"}


def test_store_instance_moving_between_workloads_updates_both():
    store = Store()
    a = make_instance("shop", "api")
    store.apply(InstanceChanged(a))
    moved = replace(a, workload=WorkloadKey(Source.COMPOSE, "shop", "api2"))
    change = store.apply(InstanceChanged(moved))
    assert change.workloads_removed == {"compose/shop/api"} and set(change.workloads) == {"compose/shop/api2"}


def test_a_failing_subscriber_does_not_stop_the_others():
    store = Store()
    got = []
    store.subscribe(lambda c: 1 / 0)
    store.subscribe(got.append)
    store.apply(InstanceChanged(make_instance("a", "b")))
    assert len(got) == 1


def test_unsubscribe():
    store = Store()
    got = []
    stop = store.subscribe(got.append)
    stop()
    stop()  # twice is harmless
    store.apply(InstanceChanged(make_instance("a", "b")))
    assert got == []


def test_humanize_age():
    now = FIXED_NOW
    assert humanize_age(None, now) == "-"
    assert humanize_age(now - timedelta(seconds=5), now) == "5s"
    assert humanize_age(now + timedelta(seconds=5), now) == "0s"  # clock skew never shows negative ages
    assert humanize_age(now - timedelta(seconds=119), now) == "119s"
    assert humanize_age(now - timedelta(minutes=7), now) == "7m"
    assert humanize_age(now - timedelta(hours=3, minutes=12), now) == "3h12m"
    assert humanize_age(now - timedelta(hours=13, minutes=12), now) == "13h"
    assert humanize_age(now - timedelta(days=5, hours=1), now) == "5d"


def test_ports_show_published_first_and_host_ip_only_when_specific():
    ports = [Port(5432), Port(8080, "tcp", "0.0.0.0", 18080), Port(53, "udp", "127.0.0.1", 5353)]
    assert format_ports(ports) == "18080→8080/tcp, 127.0.0.1:5353→53/udp, 5432/tcp"


def test_plain_table_rendering_is_aligned():
    rows = [workload_row(w, FIXED_NOW) for w in [aggregate(KEY, [make_instance("shop", "api", host_port=3001)])]]
    text = render_table(WORKLOAD_COLUMNS, rows)
    header, line = text.splitlines()
    assert header.startswith("PROJECT  SERVICE  STATE")
    assert line.split()[:5] == ["shop", "api", "running", "healthy", "1/1"]
    assert header.index("SERVICE") == line.index("api")


def test_state_tones_make_failures_stand_out():
    assert state_tone("exited (3)") == "error"
    assert state_tone("exited (0)") == "muted"
    assert state_tone("running") == "ok"
    assert state_tone("partial") == "warn"


# ---- controller specs (Kubernetes Deployments/StatefulSets) ---------------------------------


KKEY = WorkloadKey(Source.K3S, "dev", "api")


def k3s_pod(n: int = 1, **kw):
    return replace(make_instance("dev", "api", n, **kw), source=Source.K3S, workload=KKEY, id=f"uid-{n}")


def test_a_spec_sets_desired_and_keeps_a_podless_workload_as_a_row():
    spec = WorkloadSpec(KKEY, "Deployment", desired=3, image="api:1")
    w = aggregate(KKEY, [k3s_pod(1), k3s_pod(2)], spec)
    assert (w.running, w.desired, w.state) == (2, 3, "partial")
    zero = aggregate(KKEY, [], replace(spec, desired=0))
    assert (zero.state, zero.health, zero.running, zero.desired, zero.image) == ("scaled to 0", Health.STOPPED, 0, 0, "api:1")
    pending = aggregate(KKEY, [], spec)
    assert (pending.state, pending.health) == ("pending", Health.UNKNOWN)
    surge = aggregate(KKEY, [k3s_pod(1), k3s_pod(2)], replace(spec, desired=1))  # rollout: old + new pod
    assert surge.state == "running"


def test_store_keeps_spec_rows_until_the_spec_goes():
    store = Store()
    spec = WorkloadSpec(KKEY, "Deployment", desired=1)
    first = store.apply(SpecChanged(spec))
    assert first.workloads[KKEY.id].state == "pending"
    store.apply(InstanceChanged(k3s_pod(1)))
    assert store.workloads[KKEY.id].state == "running"
    gone_pod = store.apply(InstanceGone(Source.K3S, "uid-1"))
    assert gone_pod.workloads[KKEY.id].state == "pending" and not gone_pod.workloads_removed
    assert not store.apply(SpecChanged(spec))  # identical: silent
    assert store.apply(SpecGone(KKEY)).workloads_removed == {KKEY.id}


def test_snapshot_resyncs_specs_of_its_source_only():
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, tuple(demo_instances())))
    a = WorkloadSpec(KKEY, "Deployment", desired=1)
    b = WorkloadSpec(WorkloadKey(Source.K3S, "dev", "db"), "StatefulSet", desired=1)
    store.apply(Snapshot(Source.K3S, (), (a, b)))
    assert {KKEY.id, b.id} <= set(store.workloads)
    change = store.apply(Snapshot(Source.K3S, (), (replace(a, desired=2),)))
    assert change.workloads_removed == {b.id}
    assert change.workloads[KKEY.id].desired == 2
    assert len([w for w in store.workloads.values() if w.key.source == Source.COMPOSE]) == 7
