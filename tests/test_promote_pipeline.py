"""Promotion and demotion (backends/promote/pipeline.py, state.py) end to end.

The Compose side is real: a compose project on the real Docker engine whose busybox
httpd publishes a host port, driven through the hub's ComposeAdapter. The cluster is the
emulated API server (tests/support/kube_emulator.py) spoken to by the real KubeAdapter.
It has no controllers, so the test plays them: once the Deployment is applied it adds
the pod and, when it chooses, sets it Ready. The pod's port is relayed to a second real
busybox httpd container that says "from k3s", so `http://127.0.0.1:<old host port>/`
shows who answers: Compose's page before, the "pod" through the forward after.

Manifests are small and hand-written (a Deployment and a Service): these tests are about
the pipeline, not the translator. Every wait is on a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from backends.compose import ComposeAdapter
from backends.hub import Hub
from backends.kube import KubeAdapter, ObjectId
from backends.model import ForwardSpec, Source, WorkloadKey
from backends.promote.deliver import DeliverySettings, unique_tag
from backends.promote.model import PromoteError
from backends.promote.pipeline import (
    ApplyError,
    CollisionError,
    KeepPort,
    Progress,
    PromotionPlan,
    RolloutTimeout,
    Step,
    StepState,
    demote,
    kept_ports,
    promote,
)
from backends.promote.state import (
    STATE_MANAGER,
    KeptPort,
    demoted_annotations,
    parse_ports,
    parse_promotion,
    promoted_annotations,
    read_promotions,
    restore_forwards,
)
from tests.support import hubs
from tests.support.dockerenv import TEST_IMAGE, ComposeProject, container_ip, httpd_service, wait_listening
from tests.support.kube_emulator import KubeEmulator

pytestmark = pytest.mark.docker

DEADLINE = 30.0  # generous: two cores, shared with other suites
NS = "shop"
MANAGED = "app.kubernetes.io/managed-by"
COMPOSE_PAGE = b"ferryman test page"
POD_PAGE = b"from k3s"


# ---- the real parts ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pod_server(docker_client, tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A real HTTP server standing for the pod: (ip, port) on its compose network."""
    script = "mkdir -p /srv && echo 'from k3s' > /srv/index.html && exec httpd -f -p 8080 -h /srv"
    project = ComposeProject(tmp_path_factory.mktemp("podserver"), {
        "pod": {"image": TEST_IMAGE, "command": ["sh", "-c", script], "stop_grace_period": "1s"},
    })
    try:
        project.up()
        address = (container_ip(project.container_ids(docker_client, "pod")[0]), 8080)
        wait_listening(address)
        yield address
    finally:
        project.down()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


@dataclass
class World:
    hub: Hub
    kube: KubeEmulator
    project: ComposeProject
    workload: WorkloadKey  # the Compose service "web"
    port: int  # the host port Compose publishes
    pod_server: tuple[str, int]
    client: docker.DockerClient

    def container_running(self) -> bool:
        ids = self.project.container_ids(self.client, "web")
        return bool(ids) and all(self.client.api.inspect_container(i)["State"]["Running"] for i in ids)

    def plan(self, **changes) -> PromotionPlan:
        fields = {"workload": self.workload, "namespace": NS, "objects": manifests(self.project.name),
                  "host_ports": kept_ports(self.hub, self.workload)}
        fields.update(changes)
        return PromotionPlan(**fields)

    def add_pod(self, name: str = "web-5d8f7-abcde", ready: bool = False) -> str:
        self.kube.add_pod(NS, name, owner="web", phase="Running", ready=ready)
        self.kube.set_portforward_target(NS, name, 8080, *self.pod_server)
        return name

    def deployment(self) -> dict | None:
        return self.kube.get_object("deployments", NS, "web")

    def service(self) -> dict | None:
        return self.kube.get_object("services", NS, "web")

    def nothing_left(self) -> None:
        """What a failed or cancelled promotion must leave: no object of the run, Compose
        up, no forward."""
        assert self.deployment() is None
        assert self.service() is None
        assert self.kube.get_object("namespaces", None, NS) is None  # created by the run, so removed too
        assert self.container_running()
        assert self.hub.forwards.forwards == {}


def manifests(project: str, name: str = "web", image: str = TEST_IMAGE) -> list[dict]:
    """A Deployment and its Service, as the translator would make them (without the
    managed-by label: the pipeline must add it whatever the translator does)."""
    selector = {"app.kubernetes.io/instance": f"{project}-{name}"}
    labels = {"app.kubernetes.io/name": name, **selector}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
         "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": name, "image": image,
                                                        "ports": [{"containerPort": 8080}]}]}}}},
    ]


