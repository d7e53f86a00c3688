"""Describe text: what a user reads to find out why a pod is not ready.

Objects are shaped as the Kubernetes API and `docker inspect` serve them; the
assertions are on the lines a user would read, not on the whole layout.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from backends.describe import (
    SECRET_MASK,
    describe_container,
    describe_object,
    is_secret_name,
    mask_env_value,
)
from backends.model import ClusterEvent

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def event(kind: str, name: str, reason: str, message: str, *, type_: str = "Normal", count: int = 1,
          first_ago: int = 300, last_ago: int = 300, component: str = "kubelet",
          namespace: str = "shop") -> ClusterEvent:
    return ClusterEvent(
        namespace=namespace, name=f"{name}.{reason}", type=type_, reason=reason, object_kind=kind,
        object_name=name, message=message, count=count, first_seen=NOW - timedelta(seconds=first_ago),
        last_seen=NOW - timedelta(seconds=last_ago), component=component,
    )


def crashing_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c-x2x9q",
            "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T11:00:00Z"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "controller": True},
            ],
        },
        "spec": {
            "nodeName": "k3s-server",
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "web",
                    "image": "registry.local/shop/web:3f2a",
                    "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
                    "env": [
                        {"name": "DB_HOST", "value": "db"},
                        {"name": "DB_PASSWORD", "value": "hunter2"},
                        {"name": "STRIPE_API_KEY", "value": "sk_live_abc"},
                        {"name": "DATABASE_URL", "value": "postgres://shop:s3cret@db:5432/shop"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                        "fieldPath": "metadata.name"}}},
                        {"name": "SESSION_TOKEN", "valueFrom": {"secretKeyRef": {"name": "web", "key": "token"}}},
                    ],
                    "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "32Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                                      "periodSeconds": 5, "failureThreshold": 2},
                    "readinessProbe": {"exec": {"command": ["pg_isready", "-h", "db"]}, "initialDelaySeconds": 3},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                     {"name": "config", "mountPath": "/etc/web", "readOnly": True}],
                },
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
                        {"name": "config", "configMap": {"name": "web-config"}}],
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.5",
            "podIP": "10.42.0.17",
            "startTime": "2024-05-01T11:50:00Z",
            "qosClass": "Burstable",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": False,
                    "restartCount": 6,
                    "image": "registry.local/shop/web:3f2a",
                    "containerID": "containerd://9a8b7c",
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off 2m40s restarting failed container=web"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                                 "startedAt": "2024-05-01T11:57:00Z",
                                                 "finishedAt": "2024-05-01T11:57:09Z"}},
                },
            ],
        },
    }


def lines_of(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def test_pod_shows_why_it_crashes():
    text = describe_object(crashing_pod(), now=NOW)
    lines = lines_of(text)
    assert "Name: web-7d4b9c-x2x9q" in lines
    assert "Namespace: shop" in lines
    assert "Node: k3s-server/10.0.0.5" in lines
    assert "Start Time: Wed, 01 May 2024 11:50:00 +0000" in lines
    assert "Status: Running" in lines
    assert "IP: 10.42.0.17" in lines
    assert "Controlled By: ReplicaSet/web-7d4b9c" in lines
    # The answer to "why is it not ready": waiting in a back-off after an OOM kill.
    state = lines.index("State: Waiting")
    assert lines[state + 1] == "Reason: CrashLoopBackOff"
    last = lines.index("Last State: Terminated")
    assert lines[last + 1:last + 3] == ["Reason: OOMKilled", "Exit Code: 137"]
    assert "Ready: False" in lines
    assert "Restart Count: 6" in lines
    assert "Port: 8080/TCP (http)" in lines
    assert "Liveness: http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=2" in lines
    assert "Readiness: exec [pg_isready -h db] delay=3s timeout=1s period=10s #success=1 #failure=3" in lines
    assert "memory: 64Mi" in lines
    assert "/etc/web from config (ro)" in lines
    assert "QoS Class: Burstable" in lines


def test_pod_labels_continue_on_aligned_lines():
    text = describe_object(crashing_pod(), now=NOW).splitlines()
    labels = next(i for i, line in enumerate(text) if line.startswith("Labels:"))
    assert text[labels].endswith("app=web")
    assert text[labels + 1].strip() == "pod-template-hash=7d4b9c"
    # Continuation values start in the same column as the first one.
    assert text[labels].index("app=web") == text[labels + 1].index("pod-template-hash")


def test_pod_conditions_table():
    lines = lines_of(describe_object(crashing_pod(), now=NOW))
    start = lines.index("Conditions:")
    assert lines[start + 1:start + 6] == [
        "Type Status", "---- ------", "Initialized True", "Ready False", "PodScheduled True",
    ]


def test_pod_secrets_are_masked():
    text = describe_object(crashing_pod(), now=NOW)
    lines = lines_of(text)
    assert "DB_HOST: db" in lines
    assert f"DB_PASSWORD: {SECRET_MASK}" in lines
    assert f"STRIPE_API_KEY: {SECRET_MASK}" in lines
    assert f"DATABASE_URL: postgres://shop:{SECRET_MASK}@db:5432/shop" in lines
    assert "POD_NAME: (v1:metadata.name)" in lines
    assert "SESSION_TOKEN: <set to the key 'token' in secret 'web'>" in lines
    for secret in ("hunter2", "sk_live_abc", "s3cret"):
        assert secret not in text


def test_events_only_of_the_object_with_kubectl_ages():
    events = [
        event("Pod", "web-7d4b9c-x2x9q", "Scheduled", "Successfully assigned shop/web-7d4b9c-x2x9q to k3s-server",
              component="default-scheduler", first_ago=600, last_ago=600),
        event("Pod", "web-7d4b9c-x2x9q", "BackOff", "Back-off restarting failed container web",
              type_="Warning", count=12, first_ago=480, last_ago=20),
        event("Pod", "db-0", "Pulled", "Container image already present"),
        event("Deployment", "web-7d4b9c-x2x9q", "ScalingReplicaSet", "not a pod"),
        event("Pod", "web-7d4b9c-x2x9q", "Killing", "other namespace", namespace="staging"),
    ]
    lines = lines_of(describe_object(crashing_pod(), events, now=NOW))
    start = lines.index("Events:")
    assert lines[start + 1:] == [
        "Type Reason Age From Message",
        "---- ------ --- ---- -------",
        "Normal Scheduled 10m default-scheduler Successfully assigned shop/web-7d4b9c-x2x9q to k3s-server",
        "Warning BackOff 20s (x12 over 8m) kubelet Back-off restarting failed container web",
    ]


def test_no_events_reads_none():
    assert describe_object(crashing_pod(), now=NOW).rstrip().splitlines()[-1].split() == ["Events:", "<none>"]


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                     "creationTimestamp": "2024-04-30T09:00:00Z",
                     "annotations": {"deployment.kubernetes.io/revision": "4"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "50%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "shop/web:4",
                                         "ports": [{"containerPort": 80}, {"containerPort": 443}],
                                         "env": [{"name": "ADMIN_PASSWORD", "value": "letmein"}]}]},
            },
        },
        "status": {
            "replicas": 3, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1,
            "unavailableReplicas": 2,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
            ],
        },
    }


def test_deployment_replicas_strategy_template_and_conditions():
    events = [event("Deployment", "web", "ScalingReplicaSet", "Scaled up replica set web-7d4b9c to 3",
                    component="deployment-controller", first_ago=90, last_ago=90)]
    text = describe_object(deployment(), events, now=NOW)
    lines = lines_of(text)
    assert "Selector: app=web" in lines
    assert "Replicas: 3 desired | 2 updated | 3 total | 1 ready | 1 available | 2 unavailable" in lines
    assert "StrategyType: RollingUpdate" in lines
    assert "RollingUpdateStrategy: 1 max unavailable, 50% max surge" in lines
    assert "Pod Template:" in lines
    assert "Image: shop/web:4" in lines
    assert "Ports: 80/TCP, 443/TCP" in lines
    assert f"ADMIN_PASSWORD: {SECRET_MASK}" in lines and "letmein" not in text
    start = lines.index("Conditions:")
    assert lines[start + 3:start + 5] == ["Available False MinimumReplicasUnavailable",
                                          "Progressing True ReplicaSetUpdated"]
    assert "Normal ScalingReplicaSet 90s deployment-controller Scaled up replica set web-7d4b9c to 3" in lines


def test_statefulset_update_strategy_and_claims():
    sts = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "replicas": 1, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "postgres", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
        },
        "status": {"replicas": 1, "readyReplicas": 0, "updatedReplicas": 1},
    }
    lines = lines_of(describe_object(sts, now=NOW))
    assert "Replicas: 1 desired | 1 updated | 1 total | 0 ready | 0 available" in lines
    assert "Update Strategy: RollingUpdate" in lines
    assert "Partition: 0" in lines
    assert "Service Name: db" in lines
    assert "StorageClass: local-path" in lines
    assert "Capacity: 1Gi" in lines
    assert "Conditions: <none>" in lines


def test_service_ports_target_and_node_ports():
    svc = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "type": "NodePort", "clusterIP": "10.43.12.34", "clusterIPs": ["10.43.12.34"],
            "selector": {"app": "web", "tier": "front"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                      {"port": 9090, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }
    events = [event("Service", "web", "Type", "ClusterIP -> NodePort", component="service-controller")]
    lines = lines_of(describe_object(svc, events, now=NOW))
    assert "Type: NodePort" in lines
    assert "IP: 10.43.12.34" in lines
    assert "Selector: app=web,tier=front" in lines
    assert lines[lines.index("Port: http 80/TCP") + 1:][:2] == ["TargetPort: 8080/TCP", "NodePort: http 30080/TCP"]
    assert "Port: <unset> 9090/TCP" in lines
    assert "TargetPort: metrics/TCP" in lines
    assert "External Traffic Policy: Cluster" in lines
    assert "Normal Type 5m service-controller ClusterIP -> NodePort" in lines


def test_generic_kind_dumps_spec_and_status():
    cm = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop", "creationTimestamp": "2024-04-30T09:00:00Z"},
        "spec": {"rules": [{"host": "shop.local", "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}]},
        "status": {"loadBalancer": {}},
    }
    text = describe_object(cm, now=NOW)
    lines = lines_of(text)
    assert "Kind: Ingress" in lines
    assert "API Version: networking.k8s.io/v1" in lines
    assert "Spec:" in lines
    assert "- host: shop.local" in lines
    assert "- path: /" in lines
    assert "Events: <none>" in lines


def test_secret_shows_sizes_never_values():
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "db", "namespace": "shop"},
              "data": {"password": base64.b64encode(b"hunter2").decode()}}
    text = describe_object(secret, now=NOW)
    assert "password: 7 bytes" in text
    assert "hunter2" not in text and base64.b64encode(b"hunter2").decode() not in text


def test_secret_names():
    for name in ("DB_PASSWORD", "POSTGRES_PASSWORD_FILE", "API_KEY", "aws_secret_access_key", "GITHUB_TOKEN",
                 "DB_PASS", "SENTRY_DSN", "BASIC_AUTH", "PRIVATE_KEY_PEM"):
        assert is_secret_name(name), name
    for name in ("DB_HOST", "KEYCLOAK_URL", "PATH", "PWD", "PASSENGER_COUNT", "LOG_LEVEL"):
        assert not is_secret_name(name), name
    assert mask_env_value("REDIS_URL", "redis://default:pw@cache:6379") == f"redis://default:{SECRET_MASK}@cache:6379"
    assert mask_env_value("DB_PASSWORD", "") == ""


def inspect_dict() -> dict:
    return {
        "Id": "4f5e6d7c8b9a0123456789abcdef",
        "Name": "/shop-web-1",
        "Created": "2024-05-01T11:00:00.123456789Z",
        "Path": "docker-entrypoint.sh",
        "Args": ["node", "server.js"],
        "Image": "sha256:deadbeef",
        "RestartCount": 3,
        "State": {
            "Status": "exited", "Running": False, "OOMKilled": True, "ExitCode": 137, "Error": "",
            "StartedAt": "2024-05-01T11:58:00.5Z", "FinishedAt": "2024-05-01T11:59:30.987654321Z",
            "Health": {"Status": "unhealthy", "FailingStreak": 4, "Log": [
                {"Start": "2024-05-01T11:59:00Z", "End": "2024-05-01T11:59:01Z", "ExitCode": 1,
                 "Output": "curl: (7) Failed to connect to localhost port 3000\n"},
                {"Start": "2024-05-01T11:59:10Z", "End": "2024-05-01T11:59:11Z", "ExitCode": 1,
                 "Output": "curl: (28) Operation timed out"},
            ]},
        },
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5}},
        "Config": {
            "Image": "shop/web:dev",
            "Env": ["NODE_ENV=production", "JWT_SECRET=abc123", "PATH=/usr/local/bin:/usr/bin"],
            "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"},
        },
        "Mounts": [{"Type": "volume", "Name": "shop_data", "Source": "/var/lib/docker/volumes/shop_data/_data",
                    "Destination": "/data", "RW": True},
                   {"Type": "bind", "Source": "/home/me/shop/conf", "Destination": "/conf", "RW": False}],
        "NetworkSettings": {
            "Ports": {"3000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "3000"}], "9229/tcp": None},
            "Networks": {"shop_default": {"IPAddress": "172.18.0.4", "Aliases": ["shop-web-1", "web"]}},
        },
    }


def test_container_state_health_and_wiring():
    text = describe_container(inspect_dict())
    lines = lines_of(text)
    assert "Name: shop-web-1" in lines
    assert "ID: 4f5e6d7c8b9a" in lines
    assert "Image: shop/web:dev" in lines
    assert "Command: docker-entrypoint.sh node server.js" in lines
    assert "State: exited" in lines
    assert "Exit Code: 137" in lines
    assert "OOMKilled: true" in lines
    assert "Started: Wed, 01 May 2024 11:58:00 +0000" in lines
    assert "Finished: Wed, 01 May 2024 11:59:30 +0000" in lines
    assert "Health: unhealthy" in lines
    assert "Failing Streak: 4" in lines
    probe = lines.index("Wed, 01 May 2024 11:59:10 +0000 exit 1")
    assert lines[probe + 1] == "curl: (28) Operation timed out"
    assert "curl: (7) Failed to connect to localhost port 3000" in lines
    assert "Restart Count: 3" in lines
    assert "Restart Policy: on-failure (max 5)" in lines
    assert "Ports: 0.0.0.0:3000->3000/tcp" in lines
    assert "9229/tcp" in lines
    assert "Mounts: /data from volume shop_data (rw)" in lines
    assert "/conf from bind /home/me/shop/conf (ro)" in lines
    assert "shop_default: 172.18.0.4 (aliases: shop-web-1, web)" in lines
    assert "com.docker.compose.service=web" in lines


def test_container_env_masks_secrets():
    text = describe_container(inspect_dict())
    lines = lines_of(text)
    assert "NODE_ENV: production" in lines
    assert f"JWT_SECRET: {SECRET_MASK}" in lines
    assert "abc123" not in text


def test_running_container_without_healthcheck():
    running = inspect_dict()
    running["State"] = {"Status": "running", "ExitCode": 0, "OOMKilled": False,
                        "StartedAt": "2024-05-01T11:58:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}
    lines = lines_of(describe_container(running))
    assert "State: running" in lines
    assert "OOMKilled: false" in lines
    assert not any(line.startswith(("Finished:", "Health:")) for line in lines)
