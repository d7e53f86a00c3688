"""Typed configuration: shipped defaults, deep-merged with the user's YAML file.

The defaults live in `config/default.yaml`, which also documents every key, so
the file a user copies and the values the code uses cannot drift apart (a test
holds the models' defaults to it). Every model forbids unknown keys so that a
typo is reported instead of silently ignored.

Bad input never escapes as a traceback: every problem becomes a `ConfigError`
whose text names the file, the line and the key at fault, one problem a line.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from backends.model import ForwardSpec

# ---- the schema -----------------------------------------------------------------------

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Section(BaseModel):
    # Frozen: the app hands one Config to many views; none may change it under the others.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DockerConfig(_Section):
    # None means "$DOCKER_HOST, else the local socket"; the Compose adapter resolves it.
    host: str | None = None


class UiConfig(_Section):
    theme: NonEmptyStr = "textual-dark"
    readonly: bool = False
    # Checked against the registered views by the UI, which is what knows them.
    default_view: NonEmptyStr = "workloads"
    # Finite: it becomes a timer interval.
    uptime_refresh_seconds: float = Field(default=2.0, gt=0, allow_inf_nan=False)


class KubernetesConfig(_Section):
    enabled: bool = True
    # None: $KUBECONFIG, else ~/.kube/config (the adapter resolves it).
    kubeconfig: NonEmptyStr | None = None
    # None: the kubeconfig's current-context.
    context: NonEmptyStr | None = None
    # None: all namespaces.
    namespace: NonEmptyStr | None = None


class PairConfig(_Section):
    # "[project/]service" and "[namespace/]name" (a Deployment or StatefulSet).
    compose: NonEmptyStr
    k3s: NonEmptyStr


class HybridConfig(_Section):
    match_by_name: bool = True
    pairs: list[PairConfig] = Field(default_factory=list)


class LogsConfig(_Section):
    # Lines of history each source starts with (the `tail 500` preset's number).
    tail: int = Field(default=500, ge=0)
    # The log view keeps at most this many lines; older ones are dropped (and counted).
    buffer_lines: int = Field(default=100_000, ge=1_000)


def _workload_ref(value: str) -> str:
    """"name" or "group/name" (a Compose project or a namespace pins the group)."""
    group, slash, name = value.rpartition("/")
    if not name or (slash and not group) or "/" in group:
        raise PydanticCustomError("workload_ref", "expected NAME or GROUP/NAME (a project or namespace, then a name)")
    return value


def _url_path(value: str) -> str:
    # A path, not a URL: the host and port come from where the workload runs, which
    # changes (Compose publishes a new port on re-create, a Service moves), so the
    # config must not be able to pin them.
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise PydanticCustomError("url_path", "must be a path starting with '/' (e.g. /health), without spaces")
    return value


_STATUS_RANGE = re.compile(r"\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?")


def _status_ranges(value: Any) -> Any:
    """`200`, `"200-399"` or a list of those → ((low, high), ...); anything else is refused
    with a sentence rather than pydantic's union-of-everything message."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PydanticCustomError("expect", "expected at least one status or range, e.g. 200-399")
    ranges = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            low = high = item
        elif isinstance(item, str) and (m := _STATUS_RANGE.fullmatch(item)):
            low, high = int(m[1]), int(m[2] or m[1])
        else:
            raise PydanticCustomError(
                "expect", "expected an HTTP status (200), a range (200-399) or a list of them, not {item}",
                {"item": str(item).lower() if isinstance(item, bool) or item is None else repr(item)},
            )
        if not 100 <= low <= high <= 599:
            raise PydanticCustomError(
                "expect", "{item} is not a status range between 100 and 599", {"item": repr(item)}
            )
        ranges.append((low, high))
    return tuple(ranges)


StatusRanges = Annotated[tuple[tuple[int, int], ...], BeforeValidator(_status_ranges)]


