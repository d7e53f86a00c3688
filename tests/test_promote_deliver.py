"""Image delivery (backends/promote/deliver.py) with the real Docker engine.

What can run here runs for real: `docker image inspect`, `docker tag`, `docker save`
into a pipe, `docker push` to a registry served by this test (the registry v2 protocol,
the few endpoints a push uses). k3s and k3d are not installed on these machines, so
their exact argument lists are checked as data, and the "not installed" path runs for
real; the k3s pipe itself runs for real with a stand-in importer program in place of
`k3s` (`k3s_command` is configurable for `sudo k3s` anyway) that reads the archive
`docker save` writes into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp.web
import psutil
import pytest

from backends.promote.deliver import (
    DeliveryError,
    DeliverySettings,
    Strategy,
    deliver,
    delivered_reference,
    k3d_import_argv,
    k3s_import_argv,
    parse_image,
    plan,
    push_argv,
    tag_argv,
    unique_tag,
)
from tests.support.dockerenv import TEST_IMAGE

IMAGE_ID = "sha256:919e1f0d5190bee739f93634c8f35053740b3d4a6e1bfe917fa91fcaeeb6d50e"


def local_id(reference: str) -> str | None:
    found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", reference],
                           capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def repo_tags(reference: str) -> list[str]:
    found = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RepoTags}}", reference],
                           capture_output=True, text=True, check=True)
    return sorted(json.loads(found.stdout))


def untag(reference: str) -> None:
    # The test image keeps its own tag, so this only removes the name.
    subprocess.run(["docker", "rmi", reference], capture_output=True, check=False)


# ---- names and argument lists (pure) -------------------------------------------------------------


def test_image_names_split_like_docker_does() -> None:
    assert parse_image("busybox") == parse_image("busybox")  # frozen values
    assert (parse_image("busybox").path, parse_image("busybox").tag) == ("busybox", "")
    name = parse_image("localhost:5000/team/app:1.2@sha256:abc")
    assert (name.registry, name.path, name.tag, name.digest) == ("localhost:5000", "team/app", "1.2", "sha256:abc")
    assert parse_image("team/app").registry == ""  # no dot, no port: a Docker Hub path
    assert parse_image("ghcr.io/me/app").registry == "ghcr.io"
    assert parse_image("app:latest").tag == "latest"
    assert parse_image("localhost:5000/app").tag == ""  # the port is not a tag


def test_the_tag_comes_from_the_image_id_so_it_is_deterministic() -> None:
    assert unique_tag(IMAGE_ID) == "ferryman-919e1f0d5190"
    with pytest.raises(DeliveryError, match="not an image ID"):
        unique_tag("sha256:nothex")
    k3s = DeliverySettings("k3s")
    assert delivered_reference(k3s, "ferryman-test/busybox:1", IMAGE_ID) == "ferryman-test/busybox:ferryman-919e1f0d5190"
    assert delivered_reference(k3s, "ghcr.io/me/app:latest", IMAGE_ID) == "ghcr.io/me/app:ferryman-919e1f0d5190"
    registry = DeliverySettings("registry", registry="localhost:5000/")
    # Pushed under the configured registry, without the registry the image came from.
    assert delivered_reference(registry, "ghcr.io/me/app:2", IMAGE_ID) == "localhost:5000/me/app:ferryman-919e1f0d5190"
    assert delivered_reference(k3s, IMAGE_ID, IMAGE_ID, "web") == "ferryman/web:ferryman-919e1f0d5190"
    with pytest.raises(DeliveryError, match="needs a registry"):
        delivered_reference(DeliverySettings("registry"), "app:1", IMAGE_ID)
    with pytest.raises(DeliveryError, match="unknown image delivery strategy 'ftp'"):
        DeliverySettings("ftp")


def test_k3s_k3d_and_registry_commands_are_exact_argument_lists() -> None:
    ref = "app:ferryman-919e1f0d5190"
    assert k3s_import_argv(DeliverySettings("k3s"), ref) == (
        ["docker", "save", ref], ["k3s", "ctr", "images", "import", "-"])
    assert k3s_import_argv(DeliverySettings("k3s", k3s_command=("sudo", "k3s")), ref)[1] == [
        "sudo", "k3s", "ctr", "images", "import", "-"]
    assert k3d_import_argv(DeliverySettings("k3d", cluster="dev"), ref) == ["k3d", "image", "import", ref, "-c", "dev"]
    with pytest.raises(DeliveryError, match="cluster's name"):
        k3d_import_argv(DeliverySettings("k3d"), ref)
    settings = DeliverySettings("registry", registry="localhost:5000")
    assert tag_argv(settings, "app:1", "localhost:5000/app:t") == ["docker", "tag", "app:1", "localhost:5000/app:t"]
    assert push_argv(settings, "localhost:5000/app:t") == ["docker", "push", "localhost:5000/app:t"]


# ---- with the real engine ------------------------------------------------------------------------


@pytest.mark.docker
async def test_missing_k3s_and_k3d_are_said_clearly_and_change_nothing(docker_client) -> None:
    assert shutil.which("k3s") is None and shutil.which("k3d") is None, "this test expects neither installed"
    tags_before = repo_tags(TEST_IMAGE)
    with pytest.raises(DeliveryError, match=r"^k3s is not installed \(not found on PATH\)"):
        await deliver(DeliverySettings("k3s"), TEST_IMAGE)
    with pytest.raises(DeliveryError, match=r"^k3d is not installed"):
        await deliver(DeliverySettings("k3d", cluster="dev"), TEST_IMAGE)
    with pytest.raises(DeliveryError, match="cluster's name"):
        await deliver(DeliverySettings("k3d"), TEST_IMAGE)
    assert repo_tags(TEST_IMAGE) == tags_before  # checked before tagging: no tag for nothing


@pytest.mark.docker
async def test_none_leaves_the_image_alone(docker_client) -> None:
    tags_before = repo_tags(TEST_IMAGE)
    delivered = await deliver(DeliverySettings("none"), TEST_IMAGE)
    assert delivered.reference == TEST_IMAGE
    assert delivered.pull_policy == "IfNotPresent"  # a pinned tag
    assert delivered.strategy == Strategy.NONE
    assert delivered.image_id == local_id(TEST_IMAGE)
    assert repo_tags(TEST_IMAGE) == tags_before
    # The test image was built here (no registry digest): said, not refused (a k3s run
    # with --docker shares this engine's images).
    assert "only built on this machine" in delivered.detail and "set promote.delivery" in delivered.detail
    # A mutable tag is pulled as Kubernetes would (the user says it is pullable).
    assert (await deliver(DeliverySettings("none"), "nowhere/app")).pull_policy == "Always"


@pytest.mark.docker
async def test_a_missing_image_is_said_before_anything_runs(docker_client) -> None:
    with pytest.raises(DeliveryError, match="not in the local Docker engine: build or pull it first"):
        await deliver(DeliverySettings("registry", registry="127.0.0.1:1"), "ferryman-test/absent:never")


WRITER = """
import json, sys, tarfile
assert sys.argv[1:] == ["ctr", "images", "import", "-"], sys.argv
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
    for member in tar:
        if member.name == "manifest.json":
            manifest = json.load(tar.extractfile(member))
            open(sys.argv[0] + ".tags", "w").write(json.dumps(manifest[0]["RepoTags"]))
            break
