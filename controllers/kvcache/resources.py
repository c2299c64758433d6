"""The objects a KVCache owns (pure bodies): the cache servers' StatefulSet and headless Service, and
with a managed metadata store a Redis Deployment and Service. Each carries a hash of what it should
be (SPEC_HASH), so the controller patches it only when the KVCache's spec changed it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from controllers.kvcache.model import (
    GROUP,
    KIND,
    NAME_LABEL,
    ROLE_LABEL,
    SPEC_HASH,
    VERSION,
    KVCacheSpec,
    pool_name,
)

REDIS_PORT = 6379


def _meta(name: str, namespace: str, owner: str, uid: str, role: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace,
            "labels": {NAME_LABEL: owner, ROLE_LABEL: role, "app.kubernetes.io/managed-by": "brix-controllers"},
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": owner, "uid": uid,
                                 "controller": True, "blockOwnerDeletion": True}]}


def _stamp(obj: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(obj["spec"], sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"].setdefault("annotations", {})[SPEC_HASH] = digest
    return obj


def spec_hash(obj: dict[str, Any] | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("annotations", {}).get(SPEC_HASH)


def redis_name(name: str) -> str:
    return f"{name}-redis"


def redis_address(name: str, namespace: str, spec: KVCacheSpec) -> str:
    if spec.redis_address:
        return spec.redis_address
    return f"{redis_name(name)}.{namespace}.svc.cluster.local:{REDIS_PORT}" if spec.managed_redis else ""


def pool_url(name: str, namespace: str, spec: KVCacheSpec) -> str:
    """What engines pass as --kv-pool."""
    address = redis_address(name, namespace, spec)
    if address:
        return f"redis://{address}/0?pool={pool_name(namespace, name)}"
    return f"kvcache://{name}-0.{name}.{namespace}.svc.cluster.local:{spec.port}"


def cache_args(name: str, namespace: str, spec: KVCacheSpec) -> list[str]:
    args = ["kvcache", "serve", "--host=0.0.0.0", f"--port={spec.port}", f"--http-port={spec.http_port}",
            f"--capacity={spec.capacity}", f"--eviction={spec.eviction}", "--advertise=$(POD_IP)"]
    address = redis_address(name, namespace, spec)
    if address:
        args += [f"--redis=redis://{address}/0", f"--pool={pool_name(namespace, name)}"]
    return args


def statefulset(name: str, namespace: str, uid: str, spec: KVCacheSpec) -> dict[str, Any]:
    selector = {NAME_LABEL: name, ROLE_LABEL: "cache"}
    container: dict[str, Any] = {
        "name": "kvcache", "image": spec.image, "args": cache_args(name, namespace, spec),
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "kvcache", "containerPort": spec.port},
                  {"name": "metrics", "containerPort": spec.http_port}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10},
    }
    if spec.resources:
        container["resources"] = spec.resources
    return _stamp({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(name, namespace, name, uid, "cache"),
        "spec": {"replicas": spec.replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": selector},
                 "updateStrategy": {"type": "RollingUpdate"},
                 "template": {"metadata": {"labels": dict(selector)},
                              "spec": {"containers": [container], "enableServiceLinks": False,
                                       "terminationGracePeriodSeconds": 5}}}})


def headless_service(name: str, namespace: str, uid: str, spec: KVCacheSpec) -> dict[str, Any]:
    return _stamp({
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, name, uid, "cache"),
        "spec": {"clusterIP": "None", "selector": {NAME_LABEL: name, ROLE_LABEL: "cache"},
                 "ports": [{"name": "kvcache", "port": spec.port, "targetPort": spec.port, "protocol": "TCP"},
                           {"name": "metrics", "port": spec.http_port, "targetPort": spec.http_port,
                            "protocol": "TCP"}]}})


def redis_deployment(name: str, namespace: str, uid: str, spec: KVCacheSpec) -> dict[str, Any]:
    selector = {NAME_LABEL: name, ROLE_LABEL: "metadata"}
    return _stamp({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(redis_name(name), namespace, name, uid, "metadata"),
        "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": dict(selector)}, "spec": {
                     "enableServiceLinks": False,
                     "containers": [{
                         "name": "redis", "image": spec.redis_image,
                         # membership only: nothing to persist, heartbeats rebuild it within a TTL
                         "args": ["--save", "", "--appendonly", "no"],
                         "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
                         "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 2}}]}}}})


def redis_service(name: str, namespace: str, uid: str, spec: KVCacheSpec) -> dict[str, Any]:
    return _stamp({
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(redis_name(name), namespace, name, uid, "metadata"),
        "spec": {"selector": {NAME_LABEL: name, ROLE_LABEL: "metadata"},
                 "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT, "protocol": "TCP"}]}})


def desired(name: str, namespace: str, uid: str, spec: KVCacheSpec) -> list[dict[str, Any]]:
    objs = [headless_service(name, namespace, uid, spec), statefulset(name, namespace, uid, spec)]
    if spec.managed_redis:
        objs = [redis_service(name, namespace, uid, spec), redis_deployment(name, namespace, uid, spec), *objs]
    return objs
