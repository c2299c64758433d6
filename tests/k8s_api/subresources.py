"""The subresources that are not plain reads and writes: pods/binding and the autoscaling/v1 Scale view."""

from __future__ import annotations

import copy
from typing import Any

from tests.k8s_api.patches import get_path
from tests.k8s_api.resources import ApiError, Obj, Reply, ResourceType, Route, ScalePaths, now
from tests.k8s_api.selectors import selector_string
from tests.k8s_api.store import Store


def bind(store: Store, body: Any, namespace: str | None, name: str | None) -> Reply:
    """GAP: pods/binding — what kube-scheduler and a scheduler extender's /bind call."""
    pods = store.types[("", "pods")]
    body = body if isinstance(body, dict) else {}
    target = (body.get("target") or {}).get("name")
    if not name or not target:
        raise ApiError(422, "Invalid", "a Binding needs metadata.name (the pod) and target.name (the node)")
    current = store.get(pods, Route("", "v1", "pods", namespace, name, None))
    if current.get("spec", {}).get("nodeName"):
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                       f"is already assigned to node \"{current['spec']['nodeName']}\"",
                       name=name, kind="pods/binding")
    new = copy.deepcopy(current)
    new.setdefault("spec", {})["nodeName"] = target
    annotations = (body.get("metadata") or {}).get("annotations")
    if annotations:
        new["metadata"].setdefault("annotations", {}).update(annotations)
    conditions = [c for c in new.setdefault("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"]
    new["status"]["conditions"] = conditions + [{"type": "PodScheduled", "status": "True",
                                                 "lastTransitionTime": now()}]
    store.commit(pods, "MODIFIED", new, current)
    return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    """GAP: an autoscaling/v1 Scale built from the object's scale paths."""
    paths = rt.scale or ScalePaths()
    meta = obj["metadata"]
    replicas = get_path(obj, paths.spec_replicas)
    if paths.selector is not None:
        selector = get_path(obj, paths.selector) or ""
    else:
        selector = selector_string(obj.get("spec", {}).get("selector"))
    status: Obj = {"replicas": get_path(obj, paths.status_replicas) or 0}
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": replicas if replicas is not None else (1 if rt.group == "apps" else 0)},
            "status": status}