class HealthUrlConfig(_Section):
    # A Compose service or Kubernetes workload name on either side; "group/name" pins
    # the project or namespace.
    service: Annotated[NonEmptyStr, AfterValidator(_workload_ref)]
    path: Annotated[str, AfterValidator(_url_path)]
    # Compose: the container port (the first published TCP port when unset). k3s: the
    # Service's port or targetPort (its first port when unset).
    port: int | None = Field(default=None, ge=1, le=65535)
    # Statuses that count as healthy.
    expect: StatusRanges = ((200, 399),)


class HealthConfig(_Section):
    # Finite: both become timer intervals.
    interval_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    timeout_seconds: float = Field(default=2.0, gt=0, allow_inf_nan=False)
    urls: list[HealthUrlConfig] = Field(default_factory=list)

    @field_validator("urls")
    @classmethod
    def _one_check_per_path(cls, urls: list[HealthUrlConfig]) -> list[HealthUrlConfig]:
        # A workload's check is keyed by its path (HttpCheck.key): two entries for the
        # same service and path would overwrite each other's results.
        seen: dict[tuple[str, str], int] = {}
        for index, url in enumerate(urls):
            first = seen.setdefault((url.service, url.path), index)
            if first != index:
                raise PydanticCustomError(
                    "duplicate_url",
                    "urls[{index}] repeats urls[{first}] (service {service}, path {path})",
                    {"index": index, "first": first, "service": url.service, "path": url.path},
                )
        return urls


_TARGET_KINDS = {
    "pod": "pod", "po": "pod", "pods": "pod",
    "service": "service", "svc": "service", "services": "service",
    "deployment": "deployment", "deploy": "deployment", "deployments": "deployment",
    "statefulset": "statefulset", "sts": "statefulset", "statefulsets": "statefulset",
}


def _forward_target(value: str) -> str:
    """`svc/web`, `deploy/api`, `pod/web-0`… → "kind/name" with the kind spelled out."""
    kind, _, name = value.partition("/")
    if kind.lower() not in _TARGET_KINDS or not name or "/" in name:
        raise PydanticCustomError(
            "forward_target", "must be KIND/NAME with KIND one of pod, svc, deploy, sts (e.g. svc/web), not {value}",
            {"value": repr(value)},
        )
    return f"{_TARGET_KINDS[kind.lower()]}/{name}"


