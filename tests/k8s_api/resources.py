"""The resource table: what a resource type is, the built-in ones, URL routes and API errors."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

Obj = dict[str, Any]
Reply = tuple[int, Any]


@dataclasses.dataclass(frozen=True)
class ScalePaths:
    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    selector: str | None = None  # a string field (CRDs); None: built from .spec.selector


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]  # served versions, the storage/preferred one first
    plural: str
    kind: str
    namespaced: bool
    status: bool = False
    scale: ScalePaths | None = None
    binding: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = ""
    verbs: tuple[str, ...] = tuple(ALL_VERBS)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def subresources(self) -> set[str]:
        return ({"status"} if self.status else set()) | ({"scale"} if self.scale else set()) \
            | ({"binding"} if self.binding else set())


def builtin_types() -> list[ResourceType]:
    deploy_scale = ScalePaths()
    t = ResourceType
    return [
        t("", ("v1",), "namespaces", "Namespace", False, status=True, short_names=("ns",)),
        t("", ("v1",), "nodes", "Node", False, status=True, short_names=("no",)),
        t("", ("v1",), "pods", "Pod", True, status=True, binding=True, short_names=("po",)),
        t("", ("v1",), "services", "Service", True, status=True, short_names=("svc",)),
        t("", ("v1",), "endpoints", "Endpoints", True, short_names=("ep",)),
        t("", ("v1",), "configmaps", "ConfigMap", True, short_names=("cm",)),
        t("", ("v1",), "secrets", "Secret", True),
        t("", ("v1",), "events", "Event", True, short_names=("ev",)),
        t("", ("v1",), "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        t("", ("v1",), "persistentvolumeclaims", "PersistentVolumeClaim", True, status=True),
        t("", ("v1",), "bindings", "Binding", True, verbs=("create",)),
        t("apps", ("v1",), "deployments", "Deployment", True, status=True, scale=deploy_scale),
        t("apps", ("v1",), "replicasets", "ReplicaSet", True, status=True, scale=deploy_scale),
        t("apps", ("v1",), "statefulsets", "StatefulSet", True, status=True, scale=deploy_scale),
        t("apps", ("v1",), "daemonsets", "DaemonSet", True, status=True),
        t("apps", ("v1",), "controllerrevisions", "ControllerRevision", True),
        t("coordination.k8s.io", ("v1",), "leases", "Lease", True),
        t("discovery.k8s.io", ("v1",), "endpointslices", "EndpointSlice", True),
        t("events.k8s.io", ("v1",), "events", "Event", True),
        t("policy", ("v1",), "poddisruptionbudgets", "PodDisruptionBudget", True, status=True),
        t("scheduling.k8s.io", ("v1",), "priorityclasses", "PriorityClass", False),
        t("apiextensions.k8s.io", ("v1",), "customresourcedefinitions", "CustomResourceDefinition",
          False, status=True, short_names=("crd",)),
    ]


CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")  # the key of the CRD resource type


class ApiError(Exception):
    """Answered as a Kubernetes Status: what went wrong, with the real server's reason."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(rt)} "{name}" not found',
                    name=name, group=rt.group, kind=rt.plural)


def qualified(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_version(rt: ResourceType, obj: Obj, version: str) -> Obj:
    if obj.get("apiVersion") == rt.api_version(version):
        return obj
    return {**obj, "apiVersion": rt.api_version(version)}  # no conversion webhooks: same schema


@dataclasses.dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    sub: str | None


def parse_route(path: str) -> Route | None:
    """/api/v1/namespaces/ns/pods/name/binding -> Route; None for non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    rest += [None] * (3 - len(rest))  # type: ignore[list-item]
    return Route(group, version, rest[0], namespace, rest[1], rest[2])