sys.stdin.buffer.read()
print("unpacking", manifest[0]["RepoTags"][0], "...done")
"""


@pytest.mark.docker
async def test_k3s_pipe_carries_the_saved_image_under_its_unique_tag(docker_client, tmp_path: Path) -> None:
    importer = tmp_path / "fake-k3s"
    importer.write_text(WRITER)
    settings = DeliverySettings("k3s", k3s_command=(sys.executable, str(importer)))
    delivered = await deliver(settings, TEST_IMAGE, name_hint="web")
    expected = f"ferryman-test/busybox:{unique_tag(local_id(TEST_IMAGE) or '')}"
    assert delivered.reference == expected
    assert delivered.pull_policy == "IfNotPresent"  # never Always for an image no registry has
    assert local_id(expected) == local_id(TEST_IMAGE)  # the tag really exists in the engine
    # docker save wrote the archive into the pipe, under the unique name (what containerd imports).
    assert json.loads((tmp_path / "fake-k3s.tags").read_text()) == [expected]
    again = await deliver(settings, TEST_IMAGE, name_hint="web")
    assert again.reference == delivered.reference  # same build, same tag


@pytest.mark.docker
async def test_a_failing_import_reports_its_stderr(docker_client, tmp_path: Path) -> None:
    importer = tmp_path / "fake-k3s"
    importer.write_text("import sys\nsys.stderr.write('ctr: failed to ingest: permission denied\\n')\nsys.exit(1)\n")
    settings = DeliverySettings("k3s", k3s_command=(sys.executable, str(importer)))
    with pytest.raises(DeliveryError) as failed:
        await deliver(settings, TEST_IMAGE)
    text = str(failed.value)
    assert "ctr images import -` failed (exit 1)" in text  # which command, and how it ended
    assert "ctr: failed to ingest: permission denied" in text


# ---- a registry, served by the test ----------------------------------------------------------------


class Registry:
    """The registry v2 endpoints `docker push` uses, in memory, on plain HTTP (dockerd
    treats 127.0.0.0/8 registries as insecure by default: no TLS needed)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, bytearray] = {}

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        path, method = request.path, request.method
        if path in ("/v2", "/v2/"):
            return aiohttp.web.json_response({})
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/?", path):
            upload = uuid.uuid4().hex
            self.uploads[upload] = bytearray()
            return self._upload_answer(m.group(1), upload, 202)
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/([0-9a-f]+)", path):
            name, upload = m.groups()
            self.uploads[upload] += await request.read()
            if method == "PATCH":
                return self._upload_answer(name, upload, 202)
            digest = request.query["digest"]
            data = bytes(self.uploads.pop(upload))
            if digest != "sha256:" + hashlib.sha256(data).hexdigest():
                return aiohttp.web.Response(status=400, text="digest mismatch")
            self.blobs[digest] = data
            return aiohttp.web.Response(status=201, headers={
                "Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})
        if m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]+)", path):
            data = self.blobs.get(m.group(2))
            if data is None:
                return aiohttp.web.Response(status=404)
            return aiohttp.web.Response(body=data if method == "GET" else None, headers={
                "Content-Length": str(len(data)), "Docker-Content-Digest": m.group(2)})
        if m := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
            key = m.groups()
            if method == "PUT":
                body = await request.read()
                self.manifests[key] = body
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                return aiohttp.web.Response(status=201, headers={"Docker-Content-Digest": digest,
                                                                  "Location": f"/v2/{key[0]}/manifests/{digest}"})
            return aiohttp.web.Response(status=404)
        return aiohttp.web.Response(status=404)

    def _upload_answer(self, name: str, upload: str, status: int) -> aiohttp.web.Response:
        # Range is what the registry holds so far; the client checks it against what it sent.
        return aiohttp.web.Response(status=status, headers={
            "Location": f"/v2/{name}/blobs/uploads/{upload}", "Docker-Upload-UUID": upload,
            "Range": f"0-{max(len(self.uploads[upload]) - 1, 0)}"})


