"""`translate`: a resolved Compose service -> Kubernetes objects, findings, checklist.

Dense unit tests on `config`-shaped dicts (as Compose v1 prints them, and as v2's JSON
does), plus every service of every fixture project resolved through the real compose
CLI. Every object any test produces is validated against the Kubernetes OpenAPI
schemas of 1.29, 1.30 and 1.31 (strict: unknown fields fail) and against the naming
rules the schemas do not carry (RFC 1123/1035 names, label values, port names).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from backends.promote import (
    ComposeService,
    Finding,
    Severity,
    Status,
    TranslateOptions,
    Translation,
    masked,
    read_referenced_files,
    resolve_project,
    service_from_config,
    to_yaml,
    translate,
)
from backends.promote.names import data_key, kube_name, label_value, port_name
from backends.promote.translate import _NOT_CARRIED, CHECKLIST_TOPICS, SAFE_SYSCTLS
from backends.promote.units import (
    cpu_quantity,
    memory_quantity,
    parse_bytes,
    parse_duration,
)
from tests.support.dockerenv import require_compose_cli

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
K8S_VERSIONS = ("1.29.0", "1.30.0", "1.31.0")

DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


# -- validation of everything produced ----------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _schemas_parsed_once():
    # kubernetes-validate parses its 1.3 MB definitions file on every call; the files
    # never change, so parsing each once makes validating every object affordable.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents",
                      functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents))
        yield



def assert_valid_names(obj: dict) -> None:
    meta = obj["metadata"]
    name = meta["name"]
    rule = DNS_1035_LABEL if obj["kind"] == "Service" else DNS_1123_SUBDOMAIN
    assert rule.fullmatch(name) and len(name) <= 63, f"{obj['kind']} name {name!r}"
    assert meta["namespace"] == "dev"
    labels = meta["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "ferryman"
    assert {"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/instance"} <= set(labels)
    for value in labels.values():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), f"label value {value!r}"
    pod = None
    if obj["kind"] == "Deployment":
        assert obj["spec"]["selector"]["matchLabels"].items() <= obj["spec"]["template"]["metadata"]["labels"].items()
        pod = obj["spec"]["template"]["spec"]
    if obj["kind"] == "Service":
        for port in obj["spec"].get("ports", []):
            assert len(port["name"]) <= 15 and IANA_SVC_NAME.fullmatch(port["name"]), port["name"]
        assert len({p["name"] for p in obj["spec"].get("ports", [])}) == len(obj["spec"].get("ports", []))
    if pod:
        for container in pod["containers"] + pod.get("initContainers", []):
            assert DNS_1123_LABEL.fullmatch(container["name"]) and len(container["name"]) <= 63
            ports = container.get("ports", [])
            for port in ports:
                assert len(port["name"]) <= 15 and IANA_SVC_NAME.fullmatch(port["name"]), port["name"]
            assert len({p["name"] for p in ports}) == len(ports)
        volume_names = [v["name"] for v in pod.get("volumes", [])]
        assert len(set(volume_names)) == len(volume_names)
        for volume in volume_names:
            assert DNS_1123_LABEL.fullmatch(volume) and len(volume) <= 63, volume
        for mount in pod["containers"][0].get("volumeMounts", []):
            assert mount["name"] in volume_names
        if "hostname" in pod:
            assert DNS_1123_LABEL.fullmatch(pod["hostname"])


def assert_valid(translation: Translation) -> None:
    for obj in translation.objects:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        assert_valid_names(obj)
    # Objects are applied in this order: what the Deployment refers to exists first.
    kinds = [o["kind"] for o in translation.objects]
    assert kinds[-2:] == ["Service", "Deployment"]
    assert [c.topic for c in translation.checklist] == list(CHECKLIST_TOPICS)
    assert all(c.detail for c in translation.checklist)
    names = [(o["kind"], o["metadata"]["name"]) for o in translation.objects]
    assert len(set(names)) == len(names)


def svc(config: dict, name: str = "web", project: str = "shop", files: dict | None = None, **top) -> ComposeService:
    """A service as `config` would print it, in a project with `top`-level sections."""
    services = {name: config, **top.pop("others", {})}
    service = service_from_config({"services": services, **top}, name, project=project)
    if files:
        service = ComposeService(**{**service.__dict__, "file_contents": files})
    return service


def tr(config: dict, *, image: str | None = None, options: TranslateOptions | None = None,
       **kwargs) -> Translation:
    translation = translate(svc(config, **kwargs), namespace="dev", image=image, options=options)
    assert_valid(translation)
    return translation


def obj(t: Translation, kind: str, name: str | None = None) -> dict:
    found = [o for o in t.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, [(o["kind"], o["metadata"]["name"]) for o in t.objects]
    return found[0]


def pod(t: Translation) -> dict:
    return obj(t, "Deployment")["spec"]["template"]["spec"]


def container(t: Translation) -> dict:
    return pod(t)["containers"][0]


def findings(t: Translation, key: str) -> list[Finding]:
    return [f for f in t.warnings if f.key == key]


def finding(t: Translation, key: str) -> Finding:
    found = findings(t, key)
    assert len(found) == 1, t.warnings
    return found[0]


def checklist(t: Translation, topic: str):
    return next(c for c in t.checklist if c.topic == topic)


def env(t: Translation) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(t).get("env", [])}


# -- the validator itself catches what it must ---------------------------------------------


def test_the_schema_validator_refuses_a_typo_and_a_wrong_type():
    good = tr({"image": "nginx:1.25"})
    deployment = obj(good, "Deployment")
    typo = json.loads(json.dumps(deployment))
    typo["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, "1.29.0", strict=True)
    wrong = json.loads(json.dumps(deployment))
    wrong["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "eighty"}]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, "1.29.0", strict=True)


# -- objects and labels -------------------------------------------------------------------


def test_a_minimal_service_makes_a_deployment_and_a_headless_service():
    t = tr({"image": "example/worker:1.2"})
    assert [o["kind"] for o in t.objects] == ["Service", "Deployment"]
    service = obj(t, "Service")
    # No ports: headless, so the name still resolves in the cluster (kompose makes none).
    assert service["spec"] == {"selector": {"app.kubernetes.io/instance": "shop-web"}, "clusterIP": "None"}
    deployment = obj(t, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/instance": "shop-web"}}
    assert "strategy" not in deployment["spec"]
    assert t.name == "web"
    assert container(t) == {"name": "web", "image": "example/worker:1.2"}


def test_every_object_carries_the_ferryman_labels_and_the_compose_names():
    t = tr({"image": "x:1", "environment": {"API_TOKEN": "t"}, "volumes": ["data:/data"]},
           name="My_Service.v2", project="Shop_Project")
    for o in t.objects:
        assert o["metadata"]["labels"] == {
            "app.kubernetes.io/name": "my-service-v2",
            "app.kubernetes.io/instance": "Shop_Project-my-service-v2",
            "app.kubernetes.io/part-of": "Shop_Project",
            "app.kubernetes.io/managed-by": "ferryman",
        }
    for kind in ("Deployment", "Service"):
        annotations = obj(t, kind)["metadata"]["annotations"]
        assert annotations["ferryman.io/compose-service"] == "My_Service.v2"
        assert annotations["ferryman.io/compose-project"] == "Shop_Project"


def test_pods_get_no_service_links_and_no_cluster_token():
    spec = pod(tr({"image": "x:1"}))
    # Kubernetes would inject DB_PORT=tcp://... per Service; Compose injects nothing.
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False


def test_translation_is_deterministic():
    config = {"image": "x:1", "ports": ["80:80"], "environment": ["A=1", "DB_PASSWORD=p"], "volumes": ["d:/d"]}
    first = translate(svc(config), namespace="dev")
    second = translate(svc(config), namespace="dev")
    assert first == second
    assert to_yaml(first.objects) == to_yaml(second.objects)


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(("compose", "kube"), [
    ("web", "web"),
    ("My_Service.v2", "my-service-v2"),
    ("api__v1", "api-v1"),
    ("-edge-", "edge"),
    ("1worker", "x-1worker"),
    ("UPPER", "upper"),
    ("a.b.c", "a-b-c"),
    ("___", "x"),
])
def test_kube_names(compose, kube):
    assert kube_name(compose) == kube


def test_long_names_are_cut_with_a_hash_so_they_stay_distinct():
    a = kube_name("a" * 80 + "-one")
    b = kube_name("a" * 80 + "-two")
    assert len(a) == len(b) == 63
    assert a != b
    assert DNS_1035_LABEL.fullmatch(a)


def test_label_values_and_data_keys_and_port_names():
    assert label_value("-my_project.") == "my_project"
    assert len(label_value("p" * 100)) == 63
    assert data_key("db password") == "db_password"
    assert port_name("TCP", 8080) == "tcp-8080"
    assert port_name("UDP", 65535) == "udp-65535"
    assert port_name("TCP", 80, "HTTP") == "http"
    assert port_name("TCP", 80, "a-very-long-port-name") == "tcp-80"
    assert port_name("TCP", 80, "8080") == "tcp-80"  # needs a letter


def test_a_renamed_service_is_reported_and_a_collision_is_warned():
    t = tr({"image": "x:1"}, name="api_v1", others={"api-v1": {"image": "x:1"}})
    messages = [f.message for f in findings(t, "name")]
    assert any("'api-v1'" in m and "clients in the cluster must use that name" in m for m in messages)
    assert any("'api-v1' and 'api_v1' all become 'api-v1'" in m for m in messages)


# -- image --------------------------------------------------------------------------------


def test_the_delivered_image_replaces_the_compose_one_and_is_never_pulled_from_a_registry():
    t = tr({"image": "shop/web:dev", "build": ".", "pull_policy": "always"}, image="shop/web:ferryman-3f2a9c1b")
    assert container(t)["image"] == "shop/web:ferryman-3f2a9c1b"
    assert container(t)["imagePullPolicy"] == "IfNotPresent"
    assert finding(t, "build").severity is Severity.INFO
    assert "IfNotPresent" in finding(t, "pull_policy").message
    assert checklist(t, "image").status is Status.OK


def test_an_image_imported_into_the_node_is_never_pulled():
    t = tr({"image": "shop/web:dev"}, image="shop/web:ferryman-1", options=TranslateOptions(image_imported=True))
    assert container(t)["imagePullPolicy"] == "Never"


def test_a_locally_built_image_without_delivery_is_reported():
    t = tr({"image": "shop/web:dev", "build": {"context": "."}})
    assert container(t)["image"] == "shop/web:dev"
    assert "must be built and delivered" in finding(t, "build").message
    assert checklist(t, "image").status is Status.MISSING


def test_a_service_with_only_build_gets_composes_image_name():
    t = tr({"build": "."}, name="api", project="shop")
    assert container(t)["image"] == "shop-api"
    assert "no image" in finding(t, "image").message


@pytest.mark.parametrize(("image", "status"), [
    ("redis", Status.WARN), ("redis:latest", Status.WARN), ("localhost:5000/redis", Status.WARN),
    ("redis:7.2", Status.OK), ("localhost:5000/redis:7", Status.OK), ("redis@sha256:" + "a" * 64, Status.OK),
])
def test_an_image_without_a_fixed_tag_is_on_the_checklist(image, status):
    assert checklist(tr({"image": image}), "image").status is status


@pytest.mark.parametrize(("policy", "kube"), [("always", "Always"), ("never", "Never"), ("missing", "IfNotPresent"),
                                              ("if_not_present", "IfNotPresent")])
def test_compose_pull_policy(policy, kube):
    assert container(tr({"image": "x:1", "pull_policy": policy}))["imagePullPolicy"] == kube


def test_pull_policy_build_is_reported():
    t = tr({"image": "x:1", "pull_policy": "build"})
    assert "imagePullPolicy" not in container(t)
    assert "no Kubernetes counterpart" in finding(t, "pull_policy").message


# -- command and entrypoint ------------------------------------------------------------------


def test_compose_command_becomes_args_and_keeps_the_images_entrypoint():
    c = container(tr({"image": "x:1", "command": ["npm", "start"]}))
    assert c["args"] == ["npm", "start"]
    assert "command" not in c


def test_compose_entrypoint_becomes_command():
    c = container(tr({"image": "x:1", "entrypoint": ["/docker-entrypoint.sh"], "command": ["serve", "--port", "80"]}))
    assert c["command"] == ["/docker-entrypoint.sh"]
    assert c["args"] == ["serve", "--port", "80"]


def test_an_entrypoint_alone_drops_the_images_cmd_in_both_worlds():
    c = container(tr({"image": "x:1", "entrypoint": ["tini", "--", "run"]}))
    assert c["command"] == ["tini", "--", "run"]
    assert "args" not in c


def test_string_commands_are_split_like_compose_does_without_a_shell():
    c = container(tr({"image": "x:1", "command": "redis-server --save \"60 1\" --appendonly yes",
                      "entrypoint": "docker-entrypoint.sh"}))
    assert c["command"] == ["docker-entrypoint.sh"]
    assert c["args"] == ["redis-server", "--save", "60 1", "--appendonly", "yes"]


def test_an_empty_entrypoint_with_a_command_runs_the_command_as_the_whole_line():
    t = tr({"image": "x:1", "entrypoint": [], "command": ["python", "app.py"]})
    assert container(t)["command"] == ["python", "app.py"]
    assert "args" not in container(t)
    assert finding(t, "entrypoint").severity is Severity.INFO


def test_an_empty_entrypoint_alone_is_reported():
    t = tr({"image": "x:1", "entrypoint": ""})
    assert "command" not in container(t)
    assert "cannot clear it" in finding(t, "entrypoint").message


def kubelet_expand(text: str, defined: dict[str, str]) -> str:
    """What the kubelet does to command, args and env values (its expansion package):
    "$$" -> "$", "$(NAME)" -> the value of a defined NAME, anything else as is."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(" and (end := text.find(")", i + 2)) != -1:
                name = text[i + 2:end]
                out.append(defined.get(name, text[i:end + 1]))
                i = end + 1
                continue
            out.append(text[i:i + 2])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("literal", [
    "echo $HOME $(date) $$ cost $5", "$(whoami)$$", "$$(x)", "a$", "$", "$$$", "$(unterminated", "plain",
])
def test_dollar_signs_reach_the_container_as_written(literal):
    # The input is `config` output, where a literal "$" is written "$$".
    escaped = literal.replace("$", "$$")
    t = tr({"image": "x:1", "entrypoint": [escaped], "command": [escaped], "environment": {"V": escaped}})
    # Every name is defined: any expansion the escaping let through would show.
    defined = {"date": "EXPANDED", "whoami": "EXPANDED", "x": "EXPANDED", "V": "EXPANDED"}
    assert kubelet_expand(container(t)["command"][0], defined) == literal
    assert kubelet_expand(container(t)["args"][0], defined) == literal
    assert kubelet_expand(container(t)["env"][0]["value"], defined) == literal


