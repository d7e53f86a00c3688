"""One test interface over two Kubernetes clusters: the emulated API server, or a real one.

Tests written against `Cluster` (fixture ``cluster``) run against the project's emulated API
server (`tests.support.kube_emulator`) by default, and against a real cluster — a k3s, a
kind, anything a kubeconfig reaches — when one is configured:

``FERRYMAN_TEST_KUBECONFIG``
    Path of a kubeconfig. When set (and not empty) the tests run against that cluster
    instead of the emulator, and their ids read ``[real]`` instead of ``[emulated]``.
``FERRYMAN_TEST_CONTEXT``
    The kubeconfig context to use (default: the kubeconfig's current context).
``FERRYMAN_TEST_IMAGE``
    The image of the test pods (default ``busybox:1.36``; it runs ``sleep 3600``). Use one
    the cluster can pull, or has already, e.g. a mirror for an air-gapped cluster.
``FERRYMAN_TEST_TIMEOUT``
    Seconds to wait for the cluster to get somewhere — pods ready, a rollout done, a
    change seen by the adapter (default 120 on a real cluster; the emulator needs none).

For example, with k3s::

    FERRYMAN_TEST_KUBECONFIG=/etc/rancher/k3s/k3s.yaml .venv/bin/pytest -q tests/test_kube_cluster.py

Each test gets a throwaway namespace ``ferryman-test-<random>`` (and ``<that>-b`` if it asks
for a second one), created through the API and deleted when the test ends, whatever its
outcome; nothing else in the cluster is touched. The credentials need to create and delete
namespaces, and to manage pods and Deployments in them (a k3s admin kubeconfig does).

The emulator has no controllers, so `EmulatedCluster` plays them: it makes the pods of a
Deployment itself, and marks pods ready when a test waits for readiness. A real cluster
does that by itself; `RealCluster` waits for it, up to ``FERRYMAN_TEST_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar, Self

import kr8s
import kr8s.asyncio
import pytest
import pytest_asyncio

from tests.support.kube_emulator import KubeEmulator

KUBECONFIG_VAR = "FERRYMAN_TEST_KUBECONFIG"
CONTEXT_VAR = "FERRYMAN_TEST_CONTEXT"
IMAGE_VAR = "FERRYMAN_TEST_IMAGE"
TIMEOUT_VAR = "FERRYMAN_TEST_TIMEOUT"

DEFAULT_IMAGE = "busybox:1.36"
DEFAULT_REAL_TIMEOUT = 120.0
EMULATED_TIMEOUT = 10.0

# The API group version of each resource a test may read back (as kr8s's call_api wants it).
_VERSIONS = {
    "pods": "v1",
    "namespaces": "v1",
    "services": "v1",
    "deployments": "apps/v1",
    "statefulsets": "apps/v1",
    "replicasets": "apps/v1",
}


def backend() -> str:
    """"real" when a cluster is configured, else "emulated"."""
    return "real" if os.environ.get(KUBECONFIG_VAR) else "emulated"


def configured_timeout(default: float) -> float:
    value = os.environ.get(TIMEOUT_VAR)
    return float(value) if value else default


def random_suffix(length: int = 5) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def is_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def owned_by(pod: Mapping[str, Any], replicasets: set[str]) -> bool:
    refs = (pod.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("kind") == "ReplicaSet" and r.get("name") in replicasets for r in refs)


def rollout_done(deploy: Mapping[str, Any]) -> bool:
    """What `kubectl rollout status` waits for."""
    meta, spec, status = deploy.get("metadata") or {}, deploy.get("spec") or {}, deploy.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
    )


class Cluster(ABC):
    """What the adapter tests need of a cluster. All names are in `namespace` unless said."""

    backend: ClassVar[str]
    #: The emulator's fault injection (`emulator.fail(...)`, ...) is available.
    supports_faults: ClassVar[bool]
    namespace: str
    kubeconfig: str
    context: str | None
    #: Seconds a test may wait for the cluster (or the adapter following it) to get somewhere.
    timeout: float

    @abstractmethod
    async def create_deployment(self, name: str, replicas: int = 1, labels: Mapping[str, str] | None = None) -> None:
        """A Deployment of `replicas` pods of the test image (labels default to app=NAME).
        Returns when the objects exist, not when they are ready: see `wait_ready`."""

    @abstractmethod
    async def create_pod(self, name: str, labels: Mapping[str, str] | None = None,
                         namespace: str | None = None) -> None:
        """A bare pod (no controller) of the test image; not ready yet: see `make_ready`."""

    @abstractmethod
    async def make_ready(self, namespace: str, pod: str) -> None:
        """Pod `pod` is Running and Ready when this returns."""

    @abstractmethod
    async def wait_rollout(self, deployment: str) -> None:
        """Deployment `deployment` has exactly spec.replicas pods, all of the current
        template, all ready, and its status says so."""

    @abstractmethod
    async def delete_pod(self, name: str, namespace: str | None = None) -> None:
        """Delete a pod (not waiting for it to be gone)."""

    @abstractmethod
    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as the API serves it now (`resource` is a plural: "pods",
        "deployments"...); None if there is none."""

    @abstractmethod
    async def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The objects of `resource` in the namespace (default: the test namespace)."""

    @abstractmethod
    async def create_namespace(self, suffix: str) -> str | None:
        """Another throwaway namespace, ``<namespace>-<suffix>``, deleted at teardown;
        None if the cluster does not let us."""

    async def wait_ready(self) -> None:
        """Every Deployment in the test namespace rolled out, every pod in it ready."""
        for deploy in await self.list("deployments"):
            await self.wait_rollout(deploy["metadata"]["name"])
        for pod in await self.list("pods"):
            if not is_terminating(pod):
                await self.make_ready(self.namespace, pod["metadata"]["name"])

    async def pods_of(self, deployment: str, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """Name -> pod of the pods a Deployment owns (through its ReplicaSets), terminating
        ones left out."""
        namespace = namespace or self.namespace
        replicasets = {
            rs["metadata"]["name"]
            for rs in await self.list("replicasets", namespace)
            if any(r.get("kind") == "Deployment" and r.get("name") == deployment
                   for r in rs["metadata"].get("ownerReferences") or [])
        }
        return {
            p["metadata"]["name"]: p
            for p in await self.list("pods", namespace)
            if owned_by(p, replicasets) and not is_terminating(p)
        }

    async def until(self, check: Callable[[], Awaitable[object]], what: str, timeout: float | None = None) -> Any:
        """Poll `check` until it returns something true; fail the test after the deadline."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"{self.backend} cluster: timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