def _loopback_or_any(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise PydanticCustomError("address", "must be an IP address (127.0.0.1, ::1…), not {value}",
                                  {"value": repr(value)}) from None
    return value


class ForwardEntryConfig(_Section):
    namespace: NonEmptyStr
    target: Annotated[str, AfterValidator(_forward_target)]  # svc/web, deploy/api, pod/web-0, sts/db
    port: int = Field(ge=1, le=65535)  # the Service's port, or the container port
    local_port: int | None = Field(default=None, ge=1, le=65535)  # default: the same as port
    address: Annotated[str, AfterValidator(_loopback_or_any)] = "127.0.0.1"

    def spec(self) -> ForwardSpec:
        kind, _, name = self.target.partition("/")
        return ForwardSpec(self.namespace, kind, name, self.port, self.local_port or self.port, self.address)

    @classmethod
    def of(cls, spec: ForwardSpec) -> ForwardEntryConfig:
        return cls(namespace=spec.namespace, target=f"{spec.kind}/{spec.name}", port=spec.remote_port,
                   local_port=spec.local_port, address=spec.address)


class ForwardSetConfig(_Section):
    name: NonEmptyStr
    autostart: bool = True  # started with Ferryman
    forwards: list[ForwardEntryConfig] = Field(default_factory=list)


class ForwardsConfig(_Section):
    # Binding a forward to anything but a loopback address exposes the pod to the network.
    allow_remote_bind: bool = False
    sets: list[ForwardSetConfig] = Field(default_factory=list)

    @field_validator("sets")
    @classmethod
    def _unique_names(cls, sets: list[ForwardSetConfig]) -> list[ForwardSetConfig]:
        names = [s.name for s in sets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PydanticCustomError("duplicate_set", "forward set {name} is defined twice", {"name": repeated[0]})
        return sets


class PromoteConfig(_Section):
    # How the service's image reaches the cluster: none (the cluster can pull it), k3s
    # (`docker save | k3s ctr images import -`), k3d (`k3d image import`), registry (push).
    delivery: Literal["none", "k3s", "k3d", "registry"] = "none"
    k3d_cluster: NonEmptyStr | None = None  # delivery k3d: the cluster's name
    registry: NonEmptyStr | None = None  # delivery registry: "localhost:5000", "ghcr.io/me"
    # The program that runs `k3s ctr`, as an argument list: ["sudo", "k3s"] where it needs root.
    k3s_command: list[NonEmptyStr] = Field(default_factory=lambda: ["k3s"])
    # How long the new pods may take to become ready before the promotion is rolled back.
    rollout_timeout_seconds: float = Field(default=180.0, gt=0, allow_inf_nan=False)


class Config(_Section):
    """The whole configuration; `Config()` equals the shipped defaults."""

    docker: DockerConfig = DockerConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    hybrid: HybridConfig = HybridConfig()
    logs: LogsConfig = LogsConfig()
    health: HealthConfig = HealthConfig()
    forwards: ForwardsConfig = ForwardsConfig()
    promote: PromoteConfig = PromoteConfig()
    ui: UiConfig = UiConfig()
    # binding id -> "key" or "key1,key2"; the UI validates the ids, it knows them.
    keymap: dict[NonEmptyStr, NonEmptyStr] = Field(default_factory=dict)


class ConfigError(Exception):
    """A configuration that cannot be used; `str()` is the whole message for the user."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


# ---- public entry points --------------------------------------------------------------

_DEFAULT_NAME = "default.yaml"


def default_config_text() -> str:
    """The shipped defaults with their comments: a starting point for a user's file."""
    return (files("config") / _DEFAULT_NAME).read_text(encoding="utf-8")


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the user's file is: $FERRYMAN_CONFIG, else the XDG config directory.

    XDG is done by hand rather than with platformdirs because platformdirs reads
    `os.environ` only, and would give macOS paths on a Mac where our users expect
    ~/.config like every other CLI tool they run.
    """
    env = os.environ if env is None else env
    explicit = env.get("FERRYMAN_CONFIG", "")
    if explicit:
        return _expand_home(explicit, env)
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else _home(env) / ".config"
    return base / "ferryman" / "config.yaml"


def load_config(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Defaults deep-merged with the user's file, validated; `ConfigError` if unusable.

    `path` (from --config) and $FERRYMAN_CONFIG are explicit choices, so a missing
    file is an error there; the XDG file is optional.
    """
    env = os.environ if env is None else env
    defaults = _parse(default_config_text(), f"<ferryman>/config/{_DEFAULT_NAME}")
    required = path is not None or bool(env.get("FERRYMAN_CONFIG"))
    user_path = Path(path) if path is not None else user_config_path(env)
    user = _read_user_file(user_path, required=required, env=env)
    data = _deep_merge(defaults.data, user.data if user else {})
    origins = {**defaults.lines, **(user.lines if user else {})}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        shown = _display(user_path, env)
        problems = sorted(_describe_error(err, origins, shown) for err in exc.errors())
        raise ConfigError("\n".join(text for _, _, text in problems), user_path) from None
    saved = load_saved_forwards(forwards_path(user_path), env=env)
    if saved:
        # Sets saved from `:pf` win over sets of the same name in the config file.
        kept = [s for s in config.forwards.sets if s.name not in {t.name for t in saved}]
        config = config.model_copy(update={"forwards": config.forwards.model_copy(update={"sets": kept + saved})})
    return config


# ---- forward sets saved from the `:pf` view ------------------------------------------------

_FORWARDS_NAME = "forwards.yaml"
_FORWARDS_HEADER = (
    "# Forward sets saved from Ferryman's :pf view (\"save these forwards\").\n"
    "# Ferryman rewrites this file when you save a set; edit it, or define sets under\n"
    "# `forwards.sets` in config.yaml (a set saved here wins over one of the same name there).\n"
)


def forwards_path(config_path: Path) -> Path:
    """Saved forward sets live beside the config file, in a file Ferryman owns: saving
    never rewrites (and loses the comments of) the user's own config.yaml."""
    return config_path.with_name(_FORWARDS_NAME)


class _SavedForwards(_Section):
    sets: list[ForwardSetConfig] = Field(default_factory=list)


def load_saved_forwards(path: Path, *, env: Mapping[str, str] | None = None) -> list[ForwardSetConfig]:
    env = os.environ if env is None else env
    parsed = _read_user_file(path, required=False, env=env)
    if parsed is None:
        return []
    try:
        return _SavedForwards.model_validate(parsed.data).sets
    except ValidationError as exc:
        shown = _display(path, env)
        problems = sorted(_describe_error(err, parsed.lines, shown) for err in exc.errors())
        raise ConfigError("\n".join(text for _, _, text in problems), path) from None


def save_forward_set(path: Path, name: str, specs: list[ForwardSpec], *, autostart: bool = True) -> None:
    """Add or replace the set `name` in the saved-forwards file at `path` (written whole,
    through a temporary file, so a crash never leaves half a file)."""
    sets = [s for s in load_saved_forwards(path) if s.name != name]
    sets.append(ForwardSetConfig(name=name, autostart=autostart, forwards=[ForwardEntryConfig.of(s) for s in specs]))
    doc = {"sets": [s.model_dump(exclude_defaults=False) for s in sets]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(_FORWARDS_HEADER + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


# ---- reading --------------------------------------------------------------------------

Origin = tuple[str, int]  # (file as shown to the user, 1-based line)
KeyPath = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A YAML document's data and the line each key path was written on."""

    data: dict[str, Any]
    lines: dict[KeyPath, Origin]


def _read_user_file(path: Path, *, required: bool, env: Mapping[str, str]) -> _Parsed | None:
    shown = _display(path, env)
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate an editor's BOM
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{shown}: config file not found", path) from None
        return None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {exc.start}: {exc.reason})", path) from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}", path) from None
    return _parse(text, shown, path)


def _parse(text: str, shown: str, path: Path | None = None) -> _Parsed:
    """Parse once into both the data and the key-path → line map."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_message(exc, shown), path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: {exc}", path) from None
    finally:
        loader.dispose()
    if data is None:  # an empty file, or only comments: no overrides
        return _Parsed({}, {})
    if not isinstance(data, dict):
        line = node.start_mark.line + 1
        raise ConfigError(
            f"{shown}:{line}: the top level must be a mapping of sections "
            f"({', '.join(Config.model_fields)}), not {_kind(data)}",
            path,
        )
    lines: dict[KeyPath, Origin] = {}
    duplicates = _index_lines(node, shown, lines)
    if duplicates:
        raise ConfigError("\n".join(duplicates), path)
    return _Parsed(data, lines)


def _yaml_message(exc: yaml.MarkedYAMLError, shown: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    return f"{where}: {problem}{context}"


def _index_lines(node: yaml.Node, shown: str, lines: dict[KeyPath, Origin]) -> list[str]:
    """Record the line of every key and sequence item; return duplicate-key problems.

    PyYAML lets a repeated key silently win; in a config that is a lost edit, so
    duplicates are reported. A node reached again through an alias is not walked
    again: anchors may be recursive, and a problem in one has its first line anyway.
    """
    problems: list[tuple[int, str]] = []
    visited: set[int] = set()
    pending: list[tuple[yaml.Node, KeyPath]] = [(node, ())]
    while pending:
        current, at = pending.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in current.value:
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in first_line:
                    where = _format_path((*at, key))
                    problems.append(
                        (line, f"{shown}:{line}: {where}: duplicate key (first set on line {first_line[key]})")
                    )
                first_line.setdefault(key, line)
                lines.setdefault((*at, key), (shown, line))
                pending.append((value_node, (*at, key)))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines.setdefault((*at, str(index)), (shown, item.start_mark.line + 1))
                pending.append((item, (*at, str(index))))
    return [text for _, text in sorted(problems)]


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; lists and scalars replace.

    A section left empty (`ui:` with every child commented out) reads as null; it
    keeps the defaults rather than erasing the section.
    """
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _deep_merge(current, value)
        elif isinstance(current, dict) and value is None:
            continue
        else:
            merged[key] = value
    return merged


# ---- turning validation errors into sentences ------------------------------------------

_FRIENDLY_MESSAGES = {
    "model_type": "expected a mapping of keys, not {kind}",
    "dict_type": "expected a mapping of keys, not {kind}",
    "path_type": "expected a file path (a string), not {kind}",
    "bool_type": "expected true or false, not {kind}",
    "bool_parsing": "expected true or false, not {value!r}",
}


def _describe_error(
    err: Mapping[str, Any], origins: Mapping[KeyPath, Origin], fallback: str
) -> tuple[str, int, str]:
    """One pydantic error → (file, line, "file:line: key.path: message")."""
    loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # the mapping key itself is wrong
    if is_key:
        loc = loc[:-1]
    shown, line = _origin(loc, origins, fallback)
    if is_key:
        where = f"{_format_path(loc[:-1])}: key {loc[-1]!r}"
    else:
        where = _format_path(loc)
    message = _message(err, loc)
    prefix = f"{shown}:{line}" if line else shown
    return shown, line, f"{prefix}: {where}: {message}"


def _message(err: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown_key_message(str(loc[-1]), _known_keys(loc[:-1]))
    if kind in _FRIENDLY_MESSAGES:
        value = err.get("input")
        return _FRIENDLY_MESSAGES[kind].format(kind=_kind(value), value=value)
    return str(err["msg"])


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})"


def _known_keys(parent: tuple[Any, ...]) -> list[str]:
    """Field names of the model at `parent`, for suggesting what a typo meant."""
    model: type[BaseModel] = Config
    for part in parent:
        if isinstance(part, int):  # an item of a list of models (health.urls[0])
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if get_origin(annotation) is list:
            (annotation,) = get_args(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _origin(loc: tuple[Any, ...], origins: Mapping[KeyPath, Origin], fallback: str) -> Origin:
    """Where the value at `loc` was written, else where its nearest parent was.

    Line 0 means "no line known": the message then names only the file.
    """
    path = tuple(str(part) for part in loc)
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return fallback, 0


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _format_path(loc: tuple[Any, ...]) -> str:
    """('ui', 'theme') → ui.theme; ('a', 0) → a[0]; odd keys are quoted: keymap['a.b']."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text or "(top level)"


def _kind(value: Any) -> str:
    """A value's type in YAML's words, for messages read by people who wrote YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# ---- paths ------------------------------------------------------------------------------


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME", "")
    return Path(home) if home else Path.home()


def _expand_home(value: str, env: Mapping[str, str]) -> Path:
    """`~/x` → $HOME/x using `env`, so tests and callers control it."""
    if value == "~" or value.startswith("~/"):
        return _home(env) / value[2:]
    return Path(value)


def _display(path: Path, env: Mapping[str, str]) -> str:
    """The path as the user would write it: ~/.config/... rather than /home/me/...."""
    home = _home(env)
    if path.is_absolute():
        try:
            return f"~/{path.relative_to(home)}"
        except ValueError:
            pass
    return str(path)