def test_dollar_escaping_is_minimal():
    t = tr({"image": "x:1", "command": ["echo $$HOME $$(date)"]})
    assert container(t)["args"] == ["echo $HOME $$(date)"]


def test_probes_are_not_expanded_so_they_are_not_escaped():
    t = tr({"image": "x:1", "healthcheck": {"test": ["CMD-SHELL", "test $$(cat /tmp/ok) = 1"]}})
    assert container(t)["livenessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "test $(cat /tmp/ok) = 1"]


# -- environment ----------------------------------------------------------------------------


def test_environment_in_dict_and_list_form():
    as_dict = tr({"image": "x:1", "environment": {"A": "1", "B": 2, "C": True, "D": ""}})
    as_list = tr({"image": "x:1", "environment": ["A=1", "B=2", "C=true", "D="]})
    assert env(as_dict) == env(as_list) == {"A": "1", "B": "2", "C": "true", "D": ""}
    assert [e["name"] for e in container(as_dict)["env"]] == ["A", "B", "C", "D"]


def test_a_variable_without_a_value_is_reported_not_invented():
    t = tr({"image": "x:1", "environment": {"SET": "1", "FROM_SHELL": None}})
    assert env(t) == {"SET": "1"}
    assert "FROM_SHELL" in finding(t, "environment").message
    assert checklist(t, "environment").status is Status.WARN


@pytest.mark.parametrize(("name", "value", "secret"), [
    ("DB_PASSWORD", "hunter2", True),
    ("POSTGRES_PASSWORD", "x", True),
    ("MYSQL_ROOT_PASSWORD", "x", True),
    ("API_KEY", "x", True),
    ("STRIPE_API_KEY", "x", True),
    ("SECRET_KEY_BASE", "x", True),
    ("DJANGO_SECRET_KEY", "x", True),
    ("GITHUB_TOKEN", "x", True),
    ("AWS_SECRET_ACCESS_KEY", "x", True),
    ("GOOGLE_APPLICATION_CREDENTIALS_JSON", "{}", True),
    ("SMTP_PASS", "x", True),
    ("dbPassword", "x", True),
    ("DATABASE_URL", "postgres://app:hunter2@db:5432/app", True),
    ("DATABASE_URL", "postgres://db:5432/app", False),
    ("POSTGRES_PASSWORD_FILE", "/run/secrets/db", False),
    ("KEYCLOAK_URL", "http://kc", False),
    ("MONKEY_MODE", "on", False),
    ("LOG_LEVEL", "debug", False),
    ("PORT", "8080", False),
])
def test_secret_looking_variables_go_to_a_secret(name, value, secret):
    t = tr({"image": "x:1", "environment": {name: value}})
    entry = container(t)["env"][0]
    if secret:
        assert entry == {"name": name, "valueFrom": {"secretKeyRef": {"name": "web-env", "key": name}}}
        assert base64.b64decode(obj(t, "Secret", "web-env")["data"][name]).decode() == value
    else:
        assert entry == {"name": name, "value": value}
        assert not [o for o in t.objects if o["kind"] == "Secret"]


def test_secret_values_never_appear_outside_secrets():
    values = {"DB_PASSWORD": "hunter2-value", "API_TOKEN": "tok-3141", "DATABASE_URL": "pg://u:pw-777@db/x"}
    t = tr({"image": "x:1", "environment": {**values, "PLAIN": "visible"},
            "healthcheck": {"test": ["CMD", "true"]}, "labels": {"a": "b"}})
    outside = to_yaml(o for o in t.objects if o["kind"] != "Secret")
    for value in values.values():
        assert value not in outside
    assert "visible" in outside
    for f in t.warnings:
        for value in values.values():
            assert value not in f.message
    assert "DB_PASSWORD" in checklist(t, "environment").detail
    assert checklist(t, "secrets").status is Status.WARN


def test_env_file_is_reported_as_already_inlined():
    t = tr({"image": "x:1", "env_file": ["web.env"], "environment": {"FROM_FILE": "1"}})
    assert env(t) == {"FROM_FILE": "1"}
    assert "already inlined" in finding(t, "env_file").message


def test_odd_variable_names_are_kept_and_flagged_for_old_clusters():
    t = tr({"image": "x:1", "environment": {"1ST": "a", "my.var": "b"}})
    assert env(t) == {"1ST": "a", "my.var": "b"}
    assert "1ST" in finding(t, "environment").message


# -- ports ----------------------------------------------------------------------------------


def test_the_service_listens_on_the_container_port_not_the_host_port():
    t = tr({"image": "x:1", "ports": ["8080:80"]})
    assert obj(t, "Service")["spec"]["ports"] == [{"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP"}]
    assert container(t)["ports"] == [{"name": "tcp-80", "containerPort": 80, "protocol": "TCP"}]
    assert [(h.host_port, h.service_port, h.protocol) for h in t.host_ports] == [(8080, 80, "TCP")]
    assert "keeps localhost:8080 answering" in finding(t, "ports[0]").message


def test_all_port_syntaxes():
    t = tr({"image": "x:1", "ports": [
        "3000",
        "127.0.0.1:5000-5001:6000-6001",
        "9090:9090/udp",
        {"target": 8443, "published": "443", "protocol": "tcp", "mode": "ingress"},
        "8000-8010:8080",
        "[::1]:7000:7000",
    ], "expose": ["4000", "4001-4002", "5353/udp", 9000]})
    ports = [(p["containerPort"], p["protocol"]) for p in container(t)["ports"]]
    assert ports == [(3000, "TCP"), (6000, "TCP"), (6001, "TCP"), (9090, "UDP"), (8443, "TCP"), (8080, "TCP"),
                     (7000, "TCP"), (4000, "TCP"), (4001, "TCP"), (4002, "TCP"), (5353, "UDP"), (9000, "TCP")]
    assert [(h.host_port, h.service_port, h.host_ip) for h in t.host_ports] == [
        (5000, 6000, "127.0.0.1"), (5001, 6001, "127.0.0.1"), (443, 8443, ""), (7000, 7000, "::1")]
    assert "random host port" in finding(t, "ports[0]").message
    assert "TCP only" in finding(t, "ports[2]").message
    assert "8000-8010" in finding(t, "ports[4]").message


def test_v1_and_v2_port_shapes_translate_alike():
    v1 = tr({"image": "x:1", "ports": [{"published": 8080, "target": 80}, "127.0.0.1:5432:5432"]})
    v2 = tr({"image": "x:1", "ports": [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 5432, "published": "5432", "protocol": "tcp"}]})
    assert obj(v1, "Service") == obj(v2, "Service")
    assert v1.host_ports == v2.host_ports