# ---- the emulated cluster ------------------------------------------------------------------------


class EmulatedCluster(Cluster):
    """The emulator, with this class playing the controllers and the kubelet."""

    backend = "emulated"
    supports_faults = True

    def __init__(self, emulator: KubeEmulator, image: str = DEFAULT_IMAGE) -> None:
        assert emulator.kubeconfig is not None, "use the `kube` fixture: it writes the kubeconfig"
        self.emulator = emulator
        self.image = image
        self.namespace = f"ferryman-test-{random_suffix()}"
        self.kubeconfig = str(emulator.kubeconfig)
        self.context = None
        self.timeout = configured_timeout(EMULATED_TIMEOUT)
        emulator.add_namespace(self.namespace)

    async def create_deployment(self, name: str, replicas: int = 1, labels: Mapping[str, str] | None = None) -> None:
        self.emulator.add_deployment(self.namespace, name, replicas=replicas, labels=labels or {"app": name},
                                     image=self.image, ready_replicas=0)
        self._reconcile(name, ready=False)

    async def create_pod(self, name: str, labels: Mapping[str, str] | None = None,
                         namespace: str | None = None) -> None:
        self.emulator.add_pod(namespace or self.namespace, name, labels=labels, image=self.image, phase="Pending",
                              ready=False)

    async def make_ready(self, namespace: str, pod: str) -> None:
        current = self.emulator.get_object("pods", namespace, pod)
        assert current is not None, f"no pod {namespace}/{pod}"
        if not is_ready(current):
            self.emulator.set_pod_status(namespace, pod, phase="Running", ready=True)

    async def wait_rollout(self, deployment: str) -> None:
        self._reconcile(deployment, ready=True)

    def _reconcile(self, deployment: str, *, ready: bool) -> None:
        """What the Deployment and ReplicaSet controllers and the kubelet would do: pods of
        an outdated template go, the current template gets spec.replicas pods, and (with
        `ready`) those are made ready and the Deployment's status says so."""
        ns, emulator = self.namespace, self.emulator
        deploy = emulator.get_object("deployments", ns, deployment)
        assert deploy is not None, f"no Deployment {ns}/{deployment}"
        replicas = int(deploy["spec"].get("replicas", 1))
        current_hash = self._template_hash(deployment)
        mine = self._owned_pods(deployment)
        keep = sorted(n for n, p in mine.items() if p["metadata"]["labels"].get("pod-template-hash") == current_hash)
        for name in sorted(set(mine) - set(keep)) + keep[replicas:]:
            emulator.delete_object("pods", ns, name)
        for _ in range(replicas - len(keep)):
            name = f"{deployment}-{current_hash}-{random_suffix()}"
            emulator.add_pod(ns, name, owner=deployment, image=self.image, phase="Pending", ready=False)
            keep.append(name)
        if ready:
            for name in keep[:replicas]:
                current = emulator.get_object("pods", ns, name)
                if current is not None and not is_ready(current):
                    emulator.set_pod_status(ns, name, phase="Running", ready=True)
            emulator.set_workload_status(ns, deployment)

    def _owned_pods(self, deployment: str) -> dict[str, dict[str, Any]]:
        ns = self.namespace
        replicasets = {
            rs["metadata"]["name"]
            for rs in self.emulator.list_objects("replicasets", ns)
            if any(r.get("name") == deployment for r in rs["metadata"].get("ownerReferences") or [])
        }
        return {p["metadata"]["name"]: p for p in self.emulator.list_objects("pods", ns) if owned_by(p, replicasets)}

    def _template_hash(self, deployment: str) -> str:
        """The pod-template-hash of the Deployment's current template, from the ReplicaSet
        the emulator keeps for it (made on first use, as the Deployment controller would)."""
        replicaset = self.emulator._replicaset_for(self.namespace, deployment)  # the emulator's own helper
        return str(replicaset["metadata"]["labels"]["pod-template-hash"])

    async def delete_pod(self, name: str, namespace: str | None = None) -> None:
        self.emulator.delete_object("pods", namespace or self.namespace, name)

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.emulator.get_object(resource, namespace or self.namespace, name)

    async def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.emulator.list_objects(resource, namespace or self.namespace)

    async def create_namespace(self, suffix: str) -> str | None:
        name = f"{self.namespace}-{suffix}"
        self.emulator.add_namespace(name)
        return name


