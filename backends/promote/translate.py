"""A resolved Compose service -> Kubernetes objects, findings and a readiness checklist.

Pure: no I/O, no clock, same input -> same output (file contents come in on the
`ComposeService`). Every key of the service is either mapped, or reported by name
with the reason; a key this module has never heard of is reported too, so nothing
is dropped silently (kompose's worst habit).

Choices, and why:
- Always a Deployment, never a StatefulSet: Compose's scaled containers share one
  named volume, and so do a Deployment's replicas on one PVC; a StatefulSet would
  give each replica its own empty volume, which is not what ran in Compose. With a
  PVC the strategy is Recreate, so an old and a new pod never run on the same data
  directory at once (a database's lock file) and an RWO volume never blocks a rollout.
- Always a Service, named like the Compose service: other services reach it by that
  name in the cluster as they did on the Compose network. The Service listens on the
  container ports (what Compose peers used), never on the host ports (kompose's trap);
  a service without ports gets a headless Service, whose name still resolves.
- Compose `entrypoint` -> Kubernetes `command`, Compose `command` -> `args`: the same
  override rules (setting either entrypoint drops the image's CMD in both).
- `$` is escaped where Kubernetes expands `$(VAR)` (command, args, env values), so the
  container gets exactly the strings Compose gave it.
- `enableServiceLinks: false`: Kubernetes would otherwise inject DB_PORT=tcp://… for
  every Service, which breaks apps reading DB_PORT as a number; Compose injects none.
- `automountServiceAccountToken: false`: a Compose container had no cluster credentials.
- Only fields that exist in Kubernetes 1.29 are used, so the objects apply to 1.29+.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from backends.promote.model import (
    ChecklistItem,
    ComposeService,
    Finding,
    HostPort,
    Severity,
    Status,
    TranslateOptions,
    Translation,
)
from backends.promote.names import (
    data_key,
    is_qualified_key,
    kube_name,
    label_value,
    port_name,
)
from backends.promote.syntax import (
    MountSpec,
    PortSpec,
    SyntaxProblem,
    as_list,
    env_text,
    read_command,
    read_expose,
    read_hosts,
    read_mount,
    read_pairs,
    read_port,
)
from backends.promote.units import (
    UnitError,
    cpu_quantity,
    memory_quantity,
    parse_bytes,
    parse_cpus,
    parse_duration,
    whole_seconds,
)

MANAGED_BY = "ferryman"
NAME_LABEL = "app.kubernetes.io/name"
SELECTOR_LABEL = "app.kubernetes.io/instance"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# The Compose names as written ("My_Service.v2"), which labels cannot always hold:
# what demote and the workloads table use to find their way back.
PROJECT_ANNOTATION = "ferryman.io/compose-project"
SERVICE_ANNOTATION = "ferryman.io/compose-service"

# The migration checklist (shared/seeds' "Migration Checklist", plus the image), in its order.
CHECKLIST_TOPICS = (
    "image", "environment", "health checks", "graceful shutdown", "resource limits", "persistent volumes",
    "dependencies", "network policies", "secrets", "monitoring", "logging",
)

# Docker's defaults when a healthcheck leaves a timing out.
_DOCKER_INTERVAL = 30.0
_DOCKER_TIMEOUT = 30.0
_DOCKER_RETRIES = 3
_DOCKER_STOP_GRACE = 10

# Whole words of an environment variable's name that make its value a secret.
_SECRET_WORDS = frozenset({"PASSWORD", "PASSWD", "PASS", "SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIAL",
                           "CREDENTIALS", "PRIVATE", "AUTH", "SALT", "PASSPHRASE", "CERT"})
# ... and parts of a word that do (DBPASSWORD, GITHUB_ACCESSTOKEN).
_SECRET_PARTS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "APIKEY", "PRIVATEKEY", "ACCESSKEY")
# user:password@ in a URL (DATABASE_URL=postgres://app:hunter2@db/app).
_URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
_SECRET_FILE = re.compile(r"(^|[._-])(key|pem|p12|pfx|secret|secrets|password|passwd|token|credentials?|htpasswd|env)($|[._-])",
                          re.IGNORECASE)

# Sysctls the kubelet allows without --allowed-unsafe-sysctls (Kubernetes 1.29).
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})

# Keys the walk below maps (or reports with a reason of its own).
_MAPPED_KEYS = frozenset({
    "image", "build", "pull_policy", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "healthcheck", "deploy", "mem_limit", "mem_reservation", "cpus", "cpu_quota", "cpu_period", "scale",
    "restart", "volumes", "tmpfs", "shm_size", "configs", "secrets", "user", "group_add", "working_dir",
    "cap_add", "cap_drop", "privileged", "read_only", "security_opt", "sysctls", "stop_grace_period",
    "extra_hosts", "depends_on", "labels", "annotations", "hostname", "tty", "stdin_open",
    "init", "dns", "dns_search", "dns_opt", "networks", "network_mode", "links", "post_start", "pre_stop",
})

# Keys with no Kubernetes counterpart, and what the user should know about each.
_NOT_CARRIED: dict[str, tuple[Severity, str]] = {
    "container_name": (Severity.INFO, "pods get generated names; the Deployment and Service are named after the service"),
    "profiles": (Severity.INFO, "the Deployment runs whatever profiles are active in Compose"),
    "extends": (Severity.INFO, "already merged into the service by `compose config`"),
    "label_file": (Severity.INFO, "already merged into labels by `compose config`"),
    "ulimits": (Severity.WARNING, "Kubernetes has no per-container ulimits; the node's container runtime defaults apply"),
    "logging": (Severity.WARNING, ("the logging driver is not carried over: the cluster keeps stdout/stderr on the node, "
                "read by `kubectl logs` and Ferryman's log view")),
    "pid": (Severity.WARNING, "sharing a PID namespace (hostPID or another container's) is not carried over"),
    "ipc": (Severity.WARNING, "IPC namespace modes are not carried over (pods have their own)"),
    "uts": (Severity.WARNING, "UTS namespace modes are not carried over"),
    "userns_mode": (Severity.WARNING, "user namespace modes are not carried over"),
    "cgroup": (Severity.WARNING, "cgroup namespace modes are not carried over"),
    "cgroup_parent": (Severity.WARNING, "the kubelet places pods in its own cgroups"),
    "devices": (Severity.WARNING, "host devices cannot be mapped into a pod without a device plugin"),
    "device_cgroup_rules": (Severity.WARNING, "device cgroup rules have no Kubernetes counterpart"),
    "gpus": (Severity.WARNING, "GPUs need the cluster's device plugin (a resources limit such as nvidia.com/gpu)"),
    "isolation": (Severity.WARNING, "isolation technology is chosen by the node"),
    "runtime": (Severity.WARNING, "a container runtime is chosen with a RuntimeClass in the cluster"),
    "storage_opt": (Severity.WARNING, "storage driver options are chosen by the node"),
    "oom_kill_disable": (Severity.WARNING, "the kubelet always lets the kernel OOM-kill over the memory limit"),
    "oom_score_adj": (Severity.WARNING, "the kubelet sets OOM scores from the pod's QoS class"),
    "pids_limit": (Severity.WARNING, "the PID limit is set per node by the kubelet (--pod-max-pids)"),
    "cpu_shares": (Severity.WARNING, "relative CPU shares are not carried over: Kubernetes derives them from cpu requests"),
    "cpu_count": (Severity.WARNING, "not carried over (Windows only)"),
    "cpu_percent": (Severity.WARNING, "not carried over (Windows only)"),
    "cpuset": (Severity.WARNING, "pinning to CPUs needs the kubelet's static CPU manager"),
    "cpu_rt_runtime": (Severity.WARNING, "real-time CPU scheduling is not carried over"),
    "cpu_rt_period": (Severity.WARNING, "real-time CPU scheduling is not carried over"),
    "mem_swappiness": (Severity.WARNING, "swap behaviour is set per node"),
    "memswap_limit": (Severity.WARNING, "swap limits are set per node"),
    "blkio_config": (Severity.WARNING, "block I/O weights and limits have no Kubernetes counterpart"),
    "mac_address": (Severity.WARNING, "pods get addresses from the cluster network"),
    "platform": (Severity.WARNING, "the node's architecture decides; deliver an image built for it"),
    "volumes_from": (Severity.WARNING, ("mounting another container's volumes is not carried over; "
                     "declare the volumes on this service")),
    "credential_spec": (Severity.WARNING, "not carried over (Windows gMSA)"),
    "develop": (Severity.INFO, "`compose watch` settings only matter to Compose"),
    "attach": (Severity.INFO, "only matters to `compose up`'s output"),
    "domainname": (Severity.WARNING, "a pod's domain comes from a headless Service (subdomain); not carried over"),
    "external_links": (Severity.WARNING, "containers outside the project are not reachable by these names in the cluster"),
    "use_api_socket": (Severity.WARNING, "the cluster's pods have no Docker API socket"),
    "models": (Severity.WARNING, "Compose models are not carried over"),
    "provider": (Severity.WARNING, "Compose providers are not carried over"),
    "stop_signal": (Severity.WARNING, ("Kubernetes stops containers with the image's STOPSIGNAL (SIGTERM if none): "
                    "bake this signal into the image or handle SIGTERM")),
}


def _no_expansion(text: str) -> str:
    # Kubernetes expands $(VAR) and turns $$ into $ in command, args and env values;
    # doubling exactly the "$" before "$" or "(" makes it give back the literal text.
    return re.sub(r"\$(?=[$(])", "$$", text)


def _looks_secret(name: str, value: str | None = None) -> bool:
    words = [w for w in re.split(r"[^A-Z0-9]+", name.upper()) if w]
    if words and words[-1] in ("FILE", "PATH", "DIR") and value and value.startswith("/"):
        # POSTGRES_PASSWORD_FILE=/run/secrets/db: where a secret is, not the secret.
        return False
    if any(w in _SECRET_WORDS or any(p in w for p in _SECRET_PARTS) for w in words):
        return True
    return bool(value and _URL_CREDENTIALS.search(value))


def _has_fixed_tag(image: str) -> bool:
    if "@" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _project_scoped(project: str, key: str, definition: Mapping[str, Any]) -> str:
    # Compose names a project's volume/secret "<project>_<key>"; an external one is
    # looked up by its key as is.
    return key if definition.get("external") else f"{project}_{key}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _Translator:
    def __init__(self, service: ComposeService, namespace: str, image: str | None, options: TranslateOptions) -> None:
        self.svc = service
        self.cfg: Mapping[str, Any] = service.config
        self.namespace = namespace
        self.image_override = image
        self.options = options
        self.name = kube_name(service.name)
        self.selector = {SELECTOR_LABEL: label_value(f"{service.project}-{self.name}")}
        self.labels = {
            NAME_LABEL: self.name,
            **self.selector,
            PART_OF_LABEL: label_value(service.project),
            MANAGED_BY_LABEL: MANAGED_BY,
        }
        self.findings: list[Finding] = []
        self.checklist: dict[str, ChecklistItem] = {}
        self.config_maps: dict[str, dict] = {}
        self.secrets: dict[str, dict] = {}
        self.pvcs: dict[str, dict] = {}
        self.container: dict[str, Any] = {"name": self.name}
        self.container_security: dict[str, Any] = {}
        self.pod: dict[str, Any] = {}
        self.pod_security: dict[str, Any] = {}
        self.pod_volumes: dict[str, dict] = {}
        self.mounts: list[dict] = []
        self.init_containers: list[dict] = []
        self.annotations: dict[str, str] = {}
        self.ports: list[PortSpec] = []
        self.host_ports: list[HostPort] = []
        self.secret_env: list[str] = []  # environment variables moved into the env Secret
        self.bind_keys: dict[str, str] = {}  # data key -> the bind-mounted file it holds
        self.replicas = 1
        self.uses_pvc = False

    # -- helpers ------------------------------------------------------------------

    def report(self, key: str, message: str, severity: Severity = Severity.WARNING) -> None:
        self.findings.append(Finding(key, message, severity))

    def check(self, topic: str, status: Status, detail: str) -> None:
        self.checklist[topic] = ChecklistItem(topic, status, detail)

    def meta(self, name: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": dict(self.labels)}
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta

    def seconds(self, key: str, value: object, minimum: int = 1) -> int | None:
        try:
            return whole_seconds(parse_duration(value), minimum)
        except UnitError as exc:
            self.report(key, f"{exc}: left out")
            return None

    def pod_volume(self, name: str, source: dict) -> str:
        """Add a pod volume (once per source); a name already taken by another source
        gets a numbered twin rather than silently mounting the wrong thing."""
        wanted, n = name, 1
        while name in self.pod_volumes and self.pod_volumes[name] != {"name": name, **source}:
            n += 1
            name = kube_name(wanted, str(n))
        self.pod_volumes.setdefault(name, {"name": name, **source})
        return name

    def mount(self, volume: str, target: str, read_only: bool = False, sub_path: str | None = None) -> None:
        mount: dict[str, Any] = {"name": volume, "mountPath": target}
        if sub_path:
            mount["subPath"] = sub_path
        if read_only:
            mount["readOnly"] = True
        self.mounts.append(mount)

    # -- the walk -----------------------------------------------------------------

    def run(self) -> Translation:
        self.names()
        self.image()
        self.commands()
        self.environment()
        self.network_ports()
        self.healthcheck()
        self.deploy()
        self.restart()
        self.storage()
        self.security()
        self.pod_settings()
        self.networking()
        self.dependencies()
        for key in self.cfg:
            if key in _MAPPED_KEYS:
                continue
            if key.startswith("x-"):
                self.report(key, "extension field: only meaningful to tools that read it", Severity.INFO)
            elif key in _NOT_CARRIED:
                severity, reason = _NOT_CARRIED[key]
                self.report(key, reason, severity)
            else:
                self.report(key, "not carried over: Ferryman knows no Kubernetes counterpart for this key")
        self.observability()
        return Translation(
            name=self.name,
            objects=self.objects(),
            warnings=self.findings,
            checklist=[self.checklist[topic] for topic in CHECKLIST_TOPICS],
            host_ports=self.host_ports,
        )

    def names(self) -> None:
        if self.name != self.svc.name:
            self.report("name", f"Kubernetes names must be DNS labels: the Deployment, Service and container are "
                        f"'{self.name}'; clients in the cluster must use that name, not '{self.svc.name}'",
                        Severity.INFO)
        clashes = sorted(other for other in self.svc.project_services
                         if other != self.svc.name and kube_name(other) == self.name)
        if clashes:
            both = " and ".join(f"'{n}'" for n in sorted([self.svc.name, *clashes]))
            self.report("name", f"{both} all become '{self.name}' in Kubernetes: promoting more than one would make "
                        f"them overwrite each other's objects")

    # -- image and command --------------------------------------------------------

    def image(self) -> None:
        compose_image = self.cfg.get("image")
        build = self.cfg.get("build")
        pull_policy = self.cfg.get("pull_policy")
        if self.image_override:
            policy = "Never" if self.options.image_imported else "IfNotPresent"
            self.container["image"] = self.image_override
            self.container["imagePullPolicy"] = policy
            how = "imported into the node" if self.options.image_imported else "delivered"
            self.check("image", Status.OK, f"{self.image_override}, {how}, pull policy {policy}: the cluster "
                       f"never asks a registry for a local image")
            if build is not None:
                self.report("build", f"the image is built by Compose; the promotion delivers it as "
                            f"{self.image_override}", Severity.INFO)
            if pull_policy is not None:
                self.report("pull_policy", f"replaced by imagePullPolicy {policy} for the delivered image",
                            Severity.INFO)
            return
        if not compose_image:
            # What Compose v2 names an image it builds; the user has to deliver it anyway.
            compose_image = f"{self.svc.project}-{self.svc.name}"
            self.report("image", f"no image: the Deployment uses '{compose_image}', which must be built and "
                        f"delivered to the cluster")
        self.container["image"] = str(compose_image)
        if build is not None:
            self.report("build", f"the image is built locally: it must be built and delivered to the cluster "
                        f"(promotion does that); as written, the cluster pulls {compose_image} from a registry")
            self.check("image", Status.MISSING, f"{compose_image} is built locally: deliver it to the cluster "
                       f"with a unique tag")
        elif not _has_fixed_tag(str(compose_image)):
            self.check("image", Status.WARN, f"{compose_image} has no fixed tag: Kubernetes pulls it on every "
                       f"start (policy Always) and replicas may run different builds")
        else:
            self.check("image", Status.OK, f"{compose_image} is pulled by the cluster from its registry")
        if pull_policy is not None:
            mapped = {"always": "Always", "never": "Never", "missing": "IfNotPresent",
                      "if_not_present": "IfNotPresent"}.get(str(pull_policy))
            if mapped:
                self.container["imagePullPolicy"] = mapped
            else:
                self.report("pull_policy", f"'{pull_policy}' has no Kubernetes counterpart: the cluster's "
                            f"default policy applies")

    def commands(self) -> None:
        try:
            entrypoint = read_command(self.cfg.get("entrypoint"))
            command = read_command(self.cfg.get("command"))
        except SyntaxProblem as exc:
            self.report("command", f"{exc}: the image's own command runs instead")
            return
        if entrypoint == []:
            # Compose can clear the image's ENTRYPOINT; Kubernetes can only replace it.
            if command:
                self.container["command"] = [_no_expansion(a) for a in command]
                self.report("entrypoint", "the empty entrypoint is carried over by running `command` as the "
                            "whole command line", Severity.INFO)
            else:
                self.report("entrypoint", "an empty entrypoint clears the image's ENTRYPOINT in Compose; "
                            "Kubernetes cannot clear it without a command: the image's ENTRYPOINT runs")
            return
        if entrypoint is not None:
            self.container["command"] = [_no_expansion(a) for a in entrypoint]
        if command:
            self.container["args"] = [_no_expansion(a) for a in command]

    # -- environment --------------------------------------------------------------

    def environment(self) -> None:
        if self.cfg.get("env_file") is not None:
            self.report("env_file", "already inlined into environment by `compose config`: the variables are "
                        "carried over, the file itself is not", Severity.INFO)
        try:
            pairs = read_pairs(self.cfg.get("environment"), "environment")
        except SyntaxProblem as exc:
            self.report("environment", f"{exc}: no variables carried over")
            pairs = []
        env: list[dict[str, Any]] = []
        secret_data: dict[str, str] = {}
        secret_name = kube_name(self.name, "env")
        unset: list[str] = []
        odd_names: list[str] = []
        for name, value in pairs:
            if value is None:
                unset.append(name)
                continue
            text = env_text(value)
            if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", name):
                odd_names.append(name)
            if _looks_secret(name, text):
                key = data_key(name)
                secret_data[key] = _b64(text.encode())
                env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}})
            else:
                env.append({"name": name, "value": _no_expansion(text)})
        if env:
            self.container["env"] = env
        if secret_data:
            self.secrets[secret_name] = {
                "apiVersion": "v1", "kind": "Secret", "metadata": self.meta(secret_name),
                "type": "Opaque", "data": secret_data,
            }
        if unset:
            self.report("environment", f"no value in the resolved project for {', '.join(unset)} (Compose passes "
                        f"the shell's value at `up` time): not set in the cluster")
        if odd_names:
            self.report("environment", f"{', '.join(odd_names)}: Kubernetes before 1.32 refuses variable names "
                        f"that are not C-like identifiers")
        plain = len(env) - len(secret_data)
        detail = f"{plain} variable(s) set in the Deployment"
        if secret_data:
            detail += f", {len(secret_data)} secret-looking one(s) ({', '.join(sorted(secret_data))}) in Secret {secret_name}"
        if unset:
            self.check("environment", Status.WARN, f"{detail}; {len(unset)} without a value: {', '.join(unset)}")
        else:
            self.check("environment", Status.OK, detail if env else "no environment variables")
        self.secret_env = sorted(secret_data)

    # -- ports --------------------------------------------------------------------

    def network_ports(self) -> None:
        seen: set[tuple[int, str]] = set()

        def add(spec: PortSpec) -> None:
            if (spec.target, spec.protocol) not in seen:
                seen.add((spec.target, spec.protocol))
                self.ports.append(spec)

        for i, entry in enumerate(as_list(self.cfg.get("ports"), "ports")):
            key = f"ports[{i}]"
            try:
                specs = read_port(entry)
            except SyntaxProblem as exc:
                self.report(key, f"{exc}: not carried over")
                continue
            for spec in specs:
                add(spec)
                self.host_port(key, spec)
        for i, entry in enumerate(as_list(self.cfg.get("expose"), "expose")):
            try:
                for spec in read_expose(entry):
                    add(spec)
            except SyntaxProblem as exc:
                self.report(f"expose[{i}]", f"{exc}: not carried over")
        if self.ports:
            names: set[str] = set()
            container_ports = []
            for spec in self.ports:
                name = port_name(spec.protocol, spec.target, spec.name)
                if name in names:
                    name = port_name(spec.protocol, spec.target)
                names.add(name)
                port = {"name": name, "containerPort": spec.target, "protocol": spec.protocol}
                container_ports.append(port)
            self.container["ports"] = container_ports

    def host_port(self, key: str, spec: PortSpec) -> None:
        if spec.mode == "host":
            self.report(key, "swarm's host publishing mode has no meaning here", Severity.INFO)
        if spec.published_range:
            self.report(key, f"Compose picks a host port from {spec.published_range} for container port "
                        f"{spec.target}: there is no fixed port to keep forwarding", Severity.INFO)
            return
        if spec.published is None:
            self.report(key, f"container port {spec.target} is published on a random host port by Compose: "
                        f"reach it through a port-forward after promotion", Severity.INFO)
            return
        if spec.protocol != "TCP":
            self.report(key, f"host port {spec.published}/{spec.protocol.lower()}: Kubernetes port-forwards carry "
                        f"TCP only, so localhost:{spec.published}/{spec.protocol.lower()} stops answering")
            return
        where = f"{spec.host_ip}:{spec.published}" if spec.host_ip else f"localhost:{spec.published}"
        self.report(key, f"host port {spec.published} -> container port {spec.target}: the Service listens on "
                    f"{spec.target} in the cluster; the promotion's port-forward keeps {where} answering",
                    Severity.INFO)
        self.host_ports.append(HostPort(spec.published, spec.target, spec.protocol, spec.host_ip))

    # -- health -------------------------------------------------------------------

    def healthcheck(self) -> None:
        hc = self.cfg.get("healthcheck")
        image_hc = self._from_image(self.options.image_healthcheck) if self.options.image_healthcheck else None
        source = "the Compose healthcheck"
        if hc is None and image_hc:
            hc, source = image_hc, "the image's HEALTHCHECK"
        if hc is None:
            self.check("health checks", Status.MISSING, "no healthcheck: the pod is Ready as soon as its process "
                       "starts, and a hung process is never restarted")
            return
        if not isinstance(hc, Mapping):
            self.report("healthcheck", f"not a mapping: {hc!r}; no probes")
            self.check("health checks", Status.MISSING, "the healthcheck cannot be read: no probes")
            return
        known = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
        for extra in sorted(set(hc) - known):
            self.report(f"healthcheck.{extra}", "not carried over: no probe counterpart")
        test = hc.get("test")
        if hc.get("disable") or test in (["NONE"], "NONE"):
            self.report("healthcheck", "disabled in Compose: no probes", Severity.INFO)
            self.check("health checks", Status.MISSING, "the healthcheck is disabled: the pod is Ready as soon as "
                       "its process starts")
            return
        if test is None and image_hc:
            # Compose overriding only the timings keeps the image's test, as Docker does.
            test = image_hc["test"]
        argv = self._probe_command(test)
        if argv is None:
            self.check("health checks", Status.MISSING, "the healthcheck has no usable test: no probes")
            return
        interval = self.seconds("healthcheck.interval", hc.get("interval", _DOCKER_INTERVAL)) or 30
        timeout = self.seconds("healthcheck.timeout", hc.get("timeout", _DOCKER_TIMEOUT)) or 30
        retries = hc.get("retries") or _DOCKER_RETRIES
        try:
            retries = max(1, int(retries))
        except (TypeError, ValueError):
            self.report("healthcheck.retries", f"not a number: {retries!r}; 3 used")
            retries = _DOCKER_RETRIES
        for probe in ("livenessProbe", "readinessProbe"):
            self.container[probe] = {"exec": {"command": list(argv)}, "periodSeconds": interval,
                                     "timeoutSeconds": timeout, "failureThreshold": retries}
        start = 0.0
        if hc.get("start_period") is not None:
            try:
                start = parse_duration(hc["start_period"])
            except UnitError as exc:
                self.report("healthcheck.start_period", f"{exc}: left out")
        shown = " ".join(argv)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        detail = (f"from {source}: liveness and readiness run `{shown}` every {interval}s "
                  f"(timeout {timeout}s, {retries} failures)")
        if start > 0:
            # Docker ignores failures during start_period but counts a success; a startup
            # probe does the same, and holds liveness back until the app is up.
            period = interval
            if hc.get("start_interval") is not None:
                period = self.seconds("healthcheck.start_interval", hc["start_interval"]) or interval
            self.container["startupProbe"] = {
                "exec": {"command": list(argv)}, "periodSeconds": period, "timeoutSeconds": timeout,
                "failureThreshold": math.ceil(start / period) + retries,
            }
            detail += f", a startup probe allows {whole_seconds(start)}s to start"
        elif hc.get("start_interval") is not None:
            self.report("healthcheck.start_interval", "only matters with a start_period: not carried over",
                        Severity.INFO)
        self.report("healthcheck", f"mapped to liveness and readiness probes; unlike Compose, which only marks the "
                    f"container unhealthy, Kubernetes restarts it after {retries} failed probes", Severity.INFO)
        self.check("health checks", Status.OK, detail)

    @staticmethod
    def _from_image(image_hc: Mapping[str, Any]) -> dict[str, Any]:
        # Docker's API gives durations in nanoseconds.
        hc: dict[str, Any] = {"test": image_hc.get("Test")}
        for api, key in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period"),
                         ("StartInterval", "start_interval")):
            if image_hc.get(api):
                hc[key] = image_hc[api] / 1e9
        if image_hc.get("Retries"):
            hc["retries"] = image_hc["Retries"]
        return hc

    def _probe_command(self, test: object) -> list[str] | None:
        if isinstance(test, str):
            # A plain string is run by a shell, like CMD-SHELL.
            return ["/bin/sh", "-c", test] if test.strip() else None
        if not isinstance(test, list) or not test:
            self.report("healthcheck.test", f"no test ({test!r}): no probes")
            return None
        kind, rest = str(test[0]), [str(a) for a in test[1:]]
        if kind == "CMD" and rest:
            return rest
        if kind == "CMD-SHELL" and rest:
            # An exec probe runs no shell: without one, "curl -f x || exit 1" would look
            # for a program called "curl -f x || exit 1" (kompose's bug).
            return ["/bin/sh", "-c", " ".join(rest)]
        self.report("healthcheck.test", f"cannot read test {test!r}: no probes")
        return None

    # -- resources and replicas -----------------------------------------------------

    def deploy(self) -> None:
        deploy = self.cfg.get("deploy") or {}
        if not isinstance(deploy, Mapping):
            self.report("deploy", f"not a mapping: {deploy!r}")
            deploy = {}
        self.resources(deploy.get("resources"))
        replicas = deploy.get("replicas")
        if replicas is None:
            replicas = self.cfg.get("scale")
        elif self.cfg.get("scale") not in (None, replicas):
            self.report("scale", f"deploy.replicas ({replicas}) wins over scale ({self.cfg['scale']})")
        if replicas is not None:
            try:
                self.replicas = max(0, int(replicas))
            except (TypeError, ValueError):
                self.report("deploy.replicas", f"not a number: {replicas!r}; 1 replica")
        if deploy.get("mode") == "global":
            self.report("deploy.mode", "global (one per node) is not carried over: a DaemonSet would be needed; "
                        "the Deployment runs the replica count")
        elif deploy.get("mode") not in (None, "replicated"):
            self.report("deploy.mode", f"'{deploy['mode']}' is not carried over")
        try:
            deploy_labels = read_pairs(deploy.get("labels"), "deploy.labels")
        except SyntaxProblem as exc:
            self.report("deploy.labels", f"{exc}: left out")
            deploy_labels = []
        for key, value in deploy_labels:
            if is_qualified_key(key):
                self.annotations[key] = env_text(value) if value is not None else ""
            else:
                self.report("deploy.labels", f"'{key}' is not a valid annotation key: left out")
        reasons = {
            "placement": "node constraints and preferences are not carried over (nodeSelector/affinity in the cluster)",
            "update_config": "the Deployment's own rolling update settings apply",
            "rollback_config": "`kubectl rollout undo` plays this role",
            "endpoint_mode": "the Service decides how clients reach replicas",
            "restart_policy": "a Deployment's pods always restart (restartPolicy Always)",
        }
        for key in deploy:
            if key in reasons:
                self.report(f"deploy.{key}", reasons[key])
            elif key not in ("resources", "replicas", "mode", "labels"):
                self.report(f"deploy.{key}", "not carried over: Ferryman knows no Kubernetes counterpart")

    def resources(self, spec: object) -> None:
        spec = _mapping(spec)
        limits_in = _mapping(spec.get("limits"))
        reservations_in = _mapping(spec.get("reservations"))
        for key in sorted(set(spec) - {"limits", "reservations"}):
            self.report(f"deploy.resources.{key}", "not carried over")
        for key in sorted(set(limits_in) - {"cpus", "memory"}):
            reason = "the PID limit is set per node by the kubelet" if key == "pids" else "not carried over"
            self.report(f"deploy.resources.limits.{key}", reason)
        for key in sorted(set(reservations_in) - {"cpus", "memory"}):
            reason = ("devices (GPUs) need the cluster's device plugin and an extended resource"
                      if key == "devices" else "not carried over")
            self.report(f"deploy.resources.reservations.{key}", reason)

        def same(a: object, b: object) -> bool:
            for parse in (parse_bytes, parse_cpus):
                try:
                    return parse(a) == parse(b)
                except UnitError:
                    continue
            return str(a) == str(b)

        def pick(deploy_key: str, deploy_value: object, top_key: str, top_value: object) -> tuple[str, object]:
            # Compose v2 prints both forms when both were written; they must agree.
            if deploy_value is not None:
                if top_value is not None and not same(top_value, deploy_value):
                    self.report(top_key, f"{deploy_key} ({deploy_value}) is used; {top_key} ({top_value}) is not")
                return deploy_key, deploy_value
            return top_key, top_value

        cpus_top = self.cfg.get("cpus")
        if cpus_top is None and self.cfg.get("cpu_quota") is not None:
            # cpu_quota/cpu_period is the CFS quota `cpus` is made of (period 100ms by default).
            try:
                cpus_top = int(self.cfg["cpu_quota"]) / int(self.cfg.get("cpu_period") or 100_000)
                self.report("cpu_quota", f"carried over as a CPU limit of {cpus_top:g}", Severity.INFO)
            except (TypeError, ValueError, ZeroDivisionError):
                self.report("cpu_quota", f"cannot read {self.cfg['cpu_quota']!r}: left out")
        elif self.cfg.get("cpu_quota") is not None:
            self.report("cpu_quota", "cpus is set too and wins")
        if self.cfg.get("cpu_period") is not None and self.cfg.get("cpu_quota") is None:
            self.report("cpu_period", "a CFS period alone sets no limit; Kubernetes uses the node's period")

        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        for out, kind, choices in (
            (limits, "cpu", pick("deploy.resources.limits.cpus", limits_in.get("cpus"), "cpus", cpus_top)),
            (limits, "memory", pick("deploy.resources.limits.memory", limits_in.get("memory"),
                                    "mem_limit", self.cfg.get("mem_limit"))),
            (requests, "cpu", ("deploy.resources.reservations.cpus", reservations_in.get("cpus"))),
            (requests, "memory", pick("deploy.resources.reservations.memory", reservations_in.get("memory"),
                                      "mem_reservation", self.cfg.get("mem_reservation"))),
        ):
            key, value = choices
            if value is None:
                continue
            try:
                if kind == "cpu":
                    cpus = parse_cpus(value)
                    if cpus > 0:  # Compose's 0 means "no limit"
                        out[kind] = cpu_quantity(cpus)
                else:
                    n_bytes = parse_bytes(value)
                    if n_bytes > 0:
                        out[kind] = memory_quantity(n_bytes)
            except UnitError as exc:
                self.report(key, f"{exc}: left out")
        for kind in list(requests):
            if kind in limits and _quantity_value(requests[kind]) > _quantity_value(limits[kind]):
                self.report("deploy.resources.reservations", f"the {kind} reservation ({requests[kind]}) is above "
                            f"the limit ({limits[kind]}), which Kubernetes refuses: the reservation is left out")
                del requests[kind]
        resources: dict[str, Any] = {}
        if limits:
            resources["limits"] = limits
        if requests:
            resources["requests"] = requests
        if resources:
            self.container["resources"] = resources
        if not limits:
            self.check("resource limits", Status.MISSING,
                       "no CPU or memory limit: the pod may use the whole node" if not requests else
                       f"requests {_quantities(requests)} but no limit: the pod may use the whole node")
        elif not requests:
            self.check("resource limits", Status.WARN,
                       f"limits {_quantities(limits)}; no reservations, so Kubernetes requests as much as the "
                       f"limits and schedules the pod only where that much is free")
        else:
            self.check("resource limits", Status.OK, f"limits {_quantities(limits)}, requests {_quantities(requests)}")

    def restart(self) -> None:
        restart = self.cfg.get("restart")
        if restart in ("always", "unless-stopped"):
            return  # a Deployment's restartPolicy is Always
        if restart is None:
            self.report("restart", "not set (Compose: never restart); a Deployment's pods always restart",
                        Severity.INFO)
        else:
            self.report("restart", f"'{restart}' is not carried over: a Deployment's pods always restart "
                        f"(restartPolicy Always)")

    # -- storage ------------------------------------------------------------------

    def storage(self) -> None:
        persistent: list[str] = []
        binds: list[str] = []
        for i, entry in enumerate(as_list(self.cfg.get("volumes"), "volumes")):
            key = f"volumes[{i}]"
            try:
                mount = read_mount(entry)
            except SyntaxProblem as exc:
                self.report(key, f"{exc}: not carried over")
                continue
            if mount.type == "volume" and mount.source:
                persistent.append(self.named_volume(key, mount))
            elif mount.type in ("volume", "tmpfs"):
                self.scratch_volume(key, i, mount)
            elif mount.type == "bind":
                if not self.bind_file(key, mount):
                    binds.append(f"{mount.source} -> {mount.target}")
            else:
                self.report(key, f"{mount.type} mounts are not carried over ({mount.target})")
        for i, entry in enumerate(as_list(self.cfg.get("tmpfs"), "tmpfs")):
            path, _, opts = str(entry).partition(":")
            size = None
            for opt in opts.split(","):
                if opt.startswith("size="):
                    size = opt[5:]
            self.scratch_volume(f"tmpfs[{i}]", i, MountSpec(type="tmpfs", target=path,
                                                              extra={"tmpfs": {"size": size}} if size else {}),
                                name=f"tmpfs-{i}")
        if self.cfg.get("shm_size") is not None:
            try:
                size = memory_quantity(parse_bytes(self.cfg["shm_size"]))
                self.mount(self.pod_volume("dshm", {"emptyDir": {"medium": "Memory", "sizeLimit": size}}), "/dev/shm")
                self.report("shm_size", f"a memory-backed emptyDir of {size} on /dev/shm (counts against the "
                            f"memory limit)", Severity.INFO)
            except UnitError as exc:
                self.report("shm_size", f"{exc}: left out")
        self.files("configs", self.svc.configs)
        self.files("secrets", self.svc.secrets)
        if persistent:
            self.uses_pvc = True
            self.check("persistent volumes", Status.WARN,
                       f"PVC {', '.join(persistent)} (default StorageClass, {self.options.volume_size}) start empty: "
                       f"the data in the Docker volume is not copied")
        elif binds:
            self.check("persistent volumes", Status.WARN, f"bind mounts are not carried over: {'; '.join(binds)}")
        else:
            self.check("persistent volumes", Status.OK, "no persistent state to move")

    def named_volume(self, key: str, mount: MountSpec) -> str:
        source = str(mount.source)
        definition = self.svc.volumes.get(source)
        definition = definition if isinstance(definition, Mapping) else {}
        docker_name = str(definition.get("name") or _project_scoped(self.svc.project, source, definition))
        claim = kube_name(docker_name)
        if claim not in self.pvcs:
            self.pvcs[claim] = {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": self.meta(claim),
                # No storageClassName: the cluster's default class (local-path on k3s).
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": self.options.volume_size}}},
            }
        if definition.get("external"):
            self.report(key, f"external volume {docker_name}: a new, empty PVC {claim} is made; copy the data")
        else:
            self.report(key, f"named volume {source} -> PVC {claim} ({self.options.volume_size}, default "
                        f"StorageClass); it starts empty", Severity.INFO)
        for opt in ("driver", "driver_opts", "labels"):
            if definition.get(opt):
                self.report(f"volumes.{source}.{opt}", "volume driver settings are not carried over: the "
                            "StorageClass decides")
        volume_opts = mount.extra.get("volume") or {}
        sub_path = volume_opts.get("subpath") if isinstance(volume_opts, Mapping) else None
        if isinstance(volume_opts, Mapping) and volume_opts.get("nocopy"):
            self.report(key, "nocopy: a PVC is never seeded from the image anyway", Severity.INFO)
        self.mount_flags(key, mount)
        self.mount(self.pod_volume(kube_name(source), {"persistentVolumeClaim": {"claimName": claim}}),
                   mount.target, mount.read_only, sub_path)
        return claim

    def scratch_volume(self, key: str, index: int, mount: MountSpec, name: str | None = None) -> None:
        if mount.type == "tmpfs":
            empty_dir: dict[str, Any] = {"medium": "Memory"}
            tmpfs = mount.extra.get("tmpfs") or {}
            if isinstance(tmpfs, Mapping) and tmpfs.get("size") is not None:
                try:
                    empty_dir["sizeLimit"] = memory_quantity(parse_bytes(tmpfs["size"]))
                except UnitError as exc:
                    self.report(key, f"tmpfs {exc}: no size limit")
            if isinstance(tmpfs, Mapping) and tmpfs.get("mode") is not None:
                self.report(key, "tmpfs mode is not carried over (emptyDir is world-writable)", Severity.INFO)
            volume = self.pod_volume(name or f"volume-{index}", {"emptyDir": empty_dir})
        else:
            # Anonymous volumes live as long as the container in Compose; so does an emptyDir
            # (per pod), which is the closest match.
            self.report(key, f"anonymous volume {mount.target} -> emptyDir (lost when the pod goes)",
                        Severity.INFO)
            volume = self.pod_volume(name or f"volume-{index}", {"emptyDir": {}})
        self.mount(volume, mount.target, mount.read_only)

    def mount_flags(self, key: str, mount: MountSpec) -> None:
        for flag in mount.extra.get("flags") or []:
            self.report(key, f"mount option '{flag}' is not carried over", Severity.INFO)
        for opt in ("consistency", "bind"):
            if mount.extra.get(opt):
                self.report(key, f"mount option {opt} is not carried over", Severity.INFO)

    def bind_file(self, key: str, mount: MountSpec) -> bool:
        """A bind-mounted single file (nginx.conf) is carried over as a copy in a
        ConfigMap (or a Secret when its name looks secret); a directory is not."""
        source = str(mount.source)
        content = self.svc.file_contents.get(source)
        if not isinstance(content, bytes):
            why = f" ({content})" if isinstance(content, str) else ""
            self.report(key, f"bind mount {source} -> {mount.target} is not carried over{why}: the cluster's "
                        f"nodes cannot see this machine's files")
            return False
        secret = bool(_SECRET_FILE.search(source.rsplit("/", 1)[-1]))
        kind = "Secret" if secret else "ConfigMap"
        name = kube_name(self.name, "files")
        basename = source.rsplit("/", 1)[-1]
        item, n = data_key(basename), 1
        # ./a/app.yml and ./b/app.yml both want the key "app.yml".
        while self.bind_keys.get(item, source) != source:
            n += 1
            item = data_key(f"{n}-{basename}")
        self.bind_keys[item] = source
        self._store_file(kind, name, item, content)
        volume = self.pod_volume(f"files-{kind.lower()}",
                                 {"secret": {"secretName": name}} if secret else {"configMap": {"name": name}})
        self.mount(volume, mount.target, True, item)
        note = "" if mount.read_only else "; the mount is read-only in the cluster"
        self.report(key, f"bind mount {source} -> {mount.target} is carried over as a copy in {kind} {name}: later "
                    f"edits on disk are not seen{note}", Severity.INFO)
        return True

    def _store_file(self, kind: str, name: str, key: str, content: bytes) -> None:
        store = self.secrets if kind == "Secret" else self.config_maps
        obj = store.setdefault(name, {"apiVersion": "v1", "kind": kind, "metadata": self.meta(name)})
        if kind == "Secret":
            obj.setdefault("type", "Opaque")
            obj.setdefault("data", {})[key] = _b64(content)
            return
        try:
            obj.setdefault("data", {})[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            obj.setdefault("binaryData", {})[key] = _b64(content)

    def files(self, kind: str, definitions: Mapping[str, Any]) -> None:
        """Service `configs`/`secrets` -> a ConfigMap/Secret per project entry, mounted
        file by file (subPath) where Compose puts it."""
        is_secret = kind == "secrets"
        obj_kind = "Secret" if is_secret else "ConfigMap"
        done: list[str] = []
        missing: list[str] = []
        for i, ref in enumerate(as_list(self.cfg.get(kind), kind)):
            key = f"{kind}[{i}]"
            ref = dict(ref) if isinstance(ref, Mapping) else {"source": ref}
            source = str(ref.get("source") or "")
            definition = definitions.get(source)
            if not source or not isinstance(definition, Mapping):
                self.report(key, f"'{source}' is not defined in the project's top-level {kind}: not carried over")
                continue
            target = str(ref.get("target") or source)
            if not target.startswith("/"):
                target = f"/run/secrets/{target}" if is_secret else f"/{target}"
            for opt in ("uid", "gid"):
                if ref.get(opt) is not None:
                    self.report(f"{key}.{opt}", "file ownership is not carried over (mounted files belong to root; "
                                "fsGroup would change every volume)")
            name = kube_name(str(definition.get("name") or _project_scoped(self.svc.project, source, definition)))
            item = data_key(source)
            if definition.get("external"):
                self.report(key, f"external {kind[:-1]} {source}: create {obj_kind} {name} (key {item}) in the "
                            f"namespace before promoting")
                missing.append(f"create {obj_kind} {name}")
            else:
                content = self._definition_content(key, kind, source, definition)
                if content is None:
                    missing.append(source)
                    continue
                self._store_file(obj_kind, name, item, content)
            mode: dict[str, Any] = {}
            if ref.get("mode") is not None:
                try:
                    raw = ref["mode"]
                    mode["mode"] = int(raw, 8) if isinstance(raw, str) else int(raw)
                except (TypeError, ValueError):
                    self.report(f"{key}.mode", f"cannot read mode {ref['mode']!r}: default mode")
            items = [{"key": item, "path": item, **mode}]
            source_spec = ({"secret": {"secretName": name, "items": items}} if is_secret
                           else {"configMap": {"name": name, "items": items}})
            volume = self.pod_volume(kube_name(kind[:-1], source), source_spec)
            self.mount(volume, target, True, item)
            done.append(f"{source} -> {obj_kind} {name} at {target}")
        if is_secret:
            env_secrets = self.secret_env
            if missing:
                self.check("secrets", Status.MISSING, f"not carried over: {', '.join(missing)}")
            elif done or env_secrets:
                parts = done + ([(f"{len(env_secrets)} secret-looking variable(s) -> Secret "
                                 f"{kube_name(self.name, 'env')}")] if env_secrets else [])
                self.check("secrets", Status.WARN, f"{'; '.join(parts)}: copied from this machine into a Secret "
                           f"(base64, not encrypted); manage them properly in the cluster")
            else:
                self.check("secrets", Status.OK, "no secrets and no secret-looking variables")
        elif missing:
            self.report("configs", f"not carried over: {', '.join(missing)}")

    def _definition_content(self, key: str, kind: str, source: str, definition: Mapping[str, Any]) -> bytes | None:
        if definition.get("content") is not None:
            return str(definition["content"]).encode()
        if definition.get("file"):
            path = str(definition["file"])
            content = self.svc.file_contents.get(path)
            if isinstance(content, bytes):
                return content
            why = content if isinstance(content, str) else "not read"
            self.report(key, f"{kind[:-1]} {source}: file {path} cannot be carried over ({why})")
            return None
        if definition.get("environment"):
            self.report(key, f"{kind[:-1]} {source} comes from the variable {definition['environment']} at `up` "
                        f"time: not carried over")
            return None
        self.report(key, f"{kind[:-1]} {source} has no file or content: not carried over")
        return None

    # -- security -----------------------------------------------------------------

    def security(self) -> None:
        cfg = self.cfg
        user = cfg.get("user")
        if user is not None:
            uid, _, gid = str(user).partition(":")
            ids = {"runAsUser": uid, "runAsGroup": gid}
            for field_name, value in ids.items():
                if not value:
                    continue
                value = "0" if value == "root" else value
                if value.isdigit():
                    self.container_security[field_name] = int(value)
                else:
                    self.report("user", f"'{value}' is a name: Kubernetes takes numeric ids only, so the image's "
                                f"default user runs; write the id (e.g. user: \"1000:1000\")")
        groups = []
        for group in as_list(cfg.get("group_add"), "group_add"):
            if str(group).isdigit():
                groups.append(int(group))
            else:
                self.report("group_add", f"'{group}' is a name: Kubernetes takes numeric group ids only")
        if groups:
            self.pod_security["supplementalGroups"] = groups
        capabilities: dict[str, list[str]] = {}
        for key, field_name in (("cap_add", "add"), ("cap_drop", "drop")):
            caps = [str(c).upper().removeprefix("CAP_") for c in as_list(cfg.get(key), key)]
            if caps:
                capabilities[field_name] = caps
        if capabilities:
            self.container_security["capabilities"] = capabilities
        if cfg.get("privileged"):
            self.container_security["privileged"] = True
        if cfg.get("read_only"):
            self.container_security["readOnlyRootFilesystem"] = True
        for opt in as_list(cfg.get("security_opt"), "security_opt"):
            text = str(opt)
            name, value = ([*re.split(r"[:=]", text, maxsplit=1), ""])[:2]
            if name == "no-new-privileges" and value in ("", "true"):
                if cfg.get("privileged"):
                    self.report("security_opt", "no-new-privileges with privileged: Kubernetes refuses both, "
                                "privileged wins")
                else:
                    self.container_security["allowPrivilegeEscalation"] = False
            elif name == "seccomp" and value == "unconfined":
                self.container_security["seccompProfile"] = {"type": "Unconfined"}
            else:
                self.report("security_opt", f"'{text}' is not carried over (AppArmor, SELinux labels and custom "
                            f"seccomp profiles live on the node)")
        try:
            sysctls = read_pairs(cfg.get("sysctls"), "sysctls")
        except SyntaxProblem as exc:
            self.report("sysctls", str(exc))
            sysctls = []
        safe = [{"name": k, "value": env_text(v)} for k, v in sysctls if k in SAFE_SYSCTLS and v is not None]
        unsafe = [k for k, _ in sysctls if k not in SAFE_SYSCTLS]
        if safe:
            self.pod_security["sysctls"] = safe
        if unsafe:
            self.report("sysctls", f"{', '.join(unsafe)}: not a safe sysctl, which the kubelet refuses (the pod "
                        f"would never start) unless it runs with --allowed-unsafe-sysctls; left out")

    # -- pod settings ---------------------------------------------------------------

    def pod_settings(self) -> None:
        cfg = self.cfg
        if cfg.get("working_dir"):
            self.container["workingDir"] = str(cfg["working_dir"])
        if cfg.get("tty"):
            self.container["tty"] = True
        if cfg.get("stdin_open"):
            self.container["stdin"] = True
        if cfg.get("init"):
            # No tini in Kubernetes; a shared process namespace makes the pause container
            # PID 1, which reaps zombies and leaves the app the default signal handlers.
            self.pod["shareProcessNamespace"] = True
            self.report("init", "carried over as shareProcessNamespace (the pause container reaps zombies as "
                        "PID 1, the role Docker's init played)", Severity.INFO)
        hostname = cfg.get("hostname")
        if hostname:
            valid = kube_name(str(hostname))
            self.pod["hostname"] = valid
            if valid != hostname:
                self.report("hostname", f"'{hostname}' is not a DNS label: the pod's hostname is '{valid}'")
        grace = cfg.get("stop_grace_period")
        signal = cfg.get("stop_signal")
        if grace is not None:
            seconds = self.seconds("stop_grace_period", grace, minimum=0)
            if seconds is not None:
                self.pod["terminationGracePeriodSeconds"] = seconds
                status = Status.WARN if signal else Status.OK
                detail = f"terminationGracePeriodSeconds {seconds} after SIGTERM"
                if signal:
                    detail += f"; stop_signal {signal} is not carried over"
                self.check("graceful shutdown", status, detail)
            else:
                self.check("graceful shutdown", Status.WARN, f"stop_grace_period {grace!r} cannot be read: "
                           f"Kubernetes waits 30 s after SIGTERM")
        elif signal:
            self.check("graceful shutdown", Status.WARN, f"stop_signal {signal} is not carried over: the app "
                       f"gets the image's STOPSIGNAL or SIGTERM, and 30 s (Compose gave it {_DOCKER_STOP_GRACE})")
        else:
            self.check("graceful shutdown", Status.MISSING, f"no stop_grace_period: Kubernetes waits 30 s after "
                       f"SIGTERM (Compose waited {_DOCKER_STOP_GRACE}); make sure the app exits on SIGTERM")
        try:
            hosts = read_hosts(cfg.get("extra_hosts")) if cfg.get("extra_hosts") else []
        except SyntaxProblem as exc:
            self.report("extra_hosts", f"{exc}: left out")
            hosts = []
        aliases: dict[str, list[str]] = {}
        for host, ip in hosts:
            if ip == "host-gateway":
                self.report("extra_hosts", f"{host}:host-gateway has no cluster counterpart (the Docker host is not "
                            f"the node): left out")
                continue
            aliases.setdefault(ip, []).append(host)
        if aliases:
            self.pod["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in aliases.items()]
        for key in ("labels", "annotations"):
            try:
                pairs = read_pairs(cfg.get(key), key)
            except SyntaxProblem as exc:
                self.report(key, f"{exc}: left out")
                continue
            for name, value in pairs:
                if is_qualified_key(name):
                    self.annotations[name] = "" if value is None else env_text(value)
                else:
                    self.report(key, f"'{name}' is not a valid Kubernetes annotation key: left out")
        if cfg.get("labels"):
            self.report("labels", "carried over as annotations (label values are too restricted)", Severity.INFO)
        self.dns()
        self.lifecycle()

    def dns(self) -> None:
        config: dict[str, Any] = {}
        servers = [str(s) for s in as_list(self.cfg.get("dns"), "dns")]
        if servers:
            config["nameservers"] = servers[:3]  # resolv.conf's limit, which the API server enforces
        searches = [str(s) for s in as_list(self.cfg.get("dns_search"), "dns_search")]
        if searches:
            config["searches"] = searches
        options = []
        for opt in as_list(self.cfg.get("dns_opt"), "dns_opt"):
            name, _, value = str(opt).partition(":")
            options.append({"name": name, "value": value} if value else {"name": name})
        if options:
            config["options"] = options
        if config:
            # ClusterFirst stays: the cluster's DNS answers first (Service names must keep
            # resolving) and these are added to the pod's resolv.conf.
            self.pod["dnsConfig"] = config
            keys = [k for k in ("dns", "dns_search", "dns_opt") if self.cfg.get(k)]
            self.report(keys[0] if len(keys) == 1 else "dns", "added to the pod's DNS config after the cluster's "
                        "DNS server, which still answers first", Severity.INFO)
        if len(servers) > 3:
            self.report("dns", f"only the first 3 servers are kept: {', '.join(servers[3:])} left out")

    def lifecycle(self) -> None:
        hooks: dict[str, Any] = {}
        for key, hook in (("post_start", "postStart"), ("pre_stop", "preStop")):
            entries = as_list(self.cfg.get(key), key)
            if not entries:
                continue
            first = entries[0] if isinstance(entries[0], Mapping) else {}
            try:
                command = read_command(first.get("command"))
            except SyntaxProblem:
                command = None
            if len(entries) == 1 and command and set(first) <= {"command"}:
                hooks[hook] = {"exec": {"command": command}}
            else:
                self.report(key, "only a single hook with just a command can be carried over (user, privileged, "
                            "working_dir and environment of hooks have no counterpart): left out")
        if hooks:
            self.container["lifecycle"] = hooks

    # -- networks and dependencies --------------------------------------------------

    def networking(self) -> None:
        networks = self.cfg.get("networks")
        names = list(networks) if isinstance(networks, Mapping) else as_list(networks, "networks")
        extra = [n for n in names if n != "default"]
        if extra:
            self.report("networks", f"{', '.join(map(str, extra))}: the cluster network is flat, every pod reaches "
                        f"every other; isolate with NetworkPolicies")
            self.check("network policies", Status.WARN, f"Compose isolated this service on {', '.join(map(str, extra))}; "
                       f"in the cluster any pod can reach it until NetworkPolicies say otherwise")
        else:
            self.check("network policies", Status.OK, "only the default network: every service could reach it in "
                       "Compose too")
        if isinstance(networks, Mapping):
            for net, opts in networks.items():
                if isinstance(opts, Mapping):
                    for opt in opts:
                        self.report(f"networks.{net}.{opt}", "per-network settings (aliases, addresses, priority) "
                                    "are not carried over; a Service gives the one name")
        mode = self.cfg.get("network_mode")
        if mode is not None:
            self.report("network_mode", f"'{mode}' is not carried over: the pod gets the cluster network "
                        f"(hostNetwork or a sidecar would have to be chosen deliberately)")
        if self.cfg.get("links"):
            self.report("links", "names resolve through Services in the cluster; link aliases are not carried over",
                        Severity.INFO)

    def dependencies(self) -> None:
        depends = self.cfg.get("depends_on")
        if not depends:
            self.check("dependencies", Status.OK, "no depends_on")
            return
        entries = depends.items() if isinstance(depends, Mapping) else [(d, {}) for d in as_list(depends, "depends_on")]
        described = []
        for dep, opts in entries:
            opts = opts if isinstance(opts, Mapping) else {}
            condition = str(opts.get("condition", "service_started"))
            described.append(f"{dep} ({condition.removeprefix('service_')})")
            if self.options.wait_for_dependencies and opts.get("required", True):
                if condition == "service_completed_successfully":
                    self.report("depends_on", f"{dep}: waiting for a one-off job to finish is not carried over")
                    continue
                self.wait_for(str(dep))
        what = ", ".join(described)
        if self.options.wait_for_dependencies:
            self.report("depends_on", f"{what}: init containers wait until each one's Service answers; a dependency "
                        f"still in Compose is not in the cluster, so the pod waits", Severity.INFO)
            self.check("dependencies", Status.OK, f"waits for {what} with init containers")
        else:
            self.report("depends_on", f"{what}: Kubernetes starts pods in any order; the app must retry until they "
                        f"answer")
            self.check("dependencies", Status.WARN, f"depends on {what}: not ordered in the cluster; the app must "
                       f"retry, or promote with wait-for-dependencies")

    def wait_for(self, dep: str) -> None:
        host = kube_name(dep)
        peer = self.svc.project_services.get(dep) or {}
        ports: list[PortSpec] = []
        for reader, key in ((read_port, "ports"), (read_expose, "expose")):
            for entry in as_list(peer.get(key), key):
                try:
                    ports += reader(entry)
                except SyntaxProblem:
                    continue
        port = next((p.target for p in ports if p.protocol == "TCP"), None)
        # A fixed script with the names in env: nothing from the Compose file is spliced
        # into shell text. A ClusterIP accepts connections only once a pod is ready; a
        # headless name resolves only then.
        if port:
            script = 'until nc -z -w 2 "$HOST" "$PORT"; do echo "waiting for $HOST:$PORT"; sleep 2; done'
            env = [{"name": "HOST", "value": host}, {"name": "PORT", "value": str(port)}]
        else:
            script = 'until nslookup "$HOST" >/dev/null 2>&1; do echo "waiting for $HOST"; sleep 2; done'
            env = [{"name": "HOST", "value": host}]
        self.init_containers.append({
            "name": kube_name("wait-for", dep),
            "image": self.options.wait_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "env": env,
        })

    def observability(self) -> None:
        if self.cfg.get("logging"):
            self.check("logging", Status.WARN, "the Compose logging driver is not carried over: logs stay on the "
                       "node (kubectl logs, Ferryman's log view) unless the cluster ships them")
        else:
            self.check("logging", Status.OK, "stdout/stderr, as in Compose: kubectl logs and Ferryman's log view "
                       "read them")
        scrape = [k for k in self.annotations if "prometheus" in k.lower() or "metrics" in k.lower()]
        if scrape:
            self.check("monitoring", Status.OK, f"metrics annotations carried over: {', '.join(scrape)}")
        else:
            self.check("monitoring", Status.MISSING, "nothing says how this service is monitored: the probes only "
                       "tell ready or not; add metrics scraping if the cluster has it")

    # -- assembly -----------------------------------------------------------------

    def objects(self) -> list[dict[str, Any]]:
        if self.container_security:
            self.container["securityContext"] = self.container_security
        if self.mounts:
            self.container["volumeMounts"] = self.mounts
        pod_spec: dict[str, Any] = {
            "enableServiceLinks": False,
            "automountServiceAccountToken": False,
        }
        pod_spec.update(self.pod)
        if self.pod_security:
            pod_spec["securityContext"] = self.pod_security
        if self.init_containers:
            pod_spec["initContainers"] = self.init_containers
        pod_spec["containers"] = [self.container]
        if self.pod_volumes:
            pod_spec["volumes"] = list(self.pod_volumes.values())
        owned = {PROJECT_ANNOTATION: self.svc.project, SERVICE_ANNOTATION: self.svc.name}
        spec: dict[str, Any] = {
            "replicas": self.replicas,
            "selector": {"matchLabels": dict(self.selector)},
        }
        if self.uses_pvc:
            spec["strategy"] = {"type": "Recreate"}
        spec["template"] = {
            "metadata": {"labels": dict(self.labels), "annotations": {**self.annotations, **owned}},
            "spec": pod_spec,
        }
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.meta(self.name, {**self.annotations, **owned}),
            "spec": spec,
        }
        service_spec: dict[str, Any] = {"selector": dict(self.selector)}
        if self.ports:
            service_spec["ports"] = [
                {"name": p["name"], "port": p["containerPort"], "targetPort": p["containerPort"],
                 "protocol": p["protocol"],
                 **({"appProtocol": spec_.app_protocol} if spec_.app_protocol else {})}
                for p, spec_ in zip(self.container["ports"], self.ports, strict=True)
            ]
        else:
            # Headless: the name still resolves (to the ready pods) with no port to list.
            service_spec["clusterIP"] = "None"
        service = {"apiVersion": "v1", "kind": "Service", "metadata": self.meta(self.name, owned),
                   "spec": service_spec}
        return [*self.config_maps.values(), *self.secrets.values(), *self.pvcs.values(), service, deployment]


_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?")
_QUANTITY_FACTOR = {None: 1.0, "m": 1e-3, "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3, "Ti": 1024.0**4}


def _quantity_value(quantity: str) -> float:
    match = _QUANTITY.fullmatch(quantity)
    assert match, quantity  # only ever our own cpu_quantity/memory_quantity output
    return float(match[1]) * _QUANTITY_FACTOR[match[2]]


def _quantities(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def translate(
    service: ComposeService,
    *,
    namespace: str,
    image: str | None = None,
    options: TranslateOptions | None = None,
) -> Translation:
    """Kubernetes objects for one Compose service, plus what was not carried over and
    the migration checklist. `image` replaces the Compose image (the unique tag the
    delivery step produced)."""
    return _Translator(service, namespace, image, options or TranslateOptions()).run()


# -- YAML for previews and --dry-run ------------------------------------------------------


class _ManifestDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # Manifests are read by people and by kubectl: never "&id001" anchors.
        return True


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if "\n" in data:
        # Multi-line scripts (CMD-SHELL, config files) stay readable as block scalars.
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_ManifestDumper.add_representer(str, _str_presenter)


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML ("---" before each object), keys in the order the objects
    were built (apiVersion, kind, metadata, spec), so output is stable and diffable."""
    return yaml.dump_all(
        [dict(o) for o in objects], Dumper=_ManifestDumper, explicit_start=True, sort_keys=False,
        default_flow_style=False, allow_unicode=True, width=120,
    )


def masked(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects with every Secret value replaced, for showing on screen."""
    shown = []
    for obj in objects:
        if obj.get("kind") == "Secret":
            obj = {**obj, **{k: {key: "*****" for key in obj[k]} for k in ("data", "stringData") if k in obj}}
        shown.append(dict(obj))
    return shown
