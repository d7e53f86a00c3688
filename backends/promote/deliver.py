"""Getting a local image into the cluster before the manifests refer to it.

A promoted service runs the image Compose runs, which usually exists only in the local
Docker engine. Kubernetes cannot see that engine, so the image is delivered first, by a
strategy the user configures:

- ``k3s``: ``docker save REF | k3s ctr images import -`` (two processes joined by a pipe,
  no shell), straight into the node's containerd; needs k3s on this machine (and the
  rights to run ``k3s ctr``: a prefix such as ``("sudo", "k3s")`` may be configured);
- ``k3d``: ``k3d image import REF -c CLUSTER``;
- ``registry``: ``docker tag`` to ``REGISTRY/name:tag`` and ``docker push``;
- ``none``: the image must already be pullable by the cluster; nothing is touched.

Every delivered image gets a tag derived from the local image ID (``ferryman-<12 hex>``):
the same build always gets the same tag, so re-promoting is deterministic, and a new
build a new one, so the cluster never runs a stale image cached under a reused tag (the
reason ``:latest`` forces ``imagePullPolicy: Always``, which fails for an imported image
that no registry has). The pull policy returned is ``IfNotPresent``: never ``Always`` for
an image that exists only where it was delivered.

Every external command is an argument list run with asyncio's subprocess support; their
failures become `DeliveryError`s carrying the command and its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from backends.adapter import ActionError

TAG_PREFIX = "ferryman-"
ID_CHARS = 12  # of the image ID's hex, as `docker images` shows it
# What a failed command's stderr may contribute to a message (docker save of a broken
# image can print a lot).
_STDERR_CHARS = 2000


class DeliveryError(ActionError):
    """The image could not be delivered; the text says which command failed and why."""


class Strategy(StrEnum):
    K3S = "k3s"
    K3D = "k3d"
    REGISTRY = "registry"
    NONE = "none"


@dataclass(frozen=True)
class DeliverySettings:
    """How images reach the cluster (the config's `delivery:` section).

    `k3s_command` / `k3d_command` / `docker_command` are the programs to run, as argument
    lists: ``("sudo", "k3s")`` where ``k3s ctr`` needs root, or an absolute path."""

    strategy: Strategy | str = Strategy.NONE
    cluster: str | None = None  # k3d: the cluster name (-c)
    registry: str | None = None  # registry: "localhost:5000", "ghcr.io/me"
    k3s_command: tuple[str, ...] = ("k3s",)
    k3d_command: tuple[str, ...] = ("k3d",)
    docker_command: tuple[str, ...] = ("docker",)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "strategy", Strategy(self.strategy))
        except ValueError:
            choices = ", ".join(s.value for s in Strategy)
            raise DeliveryError(f"unknown image delivery strategy {self.strategy!r}: use one of {choices}") from None


@dataclass(frozen=True)
class Delivered:
    """What the manifests must say: the image reference and its pull policy."""

    source: str  # the local image as Compose names it
    image_id: str  # "sha256:…", "" when the image is not local (strategy none)
    reference: str  # what the pod spec's `image` must be
    pull_policy: str  # "IfNotPresent" (or "Always" for a mutable tag the user delivers)
    strategy: Strategy
    detail: str  # one line for the progress view


# ---- names (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageName:
    """An image reference split into its parts: [registry/]path[:tag][@digest]."""

    registry: str  # "" for Docker Hub's implicit one
    path: str  # "library/busybox", "team/app"
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}" if self.registry else self.path


def parse_image(reference: str) -> ImageName:
    rest, _, digest = reference.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = ""
    if colon > slash:  # a ':' after the last '/' is a tag, before it a registry's port
        rest, tag = rest[:colon], rest[colon + 1:]
    first, sep, remainder = rest.partition("/")
    # Docker's own rule: the first component is a registry if it looks like a host.
    if sep and ("." in first or ":" in first or first == "localhost"):
        return ImageName(first, remainder, tag, digest)
    return ImageName("", rest, tag, digest)


def unique_tag(image_id: str) -> str:
    """``ferryman-<first 12 hex of the image ID>``: one tag per build, always the same."""
    hex_id = image_id.removeprefix("sha256:")
    if len(hex_id) < ID_CHARS or any(c not in "0123456789abcdef" for c in hex_id[:ID_CHARS]):
        raise DeliveryError(f"not an image ID: {image_id!r}")
    return TAG_PREFIX + hex_id[:ID_CHARS]


def _is_bare_id(source: str) -> bool:
    hex_id = source.removeprefix("sha256:")
    return len(hex_id) >= ID_CHARS and all(c in "0123456789abcdef" for c in hex_id)


def delivered_reference(settings: DeliverySettings, source: str, image_id: str, name_hint: str = "image") -> str:
    """The reference the cluster will know the image by (pure: the tag comes from the ID).

    Imported images keep their repository (containerd and the kubelet both complete
    "app" to "docker.io/library/app", so they agree on what it is called); a registry
    push puts the image's path under the configured registry, without the registry it
    came from."""
    tag = unique_tag(image_id)
    name = parse_image(source)
    path = name.path if not _is_bare_id(source) else f"ferryman/{name_hint}"
    repository = name.repository if not _is_bare_id(source) else path
    if settings.strategy == Strategy.REGISTRY:
        if not settings.registry:
            raise DeliveryError("image delivery 'registry' needs a registry (e.g. localhost:5000)")
        return f"{settings.registry.rstrip('/')}/{path}:{tag}"
    return f"{repository}:{tag}"


def k3s_import_argv(settings: DeliverySettings, reference: str) -> tuple[list[str], list[str]]:
    """(producer, consumer) of the k3s pipe: `docker save REF` into `k3s ctr images import -`."""
    return ([*settings.docker_command, "save", reference],
            [*settings.k3s_command, "ctr", "images", "import", "-"])


def k3d_import_argv(settings: DeliverySettings, reference: str) -> list[str]:
    if not settings.cluster:
        raise DeliveryError("image delivery 'k3d' needs the k3d cluster's name")
    return [*settings.k3d_command, "image", "import", reference, "-c", settings.cluster]


def tag_argv(settings: DeliverySettings, source: str, reference: str) -> list[str]:
    return [*settings.docker_command, "tag", source, reference]


def push_argv(settings: DeliverySettings, reference: str) -> list[str]:
    return [*settings.docker_command, "push", reference]


# ---- running commands -----------------------------------------------------------------------


def _shown(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _stderr_text(data: bytes) -> str:
    text = data.decode(errors="replace").strip()
    return text if len(text) <= _STDERR_CHARS else "…" + text[-_STDERR_CHARS:]


def _require(argv: Sequence[str], why: str) -> None:
    """A missing program is said as such, before anything is done."""
    program = argv[0]
    if shutil.which(program) is None:
        raise DeliveryError(f"{program} is not installed (not found on PATH): {why}")


async def _spawn(argv: Sequence[str], **kwargs: object) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(*argv, **kwargs)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise DeliveryError(f"{argv[0]} is not installed (not found on PATH)") from None
    except PermissionError as exc:
        raise DeliveryError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Kill a process we no longer want (cancelled, or its partner failed) and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(Exception):
        await proc.wait()


async def run(argv: Sequence[str]) -> bytes:
    """Run one command to the end; its stdout, or a DeliveryError with its stderr.
    Cancelled, the process is killed (no orphan keeps pushing an image)."""
    proc = await _spawn(argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except BaseException:
        await _end(proc)
        raise
    if proc.returncode != 0:
        raise DeliveryError(f"`{_shown(argv)}` failed (exit {proc.returncode}): {_stderr_text(err) or 'no output'}")
    return out


async def run_piped(producer: Sequence[str], consumer: Sequence[str]) -> None:
    """`producer | consumer` without a shell: the producer's stdout is the consumer's
    stdin through an OS pipe, both stderrs are kept for the error message."""
    read_end, write_end = os.pipe()
    procs: list[asyncio.subprocess.Process] = []
    try:
        # The consumer first: if it cannot start (not installed), nothing was saved for nothing.
        consumer_proc = await _spawn(consumer, stdin=read_end, stdout=asyncio.subprocess.DEVNULL,
                                     stderr=asyncio.subprocess.PIPE)
        procs.append(consumer_proc)
        os.close(read_end)
        read_end = -1
        producer_proc = await _spawn(producer, stdin=asyncio.subprocess.DEVNULL, stdout=write_end,
                                     stderr=asyncio.subprocess.PIPE)
        procs.append(producer_proc)
        # Only the children hold the pipe now: the consumer sees EOF when the producer ends,
        # the producer a broken pipe if the consumer dies.
        os.close(write_end)
        write_end = -1
        (_, consumer_err), (_, producer_err) = await asyncio.gather(
            consumer_proc.communicate(), producer_proc.communicate()
        )
    except BaseException:
        for proc in procs:
            await _end(proc)
        raise
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    # The consumer's complaint first: a producer that failed with a broken pipe only
    # says that its reader went away.
    if consumer_proc.returncode != 0:
        raise DeliveryError(f"`{_shown(consumer)}` failed (exit {consumer_proc.returncode}): "
                            f"{_stderr_text(consumer_err) or 'no output'}")
    if producer_proc.returncode != 0:
        raise DeliveryError(f"`{_shown(producer)}` failed (exit {producer_proc.returncode}): "
                            f"{_stderr_text(producer_err) or 'no output'}")


async def image_id(settings: DeliverySettings, source: str) -> str | None:
    """The local image's ID ("sha256:…"), None when the engine does not have it."""
    argv = [*settings.docker_command, "image", "inspect", source]
    try:
        out = await run(argv)
    except DeliveryError as exc:
        if "no such image" in str(exc).lower():
            return None
        raise
    found = json.loads(out or b"[]")
    return str(found[0]["Id"]) if found else None


async def plan(settings: DeliverySettings, source: str, name_hint: str = "image") -> Delivered:
    """What delivering `source` will give, without delivering it (for the preview and the
    manifests, which must name the reference before anything is applied)."""
    if settings.strategy == Strategy.NONE:
        return await _as_is(settings, source)
    _require(settings.docker_command, "the image is read from the local Docker engine")
    found = await image_id(settings, source)
    if found is None:
        raise DeliveryError(f"image {source} is not in the local Docker engine: build or pull it first "
                            f"(docker compose build / pull)")
    reference = delivered_reference(settings, source, found, name_hint)
    where = {Strategy.K3S: "imported with k3s ctr", Strategy.K3D: f"imported into k3d cluster {settings.cluster}",
             Strategy.REGISTRY: f"pushed to {settings.registry}"}[Strategy(settings.strategy)]
    return Delivered(source, found, reference, "IfNotPresent", Strategy(settings.strategy), f"{reference}, {where}")


async def _as_is(settings: DeliverySettings, source: str) -> Delivered:
    """Strategy none: the reference is the image as Compose names it; nothing is tagged.
    A mutable tag (`latest`, or none) is pulled with `Always`, as Kubernetes would, so
    that a node does not keep running an old copy; a pinned one `IfNotPresent`."""
    name = parse_image(source)
    found = None
    if shutil.which(settings.docker_command[0]) is not None:
        with contextlib.suppress(DeliveryError):
            found = await image_id(settings, source)
    mutable = not name.digest and name.tag in ("", "latest")
    policy = "Always" if mutable else "IfNotPresent"
    detail = f"{source} as is: the cluster pulls it ({policy})"
    if found and not await _has_registry_digest(settings, source):
        # Not refused: a k3s started with --docker shares this engine's images. But
        # anywhere else the pods will sit in ErrImagePull until the rollout times out.
        detail += ("; it was only built on this machine (no registry digest): unless the cluster shares "
                   "this Docker engine, set promote.delivery to k3s, k3d or registry")
    return Delivered(source, found or "", source, policy, Strategy.NONE, detail)


async def _has_registry_digest(settings: DeliverySettings, source: str) -> bool:
    """Whether the local image came from (or went to) a registry: `RepoDigests` is empty
    for an image that was only built here."""
    with contextlib.suppress(DeliveryError, ValueError):
        out = await run([*settings.docker_command, "image", "inspect", "--format", "{{json .RepoDigests}}", source])
        return bool(json.loads(out or b"[]"))
    return True  # cannot tell: say nothing


async def deliver(settings: DeliverySettings, source: str, name_hint: str = "image") -> Delivered:
    """Deliver `source` to the cluster by `settings.strategy`; what the manifests must say.
    Raises DeliveryError (missing program, missing image, a failing command with its
    stderr). Re-delivering the same build does the same again (same tag)."""
    strategy = Strategy(settings.strategy)
    if strategy == Strategy.NONE:
        return await _as_is(settings, source)
    # Programs first: a missing k3s/k3d must not leave a fresh tag behind for nothing.
    _require(settings.docker_command, "the image is read from the local Docker engine")
    if strategy == Strategy.K3S:
        _require(settings.k3s_command, "delivery 'k3s' runs `k3s ctr images import` on this machine "
                 "(choose k3d, registry or none in the config if k3s runs elsewhere)")
    elif strategy == Strategy.K3D:
        if not settings.cluster:
            raise DeliveryError("image delivery 'k3d' needs the k3d cluster's name")
        _require(settings.k3d_command, "delivery 'k3d' runs `k3d image import`")
    delivered = await plan(settings, source, name_hint)
    # The unique tag exists locally in every strategy: `docker save` writes the name into
    # the archive (so containerd imports it under that name), and push needs it.
    await run(tag_argv(settings, source, delivered.reference))
    if strategy == Strategy.K3S:
        await run_piped(*k3s_import_argv(settings, delivered.reference))
    elif strategy == Strategy.K3D:
        await run(k3d_import_argv(settings, delivered.reference))
    else:
        await run(push_argv(settings, delivered.reference))
    return delivered


__all__ = [
    "Delivered", "DeliveryError", "DeliverySettings", "ImageName", "Strategy", "deliver", "delivered_reference",
    "image_id", "k3d_import_argv", "k3s_import_argv", "parse_image", "plan", "push_argv", "run", "run_piped",
    "tag_argv", "unique_tag",
]