def test_compose_port_names_and_app_protocol_are_kept_when_valid():
    t = tr({"image": "x:1", "ports": [
        {"target": 8080, "published": "18080", "name": "HTTP", "app_protocol": "http"},
        {"target": 9090, "name": "HTTP_Main_Port_With_A_Long_Name"},
        {"target": 9091, "name": "http"},
    ]})
    service_ports = obj(t, "Service")["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in service_ports] == [("http", 8080), ("tcp-9090", 9090), ("tcp-9091", 9091)]
    assert service_ports[0]["appProtocol"] == "http"


def test_the_same_port_in_ports_and_expose_is_listed_once():
    t = tr({"image": "x:1", "ports": ["80:80", "81:80"], "expose": ["80"]})
    assert [p["containerPort"] for p in container(t)["ports"]] == [80]
    assert [h.host_port for h in t.host_ports] == [80, 81]


def test_an_unreadable_port_is_reported_by_index():
    t = tr({"image": "x:1", "ports": ["http", "80:80", "1-3:4-5"]})
    assert "not a port number" in finding(t, "ports[0]").message
    assert "ranges differ" in finding(t, "ports[2]").message
    assert [p["containerPort"] for p in container(t)["ports"]] == [80]


# -- healthcheck ----------------------------------------------------------------------------


def test_cmd_shell_healthcheck_becomes_an_exec_probe_through_a_shell():
    t = tr({"image": "x:1", "healthcheck": {
        "test": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"],
        "interval": "1m30s", "timeout": "500ms", "retries": 2}})
    expected = {"exec": {"command": ["/bin/sh", "-c", "curl -f http://localhost:8080/health || exit 1"]},
                "periodSeconds": 90, "timeoutSeconds": 1, "failureThreshold": 2}
    assert container(t)["livenessProbe"] == expected
    assert container(t)["readinessProbe"] == expected
    assert "startupProbe" not in container(t)
    assert checklist(t, "health checks").status is Status.OK
    assert "restarts it after 2 failed probes" in finding(t, "healthcheck").message


def test_cmd_healthcheck_keeps_the_argv_and_dockers_default_timings():
    t = tr({"image": "x:1", "healthcheck": {"test": ["CMD", "/bin/check", "--quick"]}})
    assert container(t)["livenessProbe"] == {"exec": {"command": ["/bin/check", "--quick"]}, "periodSeconds": 30,
                                             "timeoutSeconds": 30, "failureThreshold": 3}


def test_a_string_test_runs_in_a_shell():
    t = tr({"image": "x:1", "healthcheck": {"test": "pg_isready -U app"}})
    assert container(t)["readinessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "pg_isready -U app"]


def test_start_period_becomes_a_startup_probe():
    t = tr({"image": "x:1", "healthcheck": {"test": ["CMD", "check"], "interval": "10s", "timeout": "2s",
                                            "retries": 3, "start_period": "1m"}})
    assert container(t)["startupProbe"] == {"exec": {"command": ["check"]}, "periodSeconds": 10,
                                            "timeoutSeconds": 2, "failureThreshold": 9}
    assert "initialDelaySeconds" not in container(t)["livenessProbe"]


def test_start_interval_paces_the_startup_probe():
    t = tr({"image": "x:1", "healthcheck": {"test": ["CMD", "check"], "interval": "30s", "start_period": "20s",
                                            "start_interval": "2s"}})
    assert container(t)["startupProbe"]["periodSeconds"] == 2
    assert container(t)["startupProbe"]["failureThreshold"] == 13  # 20s / 2s + 3 retries


@pytest.mark.parametrize("hc", [{"disable": True}, {"test": ["NONE"]}, {"test": "NONE"}])
def test_a_disabled_healthcheck_makes_no_probes(hc):
    t = tr({"image": "x:1", "healthcheck": hc})
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container(t))
    assert checklist(t, "health checks").status is Status.MISSING
    assert finding(t, "healthcheck").message == "disabled in Compose: no probes"


def test_a_healthcheck_without_a_test_is_reported_not_a_crash():
    t = tr({"image": "x:1", "healthcheck": {"interval": "5s"}})
    assert "livenessProbe" not in container(t)
    assert "no test" in finding(t, "healthcheck.test").message


def test_no_healthcheck_is_missing_on_the_checklist():
    assert checklist(tr({"image": "x:1"}), "health checks").status is Status.MISSING


def test_the_images_healthcheck_is_used_when_compose_has_none():
    image_hc = {"Test": ["CMD-SHELL", "wget -q -O- localhost"], "Interval": 5_000_000_000,
                "Timeout": 1_000_000_000, "Retries": 4}
    t = tr({"image": "x:1"}, options=TranslateOptions(image_healthcheck=image_hc))
    assert container(t)["livenessProbe"] == {"exec": {"command": ["/bin/sh", "-c", "wget -q -O- localhost"]},
                                             "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 4}
    assert "image's HEALTHCHECK" in checklist(t, "health checks").detail
    # Compose overriding only the timings keeps the image's test.
    t = tr({"image": "x:1", "healthcheck": {"interval": "7s"}}, options=TranslateOptions(image_healthcheck=image_hc))
    assert container(t)["livenessProbe"]["periodSeconds"] == 7
    assert container(t)["livenessProbe"]["exec"]["command"][-1] == "wget -q -O- localhost"


def test_unknown_healthcheck_keys_are_reported():
    t = tr({"image": "x:1", "healthcheck": {"test": ["CMD", "true"], "retries_backoff": 2}})
    assert finding(t, "healthcheck.retries_backoff")


# -- resources and replicas -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "n_bytes"), [
    ("512m", 512 << 20), ("512M", 512 << 20), ("512mb", 512 << 20), ("1g", 1 << 30), ("1.5g", 3 << 29),
    ("100k", 100 << 10), ("1024b", 1024), ("1024", 1024), (536870912, 536870912), ("536870912", 536870912),
    ("2GiB", 2 << 30),
])
def test_compose_byte_sizes(text, n_bytes):
    assert parse_bytes(text) == n_bytes