# ---- a real cluster ----------------------------------------------------------------------------------


class RealCluster(Cluster):
    """A cluster a kubeconfig reaches, through real API calls (kr8s, its own Api)."""

    backend = "real"
    supports_faults = False

    def __init__(self, kubeconfig: str, context: str | None = None, image: str = DEFAULT_IMAGE,
                 timeout: float = DEFAULT_REAL_TIMEOUT) -> None:
        self.kubeconfig = kubeconfig
        self.context = context or None
        self.image = image
        self.timeout = timeout
        self.namespace = f"ferryman-test-{random_suffix()}"
        self.created_namespaces: list[str] = []
        self._api: kr8s.asyncio.Api | None = None

    async def start(self) -> None:
        """Connect, and create the test namespace."""
        self._api = await kr8s.asyncio.Api(bypass_factory=True, kubeconfig=self.kubeconfig, context=self.context)
        await self._create_namespace(self.namespace)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.teardown()

    async def teardown(self) -> list[str]:
        """Delete every namespace this made (the cluster deletes what is in them); returns
        the problems, if any, for the caller to report."""
        problems = []
        for name in reversed(self.created_namespaces):
            try:
                await self._call("DELETE", "v1", f"namespaces/{name}", None,
                                 params={"propagationPolicy": "Background"})
            except kr8s.ServerError as exc:
                if _status_code(exc) != 404:
                    problems.append(f"deleting namespace {name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - reported, never hides the test's outcome
                problems.append(f"deleting namespace {name}: {exc!r}")
        self.created_namespaces.clear()
        return problems

    # ---- raw API calls ----

    async def _call(self, method: str, version: str, url: str, namespace: str | None, **kwargs: Any) -> dict:
        assert self._api is not None, "use RealCluster as an async context manager"
        async with self._api.call_api(method, version=version, url=url, namespace=namespace,
                                      timeout=30, **kwargs) as response:
            return response.json() if response.content else {}

    async def _post(self, version: str, plural: str, namespace: str | None, body: Mapping[str, Any]) -> dict:
        return await self._call("POST", version, plural, namespace, content=json.dumps(body),
                                headers={"Content-Type": "application/json"})

    async def _create_namespace(self, name: str) -> None:
        await self._post("v1", "namespaces", None, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/created-by": "ferryman-tests"}},
        })
        self.created_namespaces.append(name)

    def _pod_spec(self) -> dict[str, Any]:
        return {
            "containers": [{"name": "main", "image": self.image, "command": ["sleep", "3600"]}],
            # `sleep` as PID 1 ignores SIGTERM: without this every deletion would take 30 s.
            "terminationGracePeriodSeconds": 1,
        }

    # ---- the interface ----

    async def create_deployment(self, name: str, replicas: int = 1, labels: Mapping[str, str] | None = None) -> None:
        labels = dict(labels or {"app": name})
        await self._post("apps/v1", "deployments", self.namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": self._pod_spec()},
            },
        })

    async def create_pod(self, name: str, labels: Mapping[str, str] | None = None,
                         namespace: str | None = None) -> None:
        namespace = namespace or self.namespace
        await self._post("v1", "pods", namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": self._pod_spec(),
        })

    async def make_ready(self, namespace: str, pod: str) -> None:
        async def ready() -> bool:
            current = await self.get("pods", pod, namespace)
            assert current is not None, f"pod {namespace}/{pod} is gone"
            return is_ready(current)

        await self.until(ready, f"pod {namespace}/{pod} ready")

    async def wait_rollout(self, deployment: str) -> None:
        async def done() -> bool:
            deploy = await self.get("deployments", deployment)
            assert deploy is not None, f"Deployment {self.namespace}/{deployment} is gone"
            if not rollout_done(deploy):
                return False
            pods = await self.pods_of(deployment)
            return len(pods) == int(deploy["spec"].get("replicas", 1)) and all(map(is_ready, pods.values()))

        await self.until(done, f"Deployment {self.namespace}/{deployment} rolled out")

    async def delete_pod(self, name: str, namespace: str | None = None) -> None:
        await self._call("DELETE", "v1", f"pods/{name}", namespace or self.namespace)

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        namespaced = resource != "namespaces"
        try:
            return await self._call("GET", _VERSIONS[resource], f"{resource}/{name}",
                                    (namespace or self.namespace) if namespaced else None)
        except kr8s.ServerError as exc:
            if _status_code(exc) == 404:
                return None
            raise

    async def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        namespaced = resource != "namespaces"
        listing = await self._call("GET", _VERSIONS[resource], resource,
                                   (namespace or self.namespace) if namespaced else None)
        return list(listing.get("items") or [])

    async def create_namespace(self, suffix: str) -> str | None:
        name = f"{self.namespace}-{suffix}"
        try:
            await self._create_namespace(name)
        except kr8s.ServerError as exc:
            if _status_code(exc) in (401, 403):
                return None
            raise
        return name


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