def new_hub(kube: KubeEmulator) -> Hub:
    return Hub([
        KubeAdapter(kubeconfig=str(kube.kubeconfig), reconnect_min=0.05, reconnect_max=0.3, api_timeout=10.0),
        # busybox httpd as PID 1 ignores SIGTERM: a short stop timeout keeps the test short.
        ComposeAdapter(reconnect_min=0.05, reconnect_max=0.3, stop_timeout=1),
    ])


async def until(condition: Callable[[], object], what: str, timeout: float = DEADLINE):  # noqa: ANN201
    return await hubs.until(condition, what, timeout)


async def ready_hub(hub: Hub, workload: WorkloadKey | None = None, port: int | None = None) -> None:
    await until(lambda: hubs.connected(hub, Source.K3S) and hubs.connected(hub, Source.COMPOSE), "both connected")
    if workload is not None:
        await until(lambda: any(i.running and any(p.host_port == port for p in i.ports)
                                for i in hub.store.instances_of(workload.id)), f"{workload} running in the store")


@pytest.fixture
async def world(docker_client, compose_project, kube: KubeEmulator, pod_server) -> AsyncIterator[World]:
    port = free_port()
    project = compose_project({"web": httpd_service(port, stop_grace_period="1s")})
    workload = WorkloadKey(Source.COMPOSE, project.name, "web")
    hub = new_hub(kube)
    async with hubs.running_hub(hub):
        await ready_hub(hub, workload, port)
        wait_listening(("127.0.0.1", port))
        yield World(hub, kube, project, workload, port, pod_server, docker_client)


async def http_get(port: int, host: str = "127.0.0.1") -> bytes:
    """The body of an HTTP/1.0 GET / (busybox httpd closes after it)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            raw = await reader.read()
    finally:
        writer.close()
    return raw.partition(b"\r\n\r\n")[2]


async def answers(port: int, page: bytes) -> bool:
    with contextlib.suppress(OSError, TimeoutError):
        return page in await http_get(port)
    return False


async def eventually_answers(port: int, page: bytes, what: str) -> None:
    """Connections may be refused for a moment while a container starts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await answers(port, page):
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def seen(progress: list[Progress], step: Step, state: StepState, text: str = "") -> bool:
    return any(p.step == step and p.state == state and text in p.detail for p in progress)


async def promoted(w: World, plan: PromotionPlan | None = None, pod: str = "web-5d8f7-abcde") -> list[Progress]:
    """A whole promotion, with the test playing the controller: a Ready pod once the
    Deployment is there."""
    progress: list[Progress] = []
    task = asyncio.create_task(promote(w.hub, plan or w.plan(), timeout=DEADLINE, on_progress=progress.append))
    await until(lambda: w.deployment() is not None or task.done(), "the Deployment applied")
    if not task.done():
        w.add_pod(pod, ready=True)
    await asyncio.wait_for(task, DEADLINE)
    return progress


# ---- the record (pure) ---------------------------------------------------------------------------


def test_the_promotion_record_reads_back_what_it_wrote() -> None:
    compose = WorkloadKey(Source.COMPOSE, "shop", "web")
    deployment = ObjectId("apps/v1", "Deployment", NS, "web")
    objects = [ObjectId("v1", "Service", NS, "web"), deployment]
    annotations = promoted_annotations(compose, forward_kind="service", forward_name="web",
                                       ports=[KeptPort("127.0.0.1", 8080, 80), KeptPort("::1", 8443, 443)],
                                       objects=objects, image="app:ferryman-0123456789ab")
    assert annotations["ferryman.io/host-ports"] == "127.0.0.1:8080->80, [::1]:8443->443"
    assert annotations["ferryman.io/objects"] == "v1/Service/web,apps/v1/Deployment/web"
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": NS, "labels": {MANAGED: "ferryman"}, "annotations": annotations}}
    promotion = parse_promotion(obj)
    assert promotion is not None and promotion.promoted
    assert (promotion.compose, promotion.deployment, promotion.objects) == (compose, deployment, tuple(objects))
    assert [s.key for s in promotion.forward_specs()] == ["forward/127.0.0.1:8080", "forward/::1:8443"]
    assert promotion.forward_specs()[0] == ForwardSpec(NS, "service", "web", 80, 8080, "127.0.0.1")
    # Not Ferryman's (no label), or no record: no promotion.
    assert parse_promotion({**obj, "metadata": {**obj["metadata"], "labels": {}}}) is None
    assert parse_promotion({**obj, "metadata": {**obj["metadata"], "annotations": {}}}) is None
    # A hand-edited record: what is readable is still restored.
    assert parse_ports("127.0.0.1:8080->80, garbage, :x->1, 9090->90") == (KeptPort("127.0.0.1", 8080, 80),)
    demoted = demoted_annotations(promotion)
    assert demoted["ferryman.io/state"] == "demoted" and "ferryman.io/host-ports" not in demoted


