"""The Kubernetes emulator behaves like the Kubernetes API for kr8s — over real HTTP, with real kr8s.

These tests pin both the emulator and what kr8s 0.20.15 does against a Kubernetes API, so that
the adapter built on top can rely on (and work around) it. No kr8s internals are patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import kr8s
import kr8s.asyncio
import pytest
import yaml
from kr8s.asyncio.objects import ConfigMap, Deployment, Namespace, Pod
from kr8s.asyncio.portforward import PortForward

from tests.support.kube_emulator import KubeEmulator

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def kr8s_api(emulator: KubeEmulator) -> kr8s.asyncio.Api:
    return await kr8s.asyncio.api(kubeconfig=str(emulator.kubeconfig))


class Recorder:
    """Consumes a kr8s watch in the background: ``await rec.next()`` -> (type, name, obj)."""

    def __init__(self, events: AsyncIterator[tuple[str, Any]]):
        self.queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(events))

    async def _run(self, events: AsyncIterator[tuple[str, Any]]) -> None:
        async for event, obj in events:
            await self.queue.put((event, obj.name, obj))

    async def next(self, timeout: float = 5) -> tuple[str, str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def nothing_more(self, wait: float = 0.2) -> None:
        await asyncio.sleep(wait)
        assert self.queue.empty(), f"unexpected event {self.queue.get_nowait()[:2]}"

    async def ended(self, timeout: float = 5) -> None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


@contextlib.asynccontextmanager
async def recording(events: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[Recorder]:
    recorder = Recorder(events)
    try:
        yield recorder
    finally:
        await recorder.close()


async def raw_watch_lines(api: kr8s.asyncio.Api, url: str, params: dict[str, str], namespace: str = "default"):
    lines = []
    async with api.call_api("GET", version="v1", url=url, namespace=namespace, stream=True, timeout=None,
                            params={"watch": "true", **params}) as response:
        async for line in response.aiter_lines():
            lines.append(json.loads(line))
    return lines


# ------------------------------------------------------------------------------------------ discovery


async def test_discovery_answers_the_urls_kr8s_asks_for(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    assert (await api.version())["gitVersion"].startswith("v1.31")
    assert await api.lookup_kind("pods") == ("pod/v1", "pods", True)
    assert await api.lookup_kind("deploy") == ("deployment.apps/v1", "deployments", True)
    assert await api.lookup_kind("svc") == ("service/v1", "services", True)
    assert await api.lookup_kind("Event") == ("event/v1", "events", True)  # core before events.k8s.io
    assert await api.lookup_kind("ns") == ("namespace/v1", "namespaces", False)

    asked = {r.url.path for r in kube}
    assert {"/version/", "/api/", "/apis/", "/api/v1", "/apis/apps/v1"} <= asked  # trailing slashes

    async with api.call_api("GET", version="", base="/api") as response:
        assert response.json()["versions"] == ["v1"]
    async with api.call_api("GET", version="", base="/apis") as response:
        groups = {g["name"] for g in response.json()["groups"]}
    assert {"apps", "batch", "events.k8s.io"} <= groups
    assert "metrics.k8s.io" not in groups and "" not in groups
    async with api.call_api("GET", version="v1") as response:
        core = response.json()
    assert core["groupVersion"] == "v1"
    names = {r["name"]: r for r in core["resources"]}
    assert {"pods", "pods/log", "pods/exec", "pods/portforward", "services", "namespaces", "events",
            "configmaps", "secrets", "persistentvolumeclaims"} <= set(names)
    assert names["namespaces"]["namespaced"] is False
    async with api.call_api("GET", version="apps/v1") as response:
        apps = {r["name"]: r for r in response.json()["resources"]}
    assert {"deployments", "deployments/scale", "statefulsets", "statefulsets/scale", "replicasets"} <= set(apps)
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"


# ------------------------------------------------------------------------------------------ objects & lists


async def test_objects_get_server_side_metadata(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    pod = Pod({"metadata": {"name": "solo"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, api=api)
    await pod.create()
    meta = pod.metadata
    assert meta.namespace == "default"  # the kubeconfig context's namespace
    assert re.fullmatch(r"[0-9a-f-]{36}", meta.uid)
    assert RFC3339.match(meta.creationTimestamp)
    assert meta.resourceVersion == kube.resource_version and meta.resourceVersion.isdigit()
    assert pod.status.phase == "Pending"  # status belongs to the kubelet, as on a real server

    deploy = Deployment({"metadata": {"name": "web"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "a"}]}}}},
        api=api)
    await deploy.create()
    assert deploy.metadata.generation == 1
    rv = int(deploy.metadata.resourceVersion)
    await deploy.patch({"metadata": {"labels": {"team": "x"}}})
    assert deploy.metadata.generation == 1 and int(deploy.metadata.resourceVersion) > rv
    await deploy.patch({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "b"}]}}}})
    assert deploy.metadata.generation == 2
    before = deploy.metadata.resourceVersion
    await deploy.patch({"metadata": {"labels": {"team": "x"}}})  # a no-op keeps the resourceVersion
    assert deploy.metadata.resourceVersion == before

    with pytest.raises(kr8s.ServerError) as exc:
        await Pod({"metadata": {"name": "solo"}, "spec": {}}, api=api).create()
    assert exc.value.response.status_code == 409 and exc.value.status["reason"] == "AlreadyExists"
    assert [v["metadata"]["resourceVersion"] for v in kube.objects["apps/v1/deployments", "default", "web"].history]


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", {"web-1", "web-2"}),
    ("app==web", {"web-1", "web-2"}),
    ("app!=web", {"db-1", "plain"}),
    ("tier", {"web-1", "web-2", "db-1"}),
    ("!tier", {"plain"}),
    ("app in (web,db)", {"web-1", "web-2", "db-1"}),
    ("app notin (web)", {"db-1", "plain"}),
    ("app=web,tier=canary", {"web-2"}),
    ({"app": "db"}, {"db-1"}),
])
async def test_list_with_label_selectors(kube: KubeEmulator, selector: Any, expected: set[str]) -> None:
    kube.add_pod("default", "web-1", labels={"app": "web", "tier": "stable"})
    kube.add_pod("default", "web-2", labels={"app": "web", "tier": "canary"})
    kube.add_pod("default", "db-1", labels={"app": "db", "tier": "stable"})
    kube.add_pod("default", "plain", labels={})
    kube.add_pod("other", "web-9", labels={"app": "web", "tier": "stable"})
    api = await kr8s_api(kube)
    assert {p.name async for p in api.get("pods", namespace="default", label_selector=selector)} == expected


async def test_list_with_field_selectors(kube: KubeEmulator) -> None:
    kube.add_pod("default", "running", node="node-a")
    kube.add_pod("default", "pending", phase="Pending", node="")
    kube.add_pod("default", "done", phase="Succeeded", node="node-b")
    kube.add_event("default", ("Pod", "pending"), "FailedScheduling", "0/1 nodes are available", type="Warning")
    kube.add_event("default", ("Pod", "running"), "Started", "Started container")
    api = await kr8s_api(kube)

    async def names(kind: str, selector: str) -> set[str]:
        return {o.name async for o in api.get(kind, namespace="default", field_selector=selector)}

    assert await names("pods", "status.phase=Running") == {"running"}
    assert await names("pods", "status.phase!=Running") == {"pending", "done"}
    assert await names("pods", "spec.nodeName=node-b") == {"done"}
    assert await names("pods", "spec.nodeName=") == {"pending"}
    assert await names("pods", "metadata.name=done") == {"done"}
    assert await names("pods", "metadata.namespace=default,status.phase==Succeeded") == {"done"}
    warnings = [e async for e in api.get("events", namespace="default",
                                         field_selector="involvedObject.name=pending,type=Warning")]
    assert [(e.raw["reason"], e.raw["involvedObject"]["kind"]) for e in warnings] == [("FailedScheduling", "Pod")]
    with pytest.raises(kr8s.ServerError) as exc:
        await names("pods", "spec.image=busybox")
    assert exc.value.response.status_code == 400
    assert exc.value.status["message"] == "field label not supported: spec.image"


async def test_list_across_namespaces_and_pages(kube: KubeEmulator) -> None:
    for n in range(130):
        kube.add_object({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": f"cm-{n:03}", "namespace": "bulk"}, "data": {"n": str(n)}})
    kube.add_pod("default", "a")
    kube.add_pod("team", "b")
    api = await kr8s_api(kube)
    configmaps = [c async for c in api.get("configmaps", namespace="bulk")]
    assert len(configmaps) == 130 and configmaps[0].name == "cm-000" and configmaps[-1].name == "cm-129"
    pages = kube.requests_to("/namespaces/bulk/configmaps$")
    assert len(pages) == 2 and "continue" in pages[1].params  # kr8s pages with limit=100
    assert {(p.namespace, p.name) async for p in api.get("pods", namespace=kr8s.ALL)} == {
        ("default", "a"), ("team", "b")}
    assert kube.requests_to("^/api/v1/pods$")  # the all-namespaces URL
    async with api.call_api("GET", version="v1", url="pods", namespace="team") as response:
        listing = response.json()
    assert listing["kind"] == "PodList" and listing["metadata"]["resourceVersion"] == kube.resource_version
    assert "kind" not in listing["items"][0]  # list items carry no kind, like a real server


# ------------------------------------------------------------------------------------------ watch


async def test_watch_delivers_added_modified_deleted_with_selectors(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    async with recording(api.watch("pods", namespace="default", label_selector="app=web")) as rec:
        await kube.wait_for_watches(1)
        kube.add_pod("default", "web-1", labels={"app": "web"}, phase="Pending")
        assert (await rec.next())[:2] == ("ADDED", "web-1")
        assert (await rec.next())[:2] == ("MODIFIED", "web-1")  # the kubelet status
        kube.add_pod("default", "db-1", labels={"app": "db"})
        kube.add_pod("other", "web-2", labels={"app": "web"})
        kube.set_pod_status("default", "web-1", phase="Running", ready=True)
        event, name, obj = await rec.next()
        assert (event, name, obj.status.phase) == ("MODIFIED", "web-1", "Running")
        pod = await Pod.get("web-1", namespace="default", api=api)
        await pod.patch({"metadata": {"labels": {"app": "retired"}}})
        assert (await rec.next())[:2] == ("DELETED", "web-1")  # left the selector
        await pod.patch({"metadata": {"labels": {"app": "web"}}})
        assert (await rec.next())[:2] == ("ADDED", "web-1")  # back in the selector
        await pod.delete()
        event, name, obj = await rec.next()
        assert (event, name) == ("DELETED", "web-1") and int(obj.metadata.resourceVersion) == int(kube.resource_version)
        await rec.nothing_more()

    async with recording(api.watch("pods", namespace="default", field_selector="status.phase=Running")) as rec:
        assert (await rec.next())[:2] == ("ADDED", "db-1")  # without resourceVersion: current state first
        kube.add_pod("default", "late", phase="Pending")
        kube.set_pod_status("default", "late", phase="Running")
        assert (await rec.next())[:2] == ("ADDED", "late")


async def test_watch_resumes_from_a_resource_version(kube: KubeEmulator) -> None:
    kube.add_pod("default", "old")
    since = kube.resource_version
    kube.add_pod("default", "new", phase="Pending")
    kube.delete_object("pods", "default", "old")
    api = await kr8s_api(kube)
    async with recording(api.watch("pods", namespace="default", since=since)) as rec:
        assert [(await rec.next())[:2] for _ in range(3)] == [
            ("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "old")]
        await rec.nothing_more()
        kube.set_pod_status("default", "new", phase="Running")
        assert (await rec.next())[:2] == ("MODIFIED", "new")
    watches = kube.requests_to("/namespaces/default/pods$")
    assert watches[-1].params["resourceVersion"] == since and watches[-1].params["watch"] == "true"


async def test_watch_from_an_expired_resource_version(kube: KubeEmulator) -> None:
    kube.add_pod("default", "a")
    stale = kube.resource_version
    kube.add_pod("default", "b")
    kube.expire_history()
    api = await kr8s_api(kube)

    # What the server says: a 200 stream with one ERROR event (410 Expired), then the end.
    lines = await raw_watch_lines(api, "pods", {"resourceVersion": stale})
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] == "Expired"

    # kr8s trap: it swallows the 410 and re-watches from the SAME stale resourceVersion, in a hot
    # loop without yielding anything (no relist). Adapters must never hand kr8s a stale `since`.
    async with recording(api.watch("pods", namespace="default", since=stale)) as rec:
        async def retried() -> None:
            while len([r for r in kube.requests_to("/namespaces/default/pods$")
                       if r.params.get("resourceVersion") == stale]) < 4:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(retried(), 5)
        assert rec.queue.empty() and not rec.task.done()

    # The resync that works: a watch without resourceVersion starts with the current state.
    async with recording(api.watch("pods", namespace="default")) as rec:
        assert {(await rec.next())[1] for _ in range(2)} == {"a", "b"}

    # An HTTP 410 (the other way servers answer) surfaces from kr8s as ServerError.
    kube.expire_history(as_http_error=True)
    with pytest.raises(kr8s.ServerError) as exc:
        async for _ in api.watch("pods", namespace="default", since=stale):
            pass
    assert exc.value.response.status_code == 410 and exc.value.status["reason"] == "Expired"


async def test_kr8s_rewatches_from_its_last_version_after_a_410_on_an_open_stream(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    async with recording(api.watch("pods", namespace="default")) as rec:
        await kube.wait_for_watches(1)
        kube.add_pod("default", "a", phase="Pending")
        assert (await rec.next())[:2] == ("ADDED", "a")
        _, _, obj = await rec.next()
        last_seen = obj.metadata.resourceVersion
        kube.expire_history(close_watches=True)  # ERROR 410 on the open stream
        await kube.wait_for_watches(1)
        kube.set_pod_status("default", "a", phase="Running")
        assert (await rec.next())[:2] == ("MODIFIED", "a")
    resumed = kube.requests_to("/namespaces/default/pods$")[-1]
    assert resumed.params["resourceVersion"] == last_seen


async def test_server_ended_watch_streams(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    async with recording(api.watch("pods", namespace="default")) as rec:
        await kube.wait_for_watches(1)
        assert kube.cut_watches() == 1
        await rec.ended()  # kr8s' watch simply returns when the server ends the stream
        assert rec.task.exception() is None

    kube.add_pod("default", "a")
    started = time.monotonic()
    lines = await raw_watch_lines(api, "pods", {"timeoutSeconds": "1", "resourceVersion": kube.resource_version})
    assert lines == [] and time.monotonic() - started >= 0.9  # timeoutSeconds: the server closes

    kube.add_pod("default", "b")  # bookmarks, when asked for
    task = asyncio.create_task(raw_watch_lines(api, "pods", {"allowWatchBookmarks": "true",
                                                             "resourceVersion": kube.resource_version}))
    await kube.wait_for_watches(1)
    kube.send_bookmarks()
    kube.cut_watches()
    lines = await asyncio.wait_for(task, 5)
    assert [line["type"] for line in lines] == ["BOOKMARK"]
    assert lines[0]["object"]["metadata"]["resourceVersion"] == kube.resource_version


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("code", "reason", "attempts"), [
    (401, "Unauthorized", 4),  # kr8s re-authenticates and retries 401/403 three times
    (403, "Forbidden", 4),
    (404, "NotFound", 1),
    (409, "Conflict", 1),
    (500, "InternalError", 1),
    (503, "ServiceUnavailable", 1),
])
async def test_injected_errors_surface_as_kr8s_server_errors(kube: KubeEmulator, code: int, reason: str,
                                                             attempts: int) -> None:
    api = await kr8s_api(kube)
    fault = kube.fail("GET", r"^/api/v1/namespaces/default/pods$", code)
    with pytest.raises(kr8s.ServerError) as exc:
        [p async for p in api.get("pods", namespace="default")]
    assert exc.value.response.status_code == code
    assert exc.value.response.json()["kind"] == "Status" and exc.value.response.json()["reason"] == reason
    if code < 500:
        assert exc.value.status["code"] == code  # 4xx: the Status object
    else:
        assert exc.value.status == str(code)  # 5xx: kr8s keeps only the code, as a string
    assert fault.hits == attempts
    fault.cancel()
    assert [p async for p in api.get("pods", namespace="default")] == []


async def test_transient_auth_errors_are_hidden_by_kr8s_retries(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    kube.add_pod("default", "a")
    fault = kube.fail("GET", r"/pods$", 403, times=3)
    assert [p.name async for p in api.get("pods", namespace="default")] == ["a"]
    assert fault.hits == 3
    fault = kube.fail(None, r"/pods/a$", 404, times=1, message='pods "a" not found')
    pod = Pod({"metadata": {"name": "a", "namespace": "default"}}, api=api)
    with pytest.raises(kr8s.NotFoundError):
        await pod.refresh()


async def test_missing_objects_and_bad_requests(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    with pytest.raises(kr8s.NotFoundError):
        await Pod({"metadata": {"name": "ghost", "namespace": "default"}}, api=api).refresh()
    with pytest.raises(kr8s.NotFoundError):
        await Pod({"metadata": {"name": "ghost", "namespace": "default"}}, api=api).delete()
    with pytest.raises(kr8s.ServerError) as exc:
        await ConfigMap({"metadata": {"name": "x", "namespace": "nowhere"}}, api=api).create()
    assert exc.value.response.status_code == 404 and exc.value.status["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(kr8s.ServerError) as exc:
        await ConfigMap({"metadata": {"name": "Bad_Name"}}, api=api).create()
    assert exc.value.response.status_code == 422


async def test_delay_and_client_timeouts(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    kube.delay(r"/configmaps$", 0.3, times=1)
    started = time.monotonic()
    assert [c async for c in api.get("configmaps", namespace="default")] == []
    assert time.monotonic() - started >= 0.3
    kube.delay(r"/configmaps$", 2, times=1)
    api.timeout = 0.2
    try:
        with pytest.raises(kr8s.APITimeoutError):
            [c async for c in api.get("configmaps", namespace="default")]
    finally:
        api.timeout = None


# ------------------------------------------------------------------------------------------ writes


async def test_scale_and_rollout_restart(kube: KubeEmulator) -> None:
    kube.add_deployment("default", "web", replicas=2)
    kube.add_statefulset("default", "db", replicas=1)
    api = await kr8s_api(kube)
    deploy = await Deployment.get("web", namespace="default", api=api)
    assert await deploy.ready()
    await deploy.scale(4)
    assert deploy.replicas == 4 and deploy.metadata.generation == 2

    async with api.call_api("GET", version="apps/v1", url="deployments/web/scale", namespace="default") as r:
        scale = r.json()
    assert (scale["kind"], scale["spec"]["replicas"], scale["status"]["selector"]) == ("Scale", 4, "app=web")
    scale["spec"]["replicas"] = 1
    async with api.call_api("PUT", version="apps/v1", url="deployments/web/scale", namespace="default",
                            content=json.dumps(scale)) as r:
        assert r.json()["spec"]["replicas"] == 1
    async with api.call_api("PATCH", version="apps/v1", url="statefulsets/db/scale", namespace="default",
                            headers={"Content-Type": "application/merge-patch+json"},
                            content=json.dumps({"spec": {"replicas": 3}})) as r:
        assert r.json()["spec"]["replicas"] == 3
    assert kube.get_object("statefulsets", "default", "db")["spec"]["replicas"] == 3
    await deploy.refresh()
    assert deploy.replicas == 1 and deploy.metadata.generation == 3

    async with recording(api.watch("deployments", namespace="default", since=deploy.metadata.resourceVersion)) as rec:
        await kube.wait_for_watches(1)
        stamp = "2025-01-01T00:00:00Z"
        await deploy.patch({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": stamp}}}}})
        event, name, obj = await rec.next()
    assert (event, name) == ("MODIFIED", "web")
    assert obj.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == stamp
    assert obj.metadata.generation == 4 and obj.spec.template.spec.containers[0].name == "web"


async def test_patch_flavours_and_optimistic_concurrency(kube: KubeEmulator) -> None:
    kube.add_deployment("default", "web", containers=[
        {"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "proxy:1"}])
    api = await kr8s_api(kube)
    deploy = await Deployment.get("web", namespace="default", api=api)

    await deploy.patch([
        {"op": "add", "path": "/metadata/labels/team", "value": "core"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:2"},
        {"op": "remove", "path": "/spec/template/spec/containers/0/env"},
    ], type="json")
    assert deploy.labels["team"] == "core" and deploy.spec.template.spec.containers[0].image == "web:2"
    assert "env" not in deploy.spec.template.spec.containers[0]

    with pytest.raises(kr8s.ServerError) as exc:
        await deploy.patch([{"op": "test", "path": "/spec/replicas", "value": 99}], type="json")
    assert exc.value.response.status_code == 422

    async with api.call_api("PATCH", version="apps/v1", url="deployments/web", namespace="default",
                            headers={"Content-Type": "application/strategic-merge-patch+json"},
                            content=json.dumps({"spec": {"template": {"spec": {"containers": [
                                {"name": "sidecar", "image": "proxy:2"}]}}}})) as r:
        containers = r.json()["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "web:2"), ("sidecar", "proxy:2")]

    await deploy.patch({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}},
                        "metadata": {"labels": {"team": None}}})  # merge patch: lists replace, null deletes
    assert [c.name for c in deploy.spec.template.spec.containers] == ["only"] and "team" not in deploy.labels

    stale = dict(deploy.raw)
    await deploy.patch({"metadata": {"annotations": {"touched": "yes"}}})
    stale["metadata"] = {**stale["metadata"], "annotations": {"mine": "yes"}}
    with pytest.raises(kr8s.ServerError) as exc:
        async with api.call_api("PUT", version="apps/v1", url="deployments/web", namespace="default",
                                content=json.dumps(stale)):
            pass
    assert exc.value.response.status_code == 409 and exc.value.status["reason"] == "Conflict"
    current = dict(deploy.raw)
    current["metadata"] = {**current["metadata"], "annotations": {"mine": "yes"}}
    async with api.call_api("PUT", version="apps/v1", url="deployments/web", namespace="default",
                            content=json.dumps(current)) as r:
        assert r.json()["metadata"]["annotations"] == {"mine": "yes"}

    async with api.call_api("PATCH", version="v1", url="pods/none", namespace="default",
                            headers={"Content-Type": "application/json"}, content="{}",
                            raise_for_status=False) as r:
        assert r.status_code == 404
    kube.add_pod("default", "p")
    async with api.call_api("PATCH", version="v1", url="pods/p", namespace="default",
                            headers={"Content-Type": "application/json"}, content="{}",
                            raise_for_status=False) as r:
        assert r.status_code == 415


async def test_delete_cascades_to_owned_objects_and_honours_finalizers(kube: KubeEmulator) -> None:
    kube.add_deployment("default", "web", replicas=2)
    kube.add_pod("default", "web-abc-1", owner="web")
    kube.add_pod("default", "web-abc-2", owner="web")
    kube.add_pod("default", "db-0", labels={"app": "db"})
    api = await kr8s_api(kube)
    pod = await Pod.get("web-abc-1", namespace="default", api=api)
    assert pod.metadata.ownerReferences[0].kind == "ReplicaSet"
    async with recording(api.watch("pods", namespace="default", since=kube.resource_version)) as rec:
        await kube.wait_for_watches(1)
        await (await Deployment.get("web", namespace="default", api=api)).delete()
        assert {(await rec.next())[:2] for _ in range(2)} == {("DELETED", "web-abc-1"), ("DELETED", "web-abc-2")}
    assert [p.name async for p in api.get("pods", namespace="default")] == ["db-0"]
    assert [r async for r in api.get("replicasets", namespace="default")] == []

    for n in range(3):
        kube.add_object({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": f"tmp-{n}", "namespace": "default", "labels": {"tmp": str(n % 2)}}})
    async with api.call_api("DELETE", version="v1", url="configmaps", namespace="default",
                            params={"labelSelector": "tmp=0"}) as r:  # deletecollection
        assert sorted(i["metadata"]["name"] for i in r.json()["items"]) == ["tmp-0", "tmp-2"]
    assert [c.name async for c in api.get("configmaps", namespace="default")] == ["tmp-1"]

    cm = ConfigMap({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, api=api)
    await cm.create()
    await cm.delete()
    await cm.refresh()
    assert cm.metadata.deletionTimestamp  # still there, terminating
    await cm.patch({"metadata": {"finalizers": None}})
    assert kube.get_object("configmaps", "default", "held") is None


async def test_server_side_apply(kube: KubeEmulator) -> None:
    api = await kr8s_api(kube)
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "default", "labels": {"app": "api", "tier": "backend"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "api", "image": "api:1"}]}}},
    }

    async def apply(body: dict, manager: str | None = "ferryman", force: bool = False) -> tuple[int, dict]:
        params = {"fieldManager": manager} if manager else {}
        if force:
            params["force"] = "true"
        async with api.call_api("PATCH", version="apps/v1", url="deployments/api", namespace="default",
                                params=params, headers={"Content-Type": "application/apply-patch+yaml"},
                                content=yaml.safe_dump(body)) as response:
            return response.status_code, response.json()

    with pytest.raises(kr8s.ServerError) as exc:
        await apply(manifest, manager=None)
    assert exc.value.response.status_code == 400 and "fieldManager is required" in exc.value.status["message"]

    code, created = await apply(manifest)  # create-or-merge: creates
    assert code == 201 and created["metadata"]["generation"] == 1
    [entry] = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("ferryman", "Apply")
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]

    manifest["metadata"]["labels"] = {"app": "api"}  # dropped "tier" -> removed by the apply
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "api:2"
    code, updated = await apply(manifest)
    assert code == 200 and updated["metadata"]["labels"] == {"app": "api"}
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == "api:2"
    assert updated["metadata"]["generation"] == 2
    assert (await apply(manifest))[1]["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]

    deploy = await Deployment.get("api", namespace="default", api=api)
    await deploy.scale(5)  # an Update by manager "kr8s" now owns spec.replicas
    with pytest.raises(kr8s.ServerError) as exc:
        await apply(manifest)
    assert exc.value.response.status_code == 409
    assert 'conflict with "kr8s"' in exc.value.status["message"] and ".spec.replicas" in exc.value.status["message"]
    code, forced = await apply(manifest, force=True)
    assert code == 200 and forced["spec"]["replicas"] == 2
    assert {e["manager"] for e in forced["metadata"]["managedFields"]} == {"ferryman"}

    async with api.call_api("PATCH", version="apps/v1", url="deployments/api", namespace="default",
                            params={"fieldManager": "ferryman", "dryRun": "All"},
                            headers={"Content-Type": "application/apply-patch+yaml"},
                            content=yaml.safe_dump({**manifest, "spec": {**manifest["spec"], "replicas": 7}})) as r:
        assert r.json()["spec"]["replicas"] == 7
    assert kube.get_object("deployments", "default", "api")["spec"]["replicas"] == 2  # dry run stored nothing


# ------------------------------------------------------------------------------------------ logs


async def test_logs_tail_timestamps_previous_and_errors(kube: KubeEmulator) -> None:
    kube.add_pod("default", "web", containers=["web", "sidecar"])
    kube.set_pod_log("default", "web", "web", "one\ntwo\nthree\n")
    kube.set_pod_log("default", "web", "web", "crashed\n", previous=True)
    kube.add_pod("default", "solo")
    kube.set_pod_log("default", "solo", None, "only\n")
    kube.add_pod("default", "starting", phase="Pending")
    api = await kr8s_api(kube)
    pod = await Pod.get("web", namespace="default", api=api)

    assert [line async for line in pod.logs(container="web")] == ["one", "two", "three"]
    assert [line async for line in pod.logs(container="web", tail_lines=2)] == ["two", "three"]
    assert [line async for line in pod.logs(container="web", previous=True)] == ["crashed"]
    stamped = [line async for line in pod.logs(container="web", timestamps=True, tail_lines=1)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z three", stamped[0])
    solo = await Pod.get("solo", namespace="default", api=api)
    assert [line async for line in solo.logs()] == ["only"]

    with pytest.raises(kr8s.ServerError) as exc:
        [line async for line in pod.logs()]
    assert exc.value.status["message"] == "a container name must be specified for pod web, choose one of: [web sidecar]"
    with pytest.raises(kr8s.ServerError) as exc:
        [line async for line in pod.logs(container="sidecar", previous=True)]
    assert exc.value.status["message"] == 'previous terminated container "sidecar" in pod "web" not found'
    starting = await Pod.get("starting", namespace="default", api=api)
    with pytest.raises(kr8s.ServerError) as exc:
        [line async for line in starting.logs()]
    assert exc.value.response.status_code == 400 and "is waiting to start: ContainerCreating" in exc.value.status["message"]


async def test_logs_follow_until_cut_or_pod_deleted(kube: KubeEmulator) -> None:
    kube.add_pod("default", "web")
    kube.set_pod_log("default", "web", None, "boot\n")
    api = await kr8s_api(kube)
    pod = await Pod.get("web", namespace="default", api=api)

    async def follow(into: asyncio.Queue[str]) -> None:
        async for line in pod.logs(follow=True, timeout=None):
            await into.put(line)

    lines: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(follow(lines))
    await kube.wait_for_log_followers(1)
    assert await asyncio.wait_for(lines.get(), 5) == "boot"
    kube.append_pod_log("default", "web", None, "request 1\nrequest 2\n")
    assert [await asyncio.wait_for(lines.get(), 5) for _ in range(2)] == ["request 1", "request 2"]
    assert kube.cut_logs() == 1
    await asyncio.wait_for(task, 5)  # the follow ends quietly when the server ends the stream

    task = asyncio.create_task(follow(lines := asyncio.Queue()))
    await kube.wait_for_log_followers(1)
    kube.delete_object("pods", "default", "web")
    await asyncio.wait_for(task, 5)
    assert [lines.get_nowait() for _ in range(lines.qsize())] == ["boot", "request 1", "request 2"]


# ------------------------------------------------------------------------------------------ namespaces


async def test_deleting_a_namespace_deletes_its_objects(kube: KubeEmulator) -> None:
    kube.add_pod("team", "a")
    kube.add_pod("team", "b")
    kube.add_service("team", "svc", ports=[(80, 8080)])
    kube.add_pod("default", "keep")
    api = await kr8s_api(kube)
    async with recording(api.watch("pods", namespace=kr8s.ALL, since=kube.resource_version)) as pods, \
            recording(api.watch("namespaces", since=kube.resource_version)) as namespaces:
        await kube.wait_for_watches(2)
        await (await Namespace.get("team", api=api)).delete()
        assert {(await pods.next())[:2] for _ in range(2)} == {("DELETED", "a"), ("DELETED", "b")}
        event, name, obj = await namespaces.next()
        assert (event, name, obj.status.phase) == ("MODIFIED", "team", "Terminating")
        assert (await namespaces.next())[:2] == ("DELETED", "team")
        await pods.nothing_more()
    assert "team" not in {n.name async for n in api.get("namespaces")}
    assert [(p.namespace, p.name) async for p in api.get("pods", namespace=kr8s.ALL)] == [("default", "keep")]
    assert kube.get_object("services", "team", "svc") is None


# ------------------------------------------------------------------------------------------ reconnects


async def test_stop_and_start_on_the_same_port(kube: KubeEmulator) -> None:
    kube.add_pod("default", "a")
    api = await kr8s_api(kube)
    url = kube.url
    async with recording(api.watch("pods", namespace="default")) as rec:
        assert (await rec.next())[:2] == ("ADDED", "a")
        await kube.stop()
        await rec.ended()  # an open watch just ends when the server goes away
    with pytest.raises(httpx.ConnectError):  # kr8s does not wrap connection errors
        [p async for p in api.get("pods", namespace="default")]
    kube.add_pod("default", "b")  # state survives the outage
    await kube.start()
    assert kube.url == url
    assert [p.name async for p in api.get("pods", namespace="default")] == ["a", "b"]

    pod = await Pod.get("a", namespace="default", api=api)
    follow = asyncio.create_task(anext(pod.logs(follow=True, timeout=None), None))
    await kube.wait_for_log_followers(1)
    await kube.stop()
    assert await asyncio.wait_for(follow, 5) is None  # a log follow ends too
    await kube.start()


async def test_portforward_survives_a_server_restart_for_new_connections(kube: KubeEmulator) -> None:
    kube.add_pod("default", "web")
    api = await kr8s_api(kube)
    pod = await Pod.get("web", namespace="default", api=api)
    async with echo_server() as echo_port:
        kube.set_portforward_target("default", "web", 8080, "127.0.0.1", echo_port)
        async with PortForward(pod, 8080, local_port="auto") as local_port:
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            writer.write(b"one")
            assert await asyncio.wait_for(reader.readexactly(8), 5) == b"echo:one"
            await kube.stop()
            assert await asyncio.wait_for(reader.read(100), 5) == b""  # the tunnel went down
            writer.close()
            await kube.start()
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            writer.write(b"two")  # kr8s opens a new websocket per local connection
            assert await asyncio.wait_for(reader.readexactly(8), 5) == b"echo:two"
            writer.close()


async def test_kubeconfig_context_and_bearer_tokens(kube: KubeEmulator, tmp_path) -> None:
    api = await kr8s.asyncio.api()  # the fixture's KUBECONFIG
    assert api.namespace == "default" and api.auth.server == kube.url
    path = kube.write_kubeconfig(tmp_path / "team.yaml", context="team-ctx", namespace="team", token="s3cret")
    team_api = await kr8s.asyncio.api(kubeconfig=str(path))
    assert team_api.namespace == "team" and team_api.auth.active_context == "team-ctx"

    kube.require_token = "s3cret"
    assert [p async for p in team_api.get("pods")] == []
    kube.add_pod("team", "x")
    # kr8s trap: a failing discovery (here 401) is only a UserWarning; the request goes on.
    with pytest.raises(kr8s.ServerError) as exc, pytest.warns(UserWarning, match="Unauthorized"):
        [p async for p in api.get("pods")]
    assert exc.value.response.status_code == 401
    assert [p.name async for p in team_api.get("pods")] == ["x"]


async def test_kmock_reactions_still_take_precedence(kube: KubeEmulator) -> None:
    kube["get /api/v1/namespaces/default/configmaps"] << {
        "kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
        "items": [{"metadata": {"name": "canned", "namespace": "default"}}]}
    api = await kr8s_api(kube)
    assert [c.name async for c in api.get("configmaps", namespace="default")] == ["canned"]
    assert [s.name async for s in api.get("services", namespace="default")] == ["kubernetes"]


# ------------------------------------------------------------------------------------------ port-forward


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(b"echo:" + data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_portforward_round_trip(kube: KubeEmulator) -> None:
    kube.add_pod("default", "web")
    api = await kr8s_api(kube)
    pod = await Pod.get("web", namespace="default", api=api)
    async with echo_server() as echo_port:
        kube.set_portforward_target("default", "web", 8080, "127.0.0.1", echo_port)
        async with PortForward(pod, 8080, local_port="auto") as local_port:
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            writer.write(b"hello")
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(10), 5) == b"echo:hello"
            payload = bytes(range(256)) * 64
            writer.write(payload)
            await writer.drain()
            received = b""
            while len(received) < len(payload) + 5:
                received += await asyncio.wait_for(reader.read(65536), 5)
            assert received.replace(b"echo:", b"") == payload
            assert kube.portforward_count == 1
            writer.close()
    request = kube.requests_to("/pods/web/portforward$")[0]
    assert request.params["ports"] == "8080"


async def test_portforward_error_channel_closes_the_local_connection(kube: KubeEmulator) -> None:
    kube.add_pod("default", "web")
    api = await kr8s_api(kube)
    pod = await Pod.get("web", namespace="default", api=api)
    async with PortForward(pod, 9090, local_port="auto") as local_port:  # no target registered
        reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
        writer.write(b"anyone?")
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by kr8s on the error
        writer.close()
    assert kube.portforward_errors and "error forwarding port 9090" in kube.portforward_errors[0]

    async with echo_server() as echo_port:
        kube.set_portforward_target("default", "web", 9090, "127.0.0.1", echo_port)
        async with PortForward(pod, 9090, local_port="auto") as local_port:
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(9), 5) == b"echo:ping"
            assert kube.break_portforwards("lost connection to pod") == 1
            assert await asyncio.wait_for(reader.read(100), 5) == b""
            writer.close()
    assert kube.portforward_errors[-1] == "lost connection to pod"