# ---- the fixture --------------------------------------------------------------------------------------


@pytest.fixture(params=[backend()])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    """The emulated cluster (over the `kube` fixture), or the real one named by
    ``FERRYMAN_TEST_KUBECONFIG`` (the `real_cluster` fixture): see the module docstring.
    The parameter ("emulated" or "real") shows in the test ids. A test module gets both
    fixtures with ``pytest_plugins = ["tests.support.cluster"]``."""
    if request.param == "emulated":
        return EmulatedCluster(request.getfixturevalue("kube"), image=os.environ.get(IMAGE_VAR) or DEFAULT_IMAGE)
    return request.getfixturevalue("real_cluster")


@pytest_asyncio.fixture
async def real_cluster() -> AsyncIterator[RealCluster]:
    """The cluster named by ``FERRYMAN_TEST_KUBECONFIG``, with a fresh test namespace that
    is deleted afterwards."""
    kubeconfig = os.path.expanduser(os.environ.get(KUBECONFIG_VAR) or "")
    if not os.path.isfile(kubeconfig):
        pytest.fail(f"{KUBECONFIG_VAR}={kubeconfig!r}: no such file", pytrace=False)
    real = RealCluster(kubeconfig, os.environ.get(CONTEXT_VAR), image=os.environ.get(IMAGE_VAR) or DEFAULT_IMAGE,
                       timeout=configured_timeout(DEFAULT_REAL_TIMEOUT))
    try:
        await real.start()
    except Exception as exc:  # noqa: BLE001 - said plainly: the set-up, not the test, failed
        await real.teardown()
        pytest.fail(f"cannot set up a test namespace with {kubeconfig}: {exc!r}", pytrace=False)
    try:
        yield real
    finally:
        problems = await real.teardown()
        if problems:
            pytest.fail("cleaning up the test namespaces:\n" + "\n".join(problems), pytrace=False)