@pytest.mark.parametrize(("n_bytes", "quantity"), [
    (512 << 20, "512Mi"), (1 << 30, "1Gi"), (3 << 29, "1536Mi"), (100 << 10, "100Ki"), (1000, "1000"),
])
def test_memory_quantities_are_exact_binary_units(n_bytes, quantity):
    assert memory_quantity(n_bytes) == quantity


@pytest.mark.parametrize(("cpus", "quantity"), [(0.5, "500m"), (1.5, "1500m"), (2, "2"), (0.25, "250m"),
                                                (0.0001, "1m"), (1.0, "1")])
def test_cpu_quantities(cpus, quantity):
    assert cpu_quantity(cpus) == quantity


@pytest.mark.parametrize(("text", "seconds"), [
    ("1m30s", 90), ("10s", 10), ("500ms", 0.5), ("1h", 3600), ("1.5s", 1.5), ("2m", 120), (30, 30), ("45", 45),
])
def test_compose_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_v2_file_resources_512m_is_mebibytes_not_millibytes():
    # The trap: Compose "512m" is 512 MiB; Kubernetes "512m" would be 0.512 bytes.
    t = tr({"image": "x:1", "mem_limit": "512m", "mem_reservation": "128m", "cpus": 0.5})
    assert container(t)["resources"] == {"limits": {"cpu": "500m", "memory": "512Mi"},
                                         "requests": {"memory": "128Mi"}}
    assert checklist(t, "resource limits").status is Status.OK


def test_v3_deploy_resources():
    t = tr({"image": "x:1", "deploy": {"resources": {
        "limits": {"cpus": "1.5", "memory": "1G", "pids": 100},
        "reservations": {"cpus": "0.25", "memory": "256M", "devices": [{"capabilities": ["gpu"]}]}}}})
    assert container(t)["resources"] == {"limits": {"cpu": "1500m", "memory": "1Gi"},
                                         "requests": {"cpu": "250m", "memory": "256Mi"}}
    assert finding(t, "deploy.resources.limits.pids")
    assert "device plugin" in finding(t, "deploy.resources.reservations.devices").message


def test_v2_json_bytes_and_numbers():
    # compose-go prints memory in bytes (a string) and cpus as a number.
    t = tr({"image": "x:1", "deploy": {"resources": {"limits": {"cpus": 0.5, "memory": "536870912"}}}})
    assert container(t)["resources"] == {"limits": {"cpu": "500m", "memory": "512Mi"}}


def test_limits_without_reservations_warn_that_requests_equal_limits():
    t = tr({"image": "x:1", "mem_limit": "1g"})
    assert container(t)["resources"] == {"limits": {"memory": "1Gi"}}
    item = checklist(t, "resource limits")
    assert item.status is Status.WARN
    assert "requests as much as the limits" in item.detail


def test_no_resources_is_missing_on_the_checklist():
    t = tr({"image": "x:1"})
    assert "resources" not in container(t)
    assert checklist(t, "resource limits").status is Status.MISSING


