"""Resolve a Compose service the way Compose itself does: through the CLI's `config`.

Interpolation (`${PORT:-8080}`), env files, `extends`, profiles and merged override
files all have subtle rules; re-implementing them would drift from what `docker compose
up` actually ran. So the compose CLI renders the project (`docker compose config
--format json` for v2, `docker-compose config` YAML for v1) and we read its output.
The CLI runs as an asyncio subprocess, never on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backends.promote.model import ComposeService, PromoteError, ResolvedService
from backends.promote.syntax import SyntaxProblem, read_mount

CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"

CLI_TIMEOUT = 60.0  # v1 is a Python program: a cold start alone can take seconds
# ConfigMaps and Secrets hold at most 1 MiB; reading past that only proves it is too big.
MAX_FILE_BYTES = 1 << 20
_MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class ComposeCli:
    argv: tuple[str, ...]  # ("docker", "compose") or ("docker-compose",)
    version: str

    @property
    def prints_json(self) -> bool:
        # v1 (1.x) has no `config --format`; a standalone docker-compose 2.x does.
        return not self.version.startswith("1.")


_detected: ComposeCli | None = None


async def _run(argv: Sequence[str], cwd: Path | None = None, timeout: float = CLI_TIMEOUT) -> tuple[int, str, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: not found"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        # Never leave a CLI running behind a cancelled or stuck promotion.
        proc.kill()
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise PromoteError(f"`{' '.join(argv)}` did not answer within {timeout:.0f} s") from None
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def compose_cli() -> ComposeCli:
    """The compose CLI here: the v2 plugin when `docker compose` answers, else a
    standalone `docker-compose` (v1, or v2 installed standalone). Found once."""
    global _detected
    if _detected is None:
        for argv in (("docker", "compose"), ("docker-compose",)):
            code, out, _ = await _run([*argv, "version", "--short"], timeout=20)
            if code == 0 and out.strip():
                _detected = ComposeCli(argv, out.strip().lstrip("v"))
                break
        else:
            raise PromoteError("no compose CLI found: neither `docker compose` nor `docker-compose` runs here")
    return _detected


def compose_files_from_labels(config_files: str | None, working_dir: str | None) -> tuple[list[Path] | None, Path]:
    """Where a running project came from, from its containers' labels:
    (`com.docker.compose.project.config_files`, `.working_dir`) -> (files, project dir).

    v2 records absolute paths, v1 the paths as given on its command line (relative to
    the working dir); both comma-separated. No config_files label: the CLI's defaults
    in the working dir (files None)."""
    if not working_dir:
        raise PromoteError("the containers carry no com.docker.compose.project.working_dir label: "
                           "give the compose file (-f) instead")
    base = Path(working_dir)
    if not config_files or not config_files.strip():
        return None, base
    files = [base / part.strip() for part in config_files.split(",") if part.strip()]
    return files, base


def _undo_dollar_escapes(value: Any) -> Any:
    # `config` prints a literal "$" as "$$" so that its output is a valid Compose file
    # again; interpolation is done, so every "$$" left is such an escape.
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_undo_dollar_escapes(v) for v in value]
    if isinstance(value, dict):
        return {k: _undo_dollar_escapes(v) for k, v in value.items()}
    return value


def _normalise_project_name(name: str) -> str:
    # Compose's rule: lowercase, only [a-z0-9_-], starting with a letter or digit.
    return re.sub(r"^[^a-z0-9]+", "", re.sub(r"[^a-z0-9_-]", "", name.lower()))


def default_project_name(project_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """The name Compose v1 gives a project without `-p` (v2 prints its own): the
    COMPOSE_PROJECT_NAME variable (environment, then the project's .env), else the
    project directory's name."""
    environ = os.environ if environ is None else environ
    name = environ.get("COMPOSE_PROJECT_NAME")
    if not name:
        try:
            for line in (project_dir / ".env").read_text().splitlines():
                key, eq, value = line.partition("=")
                if eq and key.strip() == "COMPOSE_PROJECT_NAME":
                    name = value.strip().strip("'\"")
        except OSError:
            pass
    return _normalise_project_name(name or project_dir.resolve().name) or "default"


def service_from_config(
    doc: Mapping[str, Any], service: str, *, project: str | None = None, project_dir: Path | None = None
) -> ComposeService:
    """Pick `service` out of a `config` document (v1 YAML or v2 JSON, already loaded)."""
    services = doc.get("services") if isinstance(doc, Mapping) else None
    if not isinstance(services, Mapping):
        raise PromoteError("compose config printed no services")
    if service not in services:
        listed = ", ".join(sorted(services)) or "none"
        raise PromoteError(f"no service '{service}' in project (services: {listed})")
    services = _undo_dollar_escapes(dict(services))
    project = project or doc.get("name") or (default_project_name(project_dir) if project_dir else "default")

    def top(key: str) -> dict[str, Any]:
        value = doc.get(key) or {}
        return _undo_dollar_escapes(dict(value)) if isinstance(value, Mapping) else {}

    return ComposeService(
        name=service,
        project=str(project),
        config=services[service] or {},
        volumes=top("volumes"),
        secrets=top("secrets"),
        configs=top("configs"),
        project_services=services,
        project_dir=project_dir,
    )


def _referenced_files(service: ComposeService) -> list[Path]:
    config = service.config
    paths: list[Path] = []
    for key, definitions in (("secrets", service.secrets), ("configs", service.configs)):
        for ref in config.get(key) or []:
            source = ref.get("source") if isinstance(ref, Mapping) else ref
            definition = definitions.get(str(source)) or {}
            if isinstance(definition, Mapping) and definition.get("file"):
                paths.append(Path(str(definition["file"])))
    for entry in config.get("volumes") or []:
        try:
            mount = read_mount(entry)
        except SyntaxProblem:
            continue
        if mount.type == "bind" and mount.source:
            paths.append(Path(mount.source))
    base = service.project_dir or Path.cwd()
    return [p if p.is_absolute() else base / p for p in paths]


def read_referenced_files(service: ComposeService) -> ComposeService:
    """Read the files a service's secrets, configs and bind mounts name, so the pure
    `translate` can carry single files over into ConfigMaps/Secrets. Blocking: run
    it in a thread. Directories are skipped (a bind-mounted tree is not portable)."""
    contents: dict[str, bytes | str] = dict(service.file_contents)
    for path in _referenced_files(service):
        key = str(path)
        if key in contents or path.is_dir():
            continue
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            contents[key] = exc.strerror or str(exc)
            continue
        contents[key] = data if len(data) <= MAX_FILE_BYTES else "larger than 1 MiB (the ConfigMap/Secret limit)"
    return ComposeService(**{**service.__dict__, "file_contents": contents})


def _short(message: str) -> str:
    message = message.strip()
    return message if len(message) <= _MESSAGE_LIMIT else "…" + message[-_MESSAGE_LIMIT:]


@dataclass(frozen=True)
class ResolvedProject:
    """A whole project as the compose CLI rendered it."""

    document: Mapping[str, Any]  # `config` output, as printed (escapes and all)
    name: str
    files: tuple[Path, ...]
    project_dir: Path
    cli: ComposeCli
    cli_warnings: tuple[str, ...] = ()

    def service(self, name: str) -> ComposeService:
        """The service as `translate` takes it, without file contents (pure; see
        `read_referenced_files`)."""
        return service_from_config(self.document, name, project=self.name, project_dir=self.project_dir)


async def resolve_project(
    files: Sequence[Path] | None,
    project_dir: Path,
    *,
    project_name: str | None = None,
    profiles: Sequence[str] = (),
    cli: ComposeCli | None = None,
) -> ResolvedProject:
    """Render the project made of `files` (None: the CLI's default files in
    `project_dir`; relative paths are relative to `project_dir`) with the compose CLI's
    `config`. `profiles` are activated as `--profile` (v2 leaves services of inactive
    profiles out of `config`; v1 lists every service)."""
    # Absolute paths: the CLI runs in project_dir and relative ones would resolve twice.
    project_dir = Path(project_dir).absolute()
    paths = [path if path.is_absolute() else project_dir / path for path in map(Path, files or [])]
    for path in paths:
        if not path.is_file():
            raise PromoteError(f"compose file {path} does not exist")
    cli = cli or await compose_cli()
    argv = [*cli.argv, "--project-directory", str(project_dir)]
    for path in paths:
        argv += ["-f", str(path)]
    if project_name:
        argv += ["-p", project_name]
    for profile in profiles:
        argv += ["--profile", profile]
    argv.append("config")
    if cli.prints_json:
        argv += ["--format", "json"]
    code, out, err = await _run(argv, cwd=project_dir)
    if code != 0:
        raise PromoteError(f"compose file does not parse: {_short(err or out) or f'exit status {code}'}")
    try:
        doc = json.loads(out) if cli.prints_json else yaml.safe_load(out)
    except (ValueError, yaml.YAMLError) as exc:
        raise PromoteError(f"compose config printed something unreadable: {exc}") from None
    if not isinstance(doc, Mapping):
        raise PromoteError("compose config printed no project")
    return ResolvedProject(
        document=doc,
        name=project_name or doc.get("name") or default_project_name(project_dir),
        files=tuple(paths),
        project_dir=project_dir,
        cli=cli,
        # What the CLI said while succeeding ("The X variable is not set…").
        cli_warnings=tuple(line.strip() for line in err.splitlines() if line.strip()),
    )


async def resolve_service(
    service: str,
    files: list[Path] | None,
    project_dir: Path,
    *,
    project_name: str | None = None,
    profiles: Sequence[str] = (),
    cli: ComposeCli | None = None,
) -> ResolvedService:
    """Resolve one service through the compose CLI (see `resolve_project`), with the
    files its secrets, configs and bind mounts name read (in a thread)."""
    project = await resolve_project(files, project_dir, project_name=project_name, profiles=profiles, cli=cli)
    composed = await asyncio.to_thread(read_referenced_files, project.service(service))
    return ResolvedService(
        service=composed,
        files=project.files,
        project_dir=project.project_dir,
        cli=project.cli.argv,
        cli_warnings=project.cli_warnings,
    )