# ---- promote ---------------------------------------------------------------------------------------


async def test_promote_switches_localhost_port_from_compose_to_the_pod_after_readiness(
    world: World, tmp_path: Path,
) -> None:
    w = world
    assert await answers(w.port, COMPOSE_PAGE)
    # Delivery through the k3s strategy's real pipe, into a stand-in for `k3s` that reads
    # the archive (k3s itself cannot run here: see test_promote_deliver.py).
    importer = tmp_path / "k3s"
    importer.write_text("import sys\nsys.stdin.buffer.read()\n")
    plan = w.plan(delivery=DeliverySettings("k3s", k3s_command=(sys.executable, str(importer))))
    assert plan.host_ports == [KeepPort(w.port, 8080, "127.0.0.1")]
    progress: list[Progress] = []
    task = asyncio.create_task(promote(w.hub, plan, timeout=DEADLINE, on_progress=progress.append))

    deployment = await until(w.deployment, "the Deployment applied")
    service = w.service()
    assert service is not None
    image_id = w.client.images.get(TEST_IMAGE).id
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ferryman-test/busybox:{unique_tag(image_id)}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    for obj in (deployment, service):
        assert obj["metadata"]["labels"][MANAGED] == "ferryman"
        managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
        assert ("ferryman", "Apply") in managers
    assert w.kube.get_object("namespaces", None, NS)["metadata"]["labels"][MANAGED] == "ferryman"

    # A pod that is not ready: the rollout sees it, and Compose keeps serving meanwhile.
    pod = w.add_pod(ready=False)
    await until(lambda: seen(progress, Step.ROLLOUT, StepState.RUNNING, "0/1 ready")
                and w.hub.store.instances_of(WorkloadKey(Source.K3S, NS, "web").id), "the rollout seeing the pod")
    await asyncio.sleep(0.3)  # room for a wrong early switch to happen, if it would
    assert not task.done()
    assert w.container_running()
    assert await answers(w.port, COMPOSE_PAGE)
    assert not seen(progress, Step.STOP_COMPOSE, StepState.RUNNING)

    w.kube.set_pod_status(NS, pod, phase="Running", ready=True)
    result = await asyncio.wait_for(task, DEADLINE)

    assert not w.container_running()
    assert await http_get(w.port) == POD_PAGE + b"\n"  # the old host port, answered by the "pod"
    order = [p.step for p in progress if p.state == StepState.DONE]
    assert order == [Step.CHECK, Step.DELIVER, Step.APPLY, Step.ROLLOUT, Step.STOP_COMPOSE, Step.FORWARD,
                     Step.RECORD]
    rollout = [p.progress for p in progress if p.step == Step.ROLLOUT]
    assert rollout[0] == 0.0 and rollout[-1] == 1.0 and rollout == sorted(rollout)
    assert result.promotion.compose == w.workload
    assert [str(p) for p in result.promotion.ports] == [f"127.0.0.1:{w.port}->80"]
    annotations = w.deployment()["metadata"]["annotations"]
    assert annotations["ferryman.io/state"] == "promoted"
    assert annotations["ferryman.io/promoted-from"] == f"compose {w.project.name}/web"
    assert annotations["ferryman.io/host-ports"] == f"127.0.0.1:{w.port}->80"
    managers = {m["manager"] for m in w.deployment()["metadata"]["managedFields"]}
    assert {"ferryman", STATE_MANAGER} <= managers