@pytest.fixture
async def registry() -> AsyncIterator[tuple[Registry, str]]:
    served = Registry()
    app = aiohttp.web.Application(client_max_size=1024 ** 3)
    app.router.add_route("*", "/{tail:.*}", served.handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield served, f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def cleanup_tags() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for reference in made:
        untag(reference)


@pytest.mark.docker
async def test_registry_delivery_tags_and_pushes(docker_client, registry, cleanup_tags) -> None:
    served, address = registry
    delivered = await deliver(DeliverySettings("registry", registry=address), TEST_IMAGE)
    cleanup_tags.append(delivered.reference)
    tag = unique_tag(local_id(TEST_IMAGE) or "")
    assert delivered.reference == f"{address}/ferryman-test/busybox:{tag}"
    assert delivered.pull_policy == "IfNotPresent"
    assert local_id(delivered.reference) == local_id(TEST_IMAGE)
    assert ("ferryman-test/busybox", tag) in served.manifests  # the push really arrived
    assert served.blobs


@pytest.mark.docker
async def test_an_unreachable_registry_gives_dockers_own_words(docker_client, cleanup_tags) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = DeliverySettings("registry", registry=f"127.0.0.1:{port}")
    expected = (await plan(settings, TEST_IMAGE)).reference
    cleanup_tags.append(expected)
    with pytest.raises(DeliveryError) as failed:
        await asyncio.wait_for(deliver(settings, TEST_IMAGE), 120)
    text = str(failed.value)
    assert text.startswith(f"`docker push {expected}` failed (exit 1): ")
    assert "connection refused" in text.lower()
    assert local_id(expected) == local_id(TEST_IMAGE)  # tagged before the push failed


@pytest.mark.docker
async def test_cancelling_a_delivery_ends_both_ends_of_the_pipe(docker_client, tmp_path: Path) -> None:
    importer = tmp_path / "fake-k3s"
    # Reads nothing: `docker save` blocks on the full pipe, so both stay until cancelled.
    importer.write_text("import os, sys, time\nopen(sys.argv[0] + '.pid', 'w').write(str(os.getpid()))\n"
                        "time.sleep(600)\n")
    settings = DeliverySettings("k3s", k3s_command=(sys.executable, str(importer)))
    task = asyncio.create_task(deliver(settings, TEST_IMAGE))
    pid_file = tmp_path / "fake-k3s.pid"
    for _ in range(600):
        if pid_file.exists() and pid_file.read_text() and _savers():
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the pipe never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not psutil.pid_exists(int(pid_file.read_text()))  # killed and reaped
    assert _savers() == []


def _savers() -> list[psutil.Process]:
    """Our `docker save` children."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):  # one that ended meanwhile
            if child.cmdline()[:2] == ["docker", "save"]:
                found.append(child)
    return found
