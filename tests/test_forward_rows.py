"""`:pf` rows and the forward dialog's defaults, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from backends.forward_rows import (
    Published,
    default_local_port,
    forward_row,
    human_bytes,
    pf_rows,
    published_ports,
    target_of_pod,
    target_of_service,
    target_of_workload,
)
from backends.model import (
    ForwardSpec,
    ForwardState,
    InstanceChanged,
    KubeService,
    ObjectChanged,
    Port,
    PortForward,
    ServicePort,
    Snapshot,
    Source,
    SpecChanged,
    WorkloadKey,
    WorkloadSpec,
)
from backends.store import Store
from tests.support.scripted import FIXED_NOW, make_instance, stopped

K_WEB = WorkloadKey(Source.K3S, "shop", "web")


def pod(name: str = "web-7d-x", ports=(Port(8080, "tcp", name="http"),)):  # noqa: ANN001, ANN201
    base = make_instance("shop", "web")
    return replace(base, source=Source.K3S, id=f"uid-{name}", name=name, workload=K_WEB, ports=tuple(ports))


def test_bytes_and_ports_read_as_people_say_them():
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 2**20 + 2**19)] == ["0 B", "1023 B", "1.0 KiB", "5.5 MiB"]
    # Docker may publish the IPv4 and IPv6 sides of one port on two host ports: both said, once each.
    web = replace(make_instance("shop", "web"), ports=(
        Port(80, "tcp", "0.0.0.0", 32810), Port(80, "tcp", "::", 32809), Port(80, "tcp", "0.0.0.0", 32810),
        Port(9000),
    ))
    assert published_ports(web) == ["localhost:32810→80/tcp", "localhost:32809→80/tcp"]


def test_forwards_and_published_ports_share_the_view():
    store = Store()
    web = make_instance("shop", "web", host_port=8080)
    worker = make_instance("shop", "worker")  # publishes nothing: not a row
    store.apply(Snapshot(Source.COMPOSE, (web, worker)))
    spec = ForwardSpec("shop", "service", "api", 80, 18080)
    pf = PortForward(spec, ForwardState.ACTIVE, pod="api-5f-x", pod_port=8080, connections=1, total_connections=7,
                     bytes_in=5 * 2**20, bytes_out=2048, started_at=FIXED_NOW - timedelta(minutes=3),
                     previous_pod="api-5f-old", switched_at=FIXED_NOW)
    store.apply(ObjectChanged(pf))
    rows = pf_rows(store)
    assert set(rows) == {spec.key, f"published/{web.key}"}
    assert [c.text for c in forward_row(rows[spec.key], FIXED_NOW)] == [
        "localhost:18080", "forward", "svc/api:80", "shop", "api-5f-x (was api-5f-old)", "active", "1 (7)",
        "5.0 MiB", "2.0 KiB", "3m", "",
    ]
    published = rows[f"published/{web.key}"]
    assert isinstance(published, Published)
    assert [c.text for c in forward_row(published, FIXED_NOW)][:6] == [
        "localhost:8080→8080/tcp", "compose", "web", "shop", "shop_web_1", "published",
    ]
    store.apply(InstanceChanged(stopped(web)))  # a stopped container answers on nothing
    assert set(pf_rows(store)) == {spec.key}


def test_dialog_defaults_keep_the_compose_services_old_host_port():
    store = Store()
    store.apply(Snapshot(Source.COMPOSE, (make_instance("shop", "web", host_port=3000),)))
    store.apply(Snapshot(Source.K3S, (pod(),), specs=(WorkloadSpec(K_WEB, "Deployment", 1),), objects=(
        KubeService("shop", "web", "ClusterIP", "10.43.0.9", (), (ServicePort("http", 80, "http"),), (("app", "web"),)),
    )))
    # The hybrid row's Compose side published 3000: localhost:3000 keeps answering.
    svc = store.objects["k3s/Service/shop/web"]
    assert isinstance(svc, KubeService)
    target = target_of_service(store, svc)
    assert (target.kind, target.ports, target.port_hints, target.local_port) == (
        "service", (80,), ("http:80►http/TCP",), 3000)
    assert target_of_pod(store, pod()).local_port == 3000
    assert target_of_workload(store, store.specs[K_WEB.id]).ports == (8080,)
    # No Compose side: the same port, above 1024.
    lone = pod("api-1", ports=(Port(80),))
    lone = replace(lone, workload=WorkloadKey(Source.K3S, "shop", "api"))
    store.apply(InstanceChanged(lone))
    store.apply(SpecChanged(WorkloadSpec(lone.workload, "Deployment", 1)))
    assert target_of_pod(store, lone).local_port == 8080
    assert default_local_port(5432) == 5432 and default_local_port(443) == 8443 and default_local_port(80, 3000) == 3000