def test_deploy_wins_over_the_v2_keys_and_a_difference_is_reported():
    t = tr({"image": "x:1", "mem_limit": "512m", "cpus": 2,
            "deploy": {"resources": {"limits": {"memory": "256M", "cpus": "0.5"}}}})
    assert container(t)["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert "mem_limit (512m) is not" in finding(t, "mem_limit").message
    assert finding(t, "cpus")


def test_the_same_limit_written_twice_is_not_reported():
    t = tr({"image": "x:1", "mem_limit": "512m", "cpus": "0.5",
            "deploy": {"resources": {"limits": {"memory": "536870912", "cpus": 0.5}}}})
    assert container(t)["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert not findings(t, "mem_limit") and not findings(t, "cpus")


def test_a_reservation_above_the_limit_is_dropped_because_kubernetes_refuses_it():
    t = tr({"image": "x:1", "mem_limit": "256m", "mem_reservation": "1g"})
    assert container(t)["resources"] == {"limits": {"memory": "256Mi"}}
    assert "above the limit" in finding(t, "deploy.resources.reservations").message


def test_cpu_quota_is_a_cpu_limit():
    t = tr({"image": "x:1", "cpu_quota": 50000, "cpu_period": 100000})
    assert container(t)["resources"] == {"limits": {"cpu": "500m"}}


def test_zero_cpus_means_no_limit():
    assert "resources" not in container(tr({"image": "x:1", "cpus": 0}))


def test_an_unreadable_size_is_reported():
    t = tr({"image": "x:1", "mem_limit": "lots"})
    assert "not a size" in finding(t, "mem_limit").message


@pytest.mark.parametrize(("config", "replicas"), [
    ({}, 1), ({"deploy": {"replicas": 3}}, 3), ({"scale": 2}, 2), ({"deploy": {"replicas": 0}}, 0),
])
def test_replicas(config, replicas):
    assert obj(tr({"image": "x:1", **config}), "Deployment")["spec"]["replicas"] == replicas


def test_deploy_replicas_win_over_scale():
    t = tr({"image": "x:1", "scale": 2, "deploy": {"replicas": 4}})
    assert obj(t, "Deployment")["spec"]["replicas"] == 4
    assert finding(t, "scale")


def test_other_deploy_keys_are_reported_by_dotted_name():
    t = tr({"image": "x:1", "deploy": {"mode": "global", "placement": {"constraints": ["node.role==manager"]},
                                       "update_config": {"parallelism": 2}, "restart_policy": {"condition": "any"},
                                       "labels": {"com.example.tier": "web"}, "rollback_config": {},
                                       "endpoint_mode": "dnsrr", "frobnicate": 1}})
    for key in ("deploy.mode", "deploy.placement", "deploy.update_config", "deploy.restart_policy",
                "deploy.rollback_config", "deploy.endpoint_mode", "deploy.frobnicate"):
        assert findings(t, key), key
    assert obj(t, "Deployment")["metadata"]["annotations"]["com.example.tier"] == "web"


@pytest.mark.parametrize(("restart", "reported"), [
    ("always", False), ("unless-stopped", False), ("on-failure", True), ("on-failure:3", True), ("no", True),
    (None, True),
])
def test_restart(restart, reported):
    config = {"image": "x:1"} if restart is None else {"image": "x:1", "restart": restart}
    t = tr(config)
    assert "restartPolicy" not in pod(t)  # a Deployment's pods always restart
    assert bool(findings(t, "restart")) == reported


# -- volumes --------------------------------------------------------------------------------


def test_a_named_volume_becomes_a_pvc_in_the_default_storage_class():
    t = tr({"image": "postgres:16", "volumes": ["pgdata:/var/lib/postgresql/data"]},
           volumes={"pgdata": {}}, options=TranslateOptions(volume_size="5Gi"))
    pvc = obj(t, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "shop-pgdata"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
    assert "storageClassName" not in pvc["spec"]
    assert container(t)["volumeMounts"] == [{"name": "pgdata", "mountPath": "/var/lib/postgresql/data"}]
    assert pod(t)["volumes"] == [{"name": "pgdata", "persistentVolumeClaim": {"claimName": "shop-pgdata"}}]
    # Old and new pod must never run on one data directory.
    assert obj(t, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    item = checklist(t, "persistent volumes")
    assert item.status is Status.WARN and "start empty" in item.detail


def test_a_v2_volume_name_and_long_syntax():
    t = tr({"image": "x:1", "volumes": [
        {"type": "volume", "source": "data", "target": "/data", "read_only": True, "volume": {"subpath": "sub"}}]},
        volumes={"data": {"name": "shop_data"}})
    assert obj(t, "PersistentVolumeClaim")["metadata"]["name"] == "shop-data"
    assert container(t)["volumeMounts"] == [{"name": "data", "mountPath": "/data", "subPath": "sub",
                                             "readOnly": True}]


def test_one_volume_mounted_twice_is_one_pvc_and_one_pod_volume():
    t = tr({"image": "x:1", "volumes": ["data:/a", "data:/b:ro"]})
    assert len([o for o in t.objects if o["kind"] == "PersistentVolumeClaim"]) == 1
    assert len(pod(t)["volumes"]) == 1
    assert [m["mountPath"] for m in container(t)["volumeMounts"]] == ["/a", "/b"]
    assert container(t)["volumeMounts"][1]["readOnly"] is True


def test_external_volumes_and_driver_options_are_reported():
    t = tr({"image": "x:1", "volumes": ["shared:/s", "logs:/l"]},
           volumes={"shared": {"external": True}, "logs": {"driver": "local", "driver_opts": {"o": "bind"}}})
    assert {o["metadata"]["name"] for o in t.objects if o["kind"] == "PersistentVolumeClaim"} == {"shared",
                                                                                                   "shop-logs"}
    assert "external volume shared" in finding(t, "volumes[0]").message
    assert finding(t, "volumes.logs.driver") and finding(t, "volumes.logs.driver_opts")


def test_a_bind_mounted_directory_is_reported_not_portable():
    t = tr({"image": "x:1", "volumes": ["/home/me/src:/app"]})
    assert "volumeMounts" not in container(t)
    assert "not carried over" in finding(t, "volumes[0]").message
    assert checklist(t, "persistent volumes").status is Status.WARN


def test_a_bind_mounted_file_is_copied_into_a_configmap():
    conf = b"events {}\nhttp {}\n"
    t = tr({"image": "nginx:1.25", "volumes": ["/proj/nginx.conf:/etc/nginx/nginx.conf:ro"]},
           files={"/proj/nginx.conf": conf})
    cm = obj(t, "ConfigMap", "web-files")
    assert cm["data"] == {"nginx.conf": conf.decode()}
    assert container(t)["volumeMounts"] == [{"name": "files-configmap", "mountPath": "/etc/nginx/nginx.conf",
                                             "subPath": "nginx.conf", "readOnly": True}]
    assert "later edits on disk are not seen" in finding(t, "volumes[0]").message
    assert "|" in to_yaml(t.objects)  # multi-line file content as a block scalar


def test_two_bind_mounted_files_with_one_name_keep_both_contents():
    t = tr({"image": "x:1", "volumes": ["/p/a/app.yml:/etc/a.yml", "/p/b/app.yml:/etc/b.yml", "/p/a/app.yml:/x.yml"]},
           files={"/p/a/app.yml": b"a: 1\n", "/p/b/app.yml": b"b: 2\n"})
    assert obj(t, "ConfigMap")["data"] == {"app.yml": "a: 1\n", "2-app.yml": "b: 2\n"}
    assert [(m["mountPath"], m["subPath"]) for m in container(t)["volumeMounts"]] == [
        ("/etc/a.yml", "app.yml"), ("/etc/b.yml", "2-app.yml"), ("/x.yml", "app.yml")]


def test_a_secret_looking_bind_mounted_file_is_copied_into_a_secret():
    t = tr({"image": "x:1", "volumes": ["/proj/tls/server.key:/tls/server.key:ro"]},
           files={"/proj/tls/server.key": b"-----BEGIN PRIVATE KEY-----"})
    secret = obj(t, "Secret", "web-files")
    assert base64.b64decode(secret["data"]["server.key"]) == b"-----BEGIN PRIVATE KEY-----"
    assert not [o for o in t.objects if o["kind"] == "ConfigMap"]


def test_a_binary_bind_mounted_file_goes_to_binary_data():
    t = tr({"image": "x:1", "volumes": ["/p/logo.png:/www/logo.png"]}, files={"/p/logo.png": b"\x89PNG\xff\x00"})
    cm = obj(t, "ConfigMap")
    assert base64.b64decode(cm["binaryData"]["logo.png"]) == b"\x89PNG\xff\x00"
    assert "read-only in the cluster" in finding(t, "volumes[0]").message


def test_tmpfs_and_anonymous_volumes_become_empty_dirs():
    t = tr({"image": "x:1", "volumes": [
        "/var/cache/app",
        {"type": "tmpfs", "target": "/tmp/fast", "tmpfs": {"size": 67108864}},
        {"type": "volume", "target": "/anon2"},
    ], "tmpfs": ["/run", "/var/tmp:size=64m,mode=1777"], "shm_size": "256m"})
    volumes = {v["name"]: v for v in pod(t)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(t)["volumeMounts"]}
    assert volumes[mounts["/var/cache/app"]] == {"name": mounts["/var/cache/app"], "emptyDir": {}}
    assert volumes[mounts["/tmp/fast"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert volumes[mounts["/anon2"]]["emptyDir"] == {}
    assert volumes[mounts["/run"]]["emptyDir"] == {"medium": "Memory"}
    assert volumes[mounts["/var/tmp"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Mi"}
    assert "strategy" not in obj(t, "Deployment")["spec"]  # nothing persistent
    assert checklist(t, "persistent volumes").status is Status.OK


def test_unknown_mount_types_and_unreadable_entries_are_reported():
    t = tr({"image": "x:1", "volumes": [{"type": "npipe", "source": "\\\\.\\pipe\\x", "target": "/p"},
                                       "a:b:c:d", {"type": "bind", "source": "/x"}]})
    assert "npipe" in finding(t, "volumes[0]").message
    assert finding(t, "volumes[1]") and finding(t, "volumes[2]")


def test_a_pod_volume_name_already_taken_gets_a_twin():
    # A named volume called "volume-1" and the anonymous volume at index 1.
    t = tr({"image": "x:1", "volumes": ["volume-1:/a", "/b"]})
    names = [v["name"] for v in pod(t)["volumes"]]
    assert names == ["volume-1", "volume-1-2"]


# -- secrets and configs --------------------------------------------------------------------


def test_secrets_and_configs_from_files():
    t = tr({"image": "x:1",
            "secrets": ["db_password", {"source": "cert", "target": "/etc/ssl/cert.pem", "mode": 0o440,
                                        "uid": "1000"}],
            "configs": ["app_config", {"source": "logging", "target": "/etc/app/logging.yaml", "mode": "0444"}]},
           secrets={"db_password": {"file": "/p/pw.txt"}, "cert": {"file": "/p/cert.pem"}},
           configs={"app_config": {"file": "/p/app.toml"}, "logging": {"file": "/p/log.yaml"}},
           files={"/p/pw.txt": b"pw\n", "/p/cert.pem": b"CERT", "/p/app.toml": b"port = 1\n",
                  "/p/log.yaml": b"level: info\n"})
    assert base64.b64decode(obj(t, "Secret", "shop-db-password")["data"]["db_password"]) == b"pw\n"
    assert obj(t, "ConfigMap", "shop-app-config")["data"] == {"app_config": "port = 1\n"}
    mounts = {m["mountPath"]: m for m in container(t)["volumeMounts"]}
    # Compose's default targets: /run/secrets/<name> and /<name>.
    assert mounts["/run/secrets/db_password"]["subPath"] == "db_password"
    assert mounts["/app_config"]["subPath"] == "app_config"
    assert mounts["/etc/ssl/cert.pem"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod(t)["volumes"]}
    assert volumes[mounts["/etc/ssl/cert.pem"]["name"]]["secret"]["items"] == [
        {"key": "cert", "path": "cert", "mode": 0o440}]
    assert volumes[mounts["/etc/app/logging.yaml"]["name"]]["configMap"]["items"] == [
        {"key": "logging", "path": "logging", "mode": 0o444}]
    assert "ownership" in finding(t, "secrets[1].uid").message
    assert checklist(t, "secrets").status is Status.WARN


def test_a_relative_secret_target_lands_under_run_secrets():
    t = tr({"image": "x:1", "secrets": [{"source": "s", "target": "custom_name"}]},
           secrets={"s": {"content": "inline"}})
    assert container(t)["volumeMounts"][0]["mountPath"] == "/run/secrets/custom_name"
    assert base64.b64decode(obj(t, "Secret")["data"]["s"]) == b"inline"


def test_unreadable_external_and_environment_sourced_secrets_are_reported_and_not_mounted():
    t = tr({"image": "x:1", "secrets": ["gone", "vault", "from_env", "undefined"]},
           secrets={"gone": {"file": "/p/gone"}, "vault": {"external": True}, "from_env": {"environment": "TOKEN"}},
           files={"/p/gone": "No such file or directory"})
    assert "No such file or directory" in finding(t, "secrets[0]").message
    assert "create Secret vault" in finding(t, "secrets[1]").message
    assert "variable TOKEN" in finding(t, "secrets[2]").message
    assert "not defined" in finding(t, "secrets[3]").message
    # Only the external one is mounted: the user creates it; the others would never exist.
    assert [m["mountPath"] for m in container(t)["volumeMounts"]] == ["/run/secrets/vault"]
    assert checklist(t, "secrets").status is Status.MISSING


def test_a_secret_file_that_was_not_read_is_reported():
    t = tr({"image": "x:1", "configs": ["c"]}, configs={"c": {"file": "/p/c"}})
    assert "not read" in finding(t, "configs[0]").message


# -- user and security ----------------------------------------------------------------------


@pytest.mark.parametrize(("user", "expected", "reported"), [
    ("1000:1000", {"runAsUser": 1000, "runAsGroup": 1000}, False),
    ("1000", {"runAsUser": 1000}, False),
    (1000, {"runAsUser": 1000}, False),
    ("root", {"runAsUser": 0}, False),
    ("0:0", {"runAsUser": 0, "runAsGroup": 0}, False),
    ("app", {}, True),
    ("app:1000", {"runAsGroup": 1000}, True),
])
def test_user(user, expected, reported):
    t = tr({"image": "x:1", "user": user})
    assert container(t).get("securityContext", {}) == expected
    assert bool(findings(t, "user")) == reported


def test_capabilities_privileged_read_only_and_security_opt():
    t = tr({"image": "x:1", "cap_add": ["NET_ADMIN", "CAP_SYS_TIME"], "cap_drop": ["ALL"], "read_only": True,
            "security_opt": ["no-new-privileges:true", "seccomp:unconfined", "apparmor=unconfined",
                             "label:type:svirt_apache_t"]})
    assert container(t)["securityContext"] == {
        "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "Unconfined"},
    }
    assert len(findings(t, "security_opt")) == 2


def test_privileged_wins_over_no_new_privileges_which_kubernetes_refuses_together():
    t = tr({"image": "x:1", "privileged": True, "security_opt": ["no-new-privileges"]})
    assert container(t)["securityContext"] == {"privileged": True}
    assert "privileged wins" in finding(t, "security_opt").message


def test_group_add_and_sysctls():
    t = tr({"image": "x:1", "group_add": ["2000", "audio"],
            "sysctls": {"net.ipv4.tcp_syncookies": 1, "net.core.somaxconn": 1024}})
    assert pod(t)["securityContext"] == {"supplementalGroups": [2000],
                                        "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}
    assert "audio" in finding(t, "group_add").message
    assert "net.core.somaxconn" in finding(t, "sysctls").message
    t = tr({"image": "x:1", "sysctls": ["net.ipv4.ip_local_port_range=1024 65000"]})
    assert pod(t)["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}]
    assert "net.ipv4.ip_local_port_range" in SAFE_SYSCTLS


# -- pod settings ---------------------------------------------------------------------------


def test_stop_grace_period_and_signal():
    t = tr({"image": "x:1", "stop_grace_period": "1m30s"})
    assert pod(t)["terminationGracePeriodSeconds"] == 90
    assert checklist(t, "graceful shutdown").status is Status.OK
    t = tr({"image": "x:1", "stop_grace_period": "1m30s", "stop_signal": "SIGQUIT"})
    assert "STOPSIGNAL" in finding(t, "stop_signal").message
    assert checklist(t, "graceful shutdown").status is Status.WARN
    t = tr({"image": "x:1"})
    assert "terminationGracePeriodSeconds" not in pod(t)
    assert checklist(t, "graceful shutdown").status is Status.MISSING


def test_stop_grace_period_zero_is_kept():
    assert pod(tr({"image": "x:1", "stop_grace_period": "0s"}))["terminationGracePeriodSeconds"] == 0


def test_extra_hosts_in_every_form_become_host_aliases():
    t = tr({"image": "x:1", "extra_hosts": ["db.legacy:10.0.0.5", "cache=10.0.0.6", "db-alias:10.0.0.5",
                                            "v6host:::1", "host.docker.internal:host-gateway"]})
    assert pod(t)["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["db.legacy", "db-alias"]},
                                     {"ip": "10.0.0.6", "hostnames": ["cache"]},
                                     {"ip": "::1", "hostnames": ["v6host"]}]
    assert "host-gateway" in finding(t, "extra_hosts").message
    t = tr({"image": "x:1", "extra_hosts": {"db": "10.0.0.5", "multi": ["10.0.0.7", "10.0.0.8"]}})
    assert pod(t)["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["db"]}, {"ip": "10.0.0.7", "hostnames": ["multi"]},
                                     {"ip": "10.0.0.8", "hostnames": ["multi"]}]


def test_working_dir_tty_stdin_init_and_hostname():
    t = tr({"image": "x:1", "working_dir": "/srv", "tty": True, "stdin_open": True, "init": True,
            "hostname": "Build_Box"})
    assert container(t)["workingDir"] == "/srv"
    assert container(t)["tty"] is True and container(t)["stdin"] is True
    assert pod(t)["shareProcessNamespace"] is True
    assert pod(t)["hostname"] == "build-box"
    assert finding(t, "init").severity is Severity.INFO
    assert "build-box" in finding(t, "hostname").message


def test_dns_settings_join_the_clusters_dns():
    t = tr({"image": "x:1", "dns": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "8.8.4.4"], "dns_search": "corp.example",
            "dns_opt": ["ndots:2", "edns0"]})
    assert pod(t)["dnsConfig"] == {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"], "searches": ["corp.example"],
                                   "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert "dnsPolicy" not in pod(t)  # ClusterFirst: Service names keep resolving
    assert any("8.8.4.4" in f.message for f in findings(t, "dns"))


def test_labels_and_annotations_become_annotations():
    t = tr({"image": "x:1", "labels": {"com.example.team": "shop", "prometheus.io/scrape": True,
                                       "bad key": "x"},
            "annotations": ["com.example.note=hello"]})
    annotations = obj(t, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["com.example.team"] == "shop"
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["com.example.note"] == "hello"
    assert "bad key" not in annotations
    assert any("'bad key'" in f.message for f in findings(t, "labels"))
    assert checklist(t, "monitoring").status is Status.OK


def test_lifecycle_hooks():
    t = tr({"image": "x:1", "post_start": [{"command": ["sh", "-c", "echo up"]}],
            "pre_stop": [{"command": "nginx -s quit", "user": "root"}]})
    assert container(t)["lifecycle"] == {"postStart": {"exec": {"command": ["sh", "-c", "echo up"]}}}
    assert finding(t, "pre_stop")


# -- networks and dependencies ----------------------------------------------------------------


def test_the_default_network_is_silent_and_others_are_reported():
    t = tr({"image": "x:1", "networks": {"default": None}})
    assert not findings(t, "networks")
    assert checklist(t, "network policies").status is Status.OK
    t = tr({"image": "x:1", "networks": {"backend": {"aliases": ["api.internal"]}, "frontend": None}})
    assert "NetworkPolicies" in finding(t, "networks").message
    assert finding(t, "networks.backend.aliases")
    assert checklist(t, "network policies").status is Status.WARN
    t = tr({"image": "x:1", "networks": ["backend"]})
    assert finding(t, "networks")


def test_network_mode_and_links_are_reported():
    t = tr({"image": "x:1", "network_mode": "host", "links": ["db:database"]})
    assert "'host'" in finding(t, "network_mode").message
    assert finding(t, "links").severity is Severity.INFO


def test_depends_on_is_reported_in_both_forms():
    for depends in (["db", "redis"], {"db": {"condition": "service_healthy"}, "redis": {"condition": "service_started"}}):
        t = tr({"image": "x:1", "depends_on": depends})
        assert "initContainers" not in pod(t)
        assert "starts pods in any order" in finding(t, "depends_on").message
        assert checklist(t, "dependencies").status is Status.WARN


def test_waiting_for_dependencies_with_init_containers():
    others = {"db": {"image": "postgres:16", "ports": ["127.0.0.1:5432:5432"]},
              "Cache_Store": {"image": "redis:7", "expose": ["6379"]},
              "worker": {"image": "w:1"},
              "migrate": {"image": "m:1"},
              "optional": {"image": "o:1", "ports": ["80"]}}
    t = tr({"image": "x:1", "depends_on": {
        "db": {"condition": "service_healthy"}, "Cache_Store": {"condition": "service_started"},
        "worker": {"condition": "service_started"},
        "migrate": {"condition": "service_completed_successfully"},
        "optional": {"condition": "service_started", "required": False}}},
        others=others, options=TranslateOptions(wait_for_dependencies=True, wait_image="busybox:1.36.1"))
    inits = pod(t)["initContainers"]
    assert [i["name"] for i in inits] == ["wait-for-db", "wait-for-cache-store", "wait-for-worker"]
    assert inits[0]["env"] == [{"name": "HOST", "value": "db"}, {"name": "PORT", "value": "5432"}]
    assert inits[1]["env"] == [{"name": "HOST", "value": "cache-store"}, {"name": "PORT", "value": "6379"}]
    assert inits[0]["image"] == "busybox:1.36.1"
    # Names travel in env; the script is a constant (no shell text built from names).
    assert inits[0]["command"][:2] == ["sh", "-c"] and "nc -z" in inits[0]["command"][2]
    assert inits[2]["env"] == [{"name": "HOST", "value": "worker"}]
    assert "nslookup" in inits[2]["command"][2]
    assert any("migrate" in f.message for f in findings(t, "depends_on"))
    assert checklist(t, "dependencies").status is Status.OK


# -- everything else is reported by name -----------------------------------------------------


@pytest.mark.parametrize("key", sorted(_NOT_CARRIED))
def test_every_key_without_a_counterpart_is_reported_by_name(key):
    t = tr({"image": "x:1", key: "value"})
    assert finding(t, key).message


def test_an_unknown_key_is_reported_by_name():
    t = tr({"image": "x:1", "frobnicate": {"a": 1}})
    assert "Ferryman knows no Kubernetes counterpart" in finding(t, "frobnicate").message


def test_extension_keys_are_reported_as_information():
    assert finding(tr({"image": "x:1", "x-tool": {"a": 1}}), "x-tool").severity is Severity.INFO


@pytest.mark.parametrize("config", [
    {"ports": "80:80", "expose": 3000, "cap_add": "NET_ADMIN", "dns": "1.1.1.1", "tmpfs": "/run"},
    {"ports": [None, True, {"published": 80}], "volumes": [None, 3, {"type": "volume"}]},
    {"environment": "A=1", "labels": 7, "sysctls": "x", "extra_hosts": ["nocolon"], "deploy": {"labels": "x"}},
    {"healthcheck": {"test": ["CMD"], "interval": "soon", "retries": "many"}, "stop_grace_period": "later"},
    {"healthcheck": "yes", "deploy": [], "secrets": [3], "configs": [{"source": None}], "user": ":"},
    {"deploy": {"resources": "lots", "replicas": "two"}},
    {"deploy": {"resources": {"limits": [], "reservations": {"cpus": "half"}}}},
    {"command": "unterminated 'quote", "depends_on": {"db": None}, "networks": ["a", "b"]},
    {"post_start": ["echo"], "pre_stop": [{"command": None}], "dns_opt": ["ndots"], "group_add": [None]},
])
def test_odd_shapes_are_reported_never_a_crash(config):
    t = tr({"image": "x:1", **config})
    assert t.warnings


def test_the_checklist_follows_the_migration_checklist():
    t = tr({"image": "x:1", "healthcheck": {"test": ["CMD", "true"]}, "stop_grace_period": "5s",
            "deploy": {"resources": {"limits": {"memory": "1g"}, "reservations": {"memory": "512m"}}}})
    statuses = {c.topic: c.status for c in t.checklist}
    assert statuses == {
        "image": Status.OK, "environment": Status.OK, "health checks": Status.OK, "graceful shutdown": Status.OK,
        "resource limits": Status.OK, "persistent volumes": Status.OK, "dependencies": Status.OK,
        "network policies": Status.OK, "secrets": Status.OK, "monitoring": Status.MISSING, "logging": Status.OK,
    }


# -- YAML ---------------------------------------------------------------------------------


def test_to_yaml_is_multi_document_round_trips_and_has_no_anchors():
    t = tr({"image": "x:1", "ports": ["80:80"], "environment": {"DB_PASSWORD": "p"},
            "healthcheck": {"test": ["CMD", "true"]}, "volumes": ["d:/d"]})
    text = to_yaml(t.objects)
    assert text.count("---\n") == len(t.objects)
    assert text.startswith("---\n")
    assert list(yaml.safe_load_all(text)) == t.objects
    assert "&id" not in text and "*id" not in text
    # Stable key order: what a reviewer expects at the top of every object.
    for document in text.split("---\n")[1:]:
        assert document.startswith("apiVersion: ")
        assert document.splitlines()[1].startswith("kind: ")


def test_masked_hides_secret_values_only():
    t = tr({"image": "x:1", "environment": {"DB_PASSWORD": "hunter2", "MODE": "prod"}})
    shown = masked(t.objects)
    assert obj(Translation("web", shown, [], [], []), "Secret")["data"] == {"DB_PASSWORD": "*****"}
    assert "hunter2" not in to_yaml(shown)
    assert obj(t, "Secret")["data"]["DB_PASSWORD"] != "*****"  # the originals are untouched


# -- a v2-shaped document, end to end ---------------------------------------------------------


def test_a_compose_v2_json_service_translates():
    doc = json.loads("""{
      "name": "shop",
      "services": {
        "api": {
          "command": ["node", "server.js"],
          "depends_on": {"db": {"condition": "service_healthy", "required": true, "restart": true}},
          "deploy": {"resources": {"limits": {"cpus": 0.5, "memory": "268435456"}}},
          "environment": {"NODE_ENV": "production", "JWT_SECRET": "s3cret", "UNSET": null},
          "healthcheck": {"test": ["CMD-SHELL", "wget -qO- localhost:3000/health"], "interval": "10s",
                          "timeout": "3s", "retries": 3, "start_period": "15s"},
          "image": "shop/api:1.2.0",
          "networks": {"default": null},
          "ports": [{"mode": "ingress", "target": 3000, "published": "3000", "protocol": "tcp"}],
          "restart": "unless-stopped",
          "stop_grace_period": "20s",
          "volumes": [{"type": "volume", "source": "uploads", "target": "/uploads", "volume": {}},
                      {"type": "bind", "source": "/home/me/shop/api", "target": "/src",
                       "bind": {"create_host_path": true}}]
        },
        "db": {"image": "postgres:16", "ports": [{"target": 5432, "protocol": "tcp", "mode": "ingress"}]}
      },
      "volumes": {"uploads": {"name": "shop_uploads"}}
    }""")
    t = translate(service_from_config(doc, "api"), namespace="dev")
    assert_valid(t)
    c = container(t)
    assert c["args"] == ["node", "server.js"]
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    assert c["startupProbe"]["failureThreshold"] == 5
    assert env(t)["JWT_SECRET"] == {"secretKeyRef": {"name": "api-env", "key": "JWT_SECRET"}}
    assert obj(t, "PersistentVolumeClaim")["metadata"]["name"] == "shop-uploads"
    assert pod(t)["terminationGracePeriodSeconds"] == 20
    assert [(h.host_port, h.service_port) for h in t.host_ports] == [(3000, 3000)]
    assert not findings(t, "restart") and not findings(t, "networks")
    assert "/home/me/shop/api" in finding(t, "volumes[1]").message


# -- every fixture project, resolved by the real compose CLI ------------------------------------

_FIXTURE_FILES = {"override": ["docker-compose.yml", "docker-compose.dev.yml"]}
_BROKEN = {"broken", "missing-var"}
# Keys that are carried over exactly and need no finding; every other key of a fixture
# service must show up in the findings by name.
_EXACT_KEYS = {
    "image", "command", "entrypoint", "environment", "expose", "working_dir", "cap_add", "cap_drop", "privileged",
    "read_only", "user", "tty", "stdin_open", "extra_hosts", "stop_grace_period", "deploy", "mem_limit", "cpus",
    "mem_reservation", "tmpfs", "secrets", "configs", "group_add", "sysctls", "security_opt", "networks",
    "hostname", "restart", "volumes", "ports", "dns", "dns_search", "healthcheck", "scale",
}


def _fixture_services() -> list[tuple[str, str]]:
    found = []
    for project in sorted(p for p in FIXTURES.iterdir() if p.is_dir() and p.name not in _BROKEN):
        doc = yaml.safe_load((project / "docker-compose.yml").read_text())
        found += [(project.name, name) for name in doc["services"]]
    return found


@pytest.fixture(scope="module")
def resolved_fixtures() -> dict[tuple[str, str], ComposeService]:
    async def resolve_all():
        await require_compose_cli()
        # One CLI run per project; every service is then picked from the same document.
        results = {}
        for project in sorted({p for p, _ in _fixture_services()}):
            files = [Path(f) for f in _FIXTURE_FILES.get(project, [])] or None
            resolved = await resolve_project(files, FIXTURES / project, profiles=["debug"])
            for name in resolved.document["services"]:
                results[(project, name)] = read_referenced_files(resolved.service(name))
        return results

    return asyncio.run(resolve_all())


@pytest.mark.parametrize(("project", "service"), _fixture_services())
def test_every_fixture_service_translates_to_valid_objects_and_drops_nothing(resolved_fixtures, project, service):
    composed = resolved_fixtures[(project, service)]
    for options, image in ((TranslateOptions(), None),
                           (TranslateOptions(wait_for_dependencies=True, image_imported=True), "local/img:ferryman-1")):
        t = translate(composed, namespace="dev", image=image, options=options)
        assert_valid(t)
        reported = {re.split(r"[.\[]", f.key)[0] for f in t.warnings}
        for key in composed.config:
            assert key in _EXACT_KEYS or key in reported, f"{project}/{service}: {key} silently dropped"


def test_webapp_fixture_in_detail(resolved_fixtures):
    web = translate(resolved_fixtures[("webapp", "web")], namespace="dev", image="shop/web:ferryman-9c1f")
    c = container(web)
    assert c["image"] == "shop/web:ferryman-9c1f" and c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"] == ["gunicorn", "shop.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
    assert c["livenessProbe"]["exec"]["command"] == ["curl", "-fsS", "http://localhost:8000/healthz"]
    assert c["startupProbe"]["failureThreshold"] == 7  # ceil(20/15) + 5
    secret_env = sorted(e["name"] for e in c["env"] if "valueFrom" in e)
    assert secret_env == ["DATABASE_URL", "DJANGO_SECRET_KEY", "STRIPE_API_KEY"]
    assert [(h.host_port, h.service_port) for h in web.host_ports] == [(8080, 8000)]
    db = translate(resolved_fixtures[("webapp", "db")], namespace="dev")
    c = container(db)
    # $${POSTGRES_USER} in the file: the probe's shell expands it in the container.
    assert c["readinessProbe"]["exec"]["command"] == ["/bin/sh", "-c",
                                                      "pg_isready -U ${POSTGRES_USER} -d ${POSTGRES_DB}"]
    assert obj(db, "PersistentVolumeClaim")["metadata"]["name"] == "webapp-pgdata"
    assert pod(db)["terminationGracePeriodSeconds"] == 90
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/var/lib/postgresql/data", "/dev/shm"}
    assert [(h.host_port, h.host_ip) for h in db.host_ports] == [(5432, "127.0.0.1")]
    redis = translate(resolved_fixtures[("webapp", "redis")], namespace="dev")
    assert container(redis)["args"] == ["redis-server", "--appendonly", "yes", "--save", "60 1"]
    assert container(redis)["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    assert obj(redis, "Service")["spec"]["ports"][0]["port"] == 6379
    worker = translate(resolved_fixtures[("webapp", "worker")], namespace="dev")
    assert obj(worker, "Deployment")["spec"]["replicas"] == 2
    assert obj(worker, "Service")["spec"]["clusterIP"] == "None"
    assert container(worker)["resources"] == {"limits": {"cpu": "500m", "memory": "512Mi"},
                                              "requests": {"cpu": "250m", "memory": "128Mi"}}


def test_fixtures_with_files_carry_them_over(resolved_fixtures):
    proxy = translate(resolved_fixtures[("volumes", "proxy")], namespace="dev")
    assert obj(proxy, "ConfigMap", "proxy-files")["data"]["nginx.conf"].startswith("events {}")
    assert "server.key" in obj(proxy, "Secret", "proxy-files")["data"]
    assert "not carried over" in finding(proxy, "volumes[1]").message  # the static/ directory
    assert "No such file" in finding(proxy, "volumes[3]").message
    app = translate(resolved_fixtures[("secrets-configs", "app")], namespace="dev")
    assert base64.b64decode(obj(app, "Secret", "secrets-configs-db-password")["data"]["db_password"]) == \
        b"correct horse battery staple\n"
    assert obj(app, "ConfigMap", "secrets-configs-logging-config")["data"]["logging_config"].startswith("version: 1")
    assert env(app) == {"DB_PASSWORD_FILE": "/run/secrets/db_password"}


def test_resources_v2_fixture(resolved_fixtures):
    t = translate(resolved_fixtures[("resources-v2", "legacy")], namespace="dev")
    assert container(t)["resources"] == {"limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"memory": "512Mi"}}
    assert obj(t, "Deployment")["spec"]["replicas"] == 3
    for key in ("cpu_shares", "pids_limit", "oom_score_adj", "restart"):
        assert findings(t, key), key


def test_security_fixture(resolved_fixtures):
    t = translate(resolved_fixtures[("security", "hardened")], namespace="dev")
    assert container(t)["securityContext"] == {
        "runAsUser": 1000, "runAsGroup": 1000,
        "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
    }
    assert pod(t)["terminationGracePeriodSeconds"] == 90
    assert pod(t)["hostAliases"] == [{"ip": "10.1.2.3", "hostnames": ["legacy.internal", "legacy-alias"]}]
    for key in ("ulimits", "logging", "stop_signal", "sysctls", "group_add"):
        assert findings(t, key), key