async def test_a_name_collision_with_an_unmanaged_object_is_refused_and_nothing_changes(world: World) -> None:
    w = world
    w.kube.add_service(NS, "web", selector={"app": "theirs"}, ports=[80])
    before = w.service()
    progress: list[Progress] = []
    with pytest.raises(CollisionError) as refused:
        await promote(w.hub, w.plan(), timeout=DEADLINE, on_progress=progress.append)
    assert str(refused.value).startswith(
        "Service shop/web already exists and is not managed by Ferryman (no label "
        "app.kubernetes.io/managed-by=ferryman): promotion refused, nothing was changed")
    assert w.service() == before  # not even its resourceVersion moved
    assert w.deployment() is None
    assert w.kube.requests_to(r"/(services|deployments)/web$", "PATCH") == []
    assert w.container_running() and w.hub.forwards.forwards == {}
    assert seen(progress, Step.CHECK, StepState.FAILED)
    assert not any(p.step == Step.ROLLBACK for p in progress)  # there was nothing to undo


async def test_an_apply_rejected_by_the_api_server_shows_its_message_and_leaves_nothing(world: World) -> None:
    w = world
    message = 'Deployment.apps "web" is invalid: spec.template.spec.containers[0].image: Required value'
    w.kube.fail("PATCH", r"/deployments/web$", 422, reason="Invalid", message=message)
    progress: list[Progress] = []
    with pytest.raises(ApplyError) as rejected:
        await promote(w.hub, w.plan(), timeout=DEADLINE, on_progress=progress.append)
    assert message in str(rejected.value)
    assert str(rejected.value).startswith("the API server rejected Deployment shop/web: ")
    # The Namespace and the Service were created before the Deployment was refused: gone again.
    assert w.kube.requests_to(r"/services/web$", "DELETE")
    w.nothing_left()
    assert str(rejected.value).endswith(
        "; rolled back (deleted Service shop/web, Namespace shop), Compose is still running")
    assert seen(progress, Step.APPLY, StepState.FAILED, message)
    assert seen(progress, Step.ROLLBACK, StepState.DONE, "deleted Service shop/web, Namespace shop")


async def test_a_rollout_that_never_becomes_ready_times_out_and_rolls_back(world: World) -> None:
    w = world
    task = asyncio.create_task(promote(w.hub, w.plan(), timeout=2.0))
    await until(lambda: w.deployment() is not None or task.done(), "the Deployment applied")
    w.add_pod(ready=False)
    with pytest.raises(RolloutTimeout) as late:
        await asyncio.wait_for(task, DEADLINE)
    assert str(late.value).startswith("Deployment shop/web was not ready within 2 s (0/1 ready")
    assert str(late.value).endswith("; rolled back (deleted Deployment shop/web, Service shop/web, Namespace shop), "
                                    "Compose is still running")
    w.nothing_left()
    assert await answers(w.port, COMPOSE_PAGE)


async def test_cancelling_mid_rollout_leaves_nothing_half_done(world: World) -> None:
    w = world
    progress: list[Progress] = []
    task = asyncio.create_task(promote(w.hub, w.plan(), timeout=DEADLINE, on_progress=progress.append))
    await until(lambda: seen(progress, Step.ROLLOUT, StepState.RUNNING), "the rollout step")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    w.nothing_left()
    assert seen(progress, Step.ROLLOUT, StepState.FAILED, "cancelled")


async def test_cancelling_after_compose_stopped_starts_it_again(world: World) -> None:
    w = world
    progress: list[Progress] = []
    task: asyncio.Task | None = None

    def on_progress(report: Progress) -> None:
        progress.append(report)
        if report.step == Step.STOP_COMPOSE and report.state == StepState.DONE:
            task.cancel()  # Ctrl-C right after the switch-over began

    task = asyncio.create_task(promote(w.hub, w.plan(), timeout=DEADLINE, on_progress=on_progress))
    await until(lambda: w.deployment() is not None or task.done(), "the Deployment applied")
    w.add_pod(ready=True)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), DEADLINE)
    assert seen(progress, Step.STOP_COMPOSE, StepState.DONE)
    w.nothing_left()  # Compose was started again, the objects deleted
    await eventually_answers(w.port, COMPOSE_PAGE, "Compose answering again")


# ---- demote and durable state --------------------------------------------------------------------


async def test_demote_brings_compose_back_and_scales_to_zero(world: World) -> None:
    w = world
    await promoted(w)
    assert await http_get(w.port) == POD_PAGE + b"\n"
    progress: list[Progress] = []
    demoted = await demote(w.hub, w.workload, timeout=DEADLINE, on_progress=progress.append)
    assert demoted.state == "demoted"
    assert w.container_running()
    assert w.hub.forwards.forwards == {}
    await eventually_answers(w.port, COMPOSE_PAGE, "Compose answering after the demotion")
    deployment = w.deployment()
    assert deployment["spec"]["replicas"] == 0
    annotations = deployment["metadata"]["annotations"]
    assert annotations["ferryman.io/state"] == "demoted"
    assert "ferryman.io/host-ports" not in annotations  # nothing to restore any more
    assert w.service() is not None  # scale-to-zero keeps the objects
    assert await read_promotions(w.hub) == []
    assert [p.step for p in progress if p.state == StepState.DONE] == [
        Step.STOP_FORWARDS, Step.START_COMPOSE, Step.REMOVE_FORWARDS, Step.SCALE_DOWN, Step.RECORD]

    # Promoting again reuses Ferryman's own objects (no collision) and scales back up. The
    # test is the controller: scaled to zero, the pod goes.
    w.kube.delete_object("pods", NS, "web-5d8f7-abcde")
    await ready_hub(w.hub, w.workload, w.port)
    # A re-promotion that fails leaves the objects it found (they were there before) as
    # they were: scaled to zero, recorded as demoted.
    with pytest.raises(RolloutTimeout, match=r"rolled back \(scaled Deployment shop/web back\), Compose is still"):
        await promote(w.hub, w.plan(), timeout=1.0)
    assert w.deployment()["spec"]["replicas"] == 0
    assert w.deployment()["metadata"]["annotations"]["ferryman.io/state"] == "demoted"
    assert w.service() is not None and w.container_running()
    await promoted(w, w.plan(), pod="web-5d8f7-fghij")
    assert w.deployment()["spec"]["replicas"] == 1
    assert await http_get(w.port) == POD_PAGE + b"\n"


async def test_a_fresh_hub_sees_the_promotion_restores_its_forward_and_delete_demote_spares_others(
    world: World,
) -> None:
    w = world
    await promoted(w)
    # Not Ferryman's: a Deployment in the same namespace, and (after the promotion) the
    # Service, whose label the user took away.
    w.kube.add_deployment(NS, "theirs")
    w.kube.patch_object("services", NS, "web", {"metadata": {"labels": {MANAGED: None}}})
    await w.hub.forwards.close()  # Ferryman quits: its forwards go with it
    assert not await answers(w.port, POD_PAGE)

    fresh = new_hub(w.kube)
    async with hubs.running_hub(fresh):
        await ready_hub(fresh)
        [promotion] = await read_promotions(fresh)
        assert promotion.compose == w.workload
        assert promotion.deployment.name == "web" and promotion.namespace == NS
        assert [(p.address, p.host_port, p.remote_port) for p in promotion.ports] == [("127.0.0.1", w.port, 80)]
        restored = await restore_forwards(fresh)
        assert [fw.spec.local_port for fw in restored.started] == [w.port] and not restored.failed
        await until(lambda: fresh.store.instances_of(WorkloadKey(Source.K3S, NS, "web").id), "the pod in view")
        assert await http_get(w.port) == POD_PAGE + b"\n"
        again = await restore_forwards(fresh)  # idempotent: nothing started twice
        assert again.existing == (f"forward/127.0.0.1:{w.port}",) and not again.started

        await until(lambda: fresh.store.instances_of(w.workload.id), "the Compose container in view")
        await demote(fresh, promotion, mode="delete", timeout=DEADLINE)
        assert w.deployment() is None  # Ferryman's: deleted
        assert w.service() is not None  # its label was taken away: not Ferryman's any more, left alone
        assert w.kube.get_object("deployments", NS, "theirs") is not None
        assert w.container_running() and fresh.forwards.forwards == {}
        await eventually_answers(w.port, COMPOSE_PAGE, "Compose answering after the demotion")
        assert await read_promotions(fresh, include_demoted=True) == []


async def test_a_demote_that_cannot_start_compose_puts_the_forward_back(world: World) -> None:
    w = world
    await promoted(w)
    for container_id in w.project.container_ids(w.client, "web"):
        w.client.api.remove_container(container_id, force=True)  # `docker compose rm`: nothing to start
    await until(lambda: not w.hub.store.instances_of(w.workload.id), "the container gone from the store")
    progress: list[Progress] = []
    with pytest.raises(PromoteError, match=r"has no Compose container to start \(removed\?\): run `docker compose "
                                           r"up -d web` in its project"):
        await demote(w.hub, w.workload, timeout=DEADLINE, on_progress=progress.append)
    assert seen(progress, Step.ROLLBACK, StepState.DONE, "the forwards are back")
    assert await http_get(w.port) == POD_PAGE + b"\n"  # still answered by the cluster
    deployment = w.deployment()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["annotations"]["ferryman.io/state"] == "promoted"
