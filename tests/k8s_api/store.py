"""The versioned object store: create/update/delete with the stamping the real API server does.

GAP: kmock 0.8 keeps plain merge-patched dicts without versions; here every write bumps one global
resourceVersion, creates stamp uid/creationTimestamp/generation, and every write becomes a watch event.
"""

from __future__ import annotations

import copy
import random
import string
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from tests.k8s_api.crds import crd_resource_type, established_status
from tests.k8s_api.patches import merge_patch, set_path
from tests.k8s_api.resources import (
    CRDS,
    ApiError,
    Obj,
    ResourceType,
    Route,
    as_version,
    not_found,
    now,
    qualified,
)
from tests.k8s_api.selectors import matcher
from tests.k8s_api.watch import WatchBus, WatchEvent

Key = tuple[str, str]


class Store:
    """Objects by resource type and (namespace, name), the served types, and the watch bus."""

    def __init__(self, history: int, on_register: Callable[[ResourceType], None] = lambda rt: None,
                 on_unregister: Callable[[ResourceType], None] = lambda rt: None) -> None:
        self.types: dict[Key, ResourceType] = {}
        self.objects: dict[Key, dict[tuple[str, str], Obj]] = defaultdict(dict)
        self.bus = WatchBus(history)
        self.rv = 1
        self._on_register, self._on_unregister = on_register, on_unregister

    # ------------------------------------------------------------ types

    def register(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt
        self.bus.track(rt.key)
        self._on_register(rt)

    def unregister(self, key: Key) -> None:
        rt = self.types.pop(key, None)
        if rt is not None:
            self._on_unregister(rt)
            self.objects.pop(key, None)

    def ensure_namespace(self, name: str) -> None:
        """Namespaces spring into existence on first use (a real server answers 404 instead)."""
        if ("", name) not in self.objects[("", "namespaces")]:
            self.create(self.types[("", "namespaces")], Route("", "v1", "namespaces", None, None, None),
                        {"metadata": {"name": name}})

    # ------------------------------------------------------------ reads

    def namespace_of(self, rt: ResourceType, route: Route) -> str:
        if rt.namespaced and route.namespace is None:
            raise ApiError(404, "NotFound", f"{qualified(rt)} is namespaced: use /namespaces/NS/{rt.plural}")
        return route.namespace or ""

    def get(self, rt: ResourceType, route: Route) -> Obj:
        obj = self.objects[rt.key].get((self.namespace_of(rt, route), route.name or ""))
        if obj is None:
            raise not_found(rt, route.name or "")
        return obj

    def list(self, params: Mapping[str, str], rt: ResourceType, route: Route) -> Obj:
        """GAP: selectors and limit/continue paging."""
        match = matcher(params, route)
        items = [as_version(rt, o, route.version) for _, o in sorted(self.objects[rt.key].items()) if match(o)]
        meta: Obj = {"resourceVersion": str(self.rv)}
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0)
        if limit > 0:
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start:start + limit]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version(route.version), "metadata": meta, "items": items}

    # ------------------------------------------------------------ writes

    def commit(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None = None) -> Obj:
        """GAP: one resourceVersion counter bumped on every write; every watcher gets the event."""
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        okey = (meta.get("namespace") or "", meta["name"])
        if etype == "DELETED":
            self.objects[rt.key].pop(okey, None)
        else:
            self.objects[rt.key][okey] = obj
        self.bus.publish(rt.key, WatchEvent(self.rv, etype, obj, old))
        return obj

    def create(self, rt: ResourceType, route: Route, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"the body to create {qualified(rt)} must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{qualified(rt)}: metadata.name: Required value", kind=rt.kind)
        namespace = self.namespace_of(rt, route)
        if meta.get("namespace") and rt.namespaced and meta["namespace"] != namespace:
            raise ApiError(400, "BadRequest", f"the namespace of the object ({meta['namespace']}) does not match "
                           f"the namespace of the URL ({namespace})")
        if (namespace, meta["name"]) in self.objects[rt.key]:
            raise ApiError(409, "AlreadyExists", f'{qualified(rt)} "{meta["name"]}" already exists',
                           name=meta["name"], group=rt.group, kind=rt.plural)
        # GAP: kmock stamps nothing; the real API server stamps these on create.
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        meta.pop("deletionTimestamp", None)
        meta.pop("resourceVersion", None)
        if rt.namespaced:
            meta["namespace"] = namespace
            self.ensure_namespace(namespace)
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version(route.version), rt.kind
        if rt.key == ("", "pods"):
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif rt.key == ("", "namespaces"):
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif rt.key == CRDS:
            self.serve_crd(obj)
        return self.commit(rt, "ADDED", obj)

    def update(self, rt: ResourceType, current: Obj, desired: Obj, sub: str | None) -> Obj:
        want_rv = (desired.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(rt)} '
                           f'"{current["metadata"]["name"]}": the object has been modified; please apply your '
                           "changes to the latest version and try again",
                           name=current["metadata"]["name"], group=rt.group, kind=rt.plural)
        if sub == "status":  # GAP: /status touches only .status
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(desired.get("status"))
            if new["status"] is None:
                new.pop("status")
        elif sub == "scale":  # GAP: /scale touches only spec.replicas
            new = copy.deepcopy(current)
            replicas = (desired.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f"Scale.spec.replicas must be an integer >= 0, got {replicas!r}")
            set_path(new, rt.scale.spec_replicas if rt.scale else ".spec.replicas", replicas)
        else:
            new = copy.deepcopy(desired)
            new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
            meta = new.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "name", "namespace", "generation", "deletionTimestamp"):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
                else:
                    meta.pop(field, None)
            if rt.status:  # with a status subresource, the main resource ignores status changes
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
        # GAP: generation follows spec (everything but metadata, and status where it is a subresource).
        ignored = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.status else set())
        if {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in current.items() if k not in ignored}:
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if rt.key == CRDS and sub is None:
            self.serve_crd(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self.commit(rt, "MODIFIED", new, current)
            return self.finish_delete(rt, new)
        return self.commit(rt, "MODIFIED", new, current)

    def delete(self, rt: ResourceType, route: Route, options: Any) -> Obj:
        current = self.get(rt, route)
        pre = (options or {}).get("preconditions") or {} if isinstance(options, dict) else {}
        for field in ("uid", "resourceVersion"):
            if pre.get(field) and pre[field] != current["metadata"].get(field):
                raise ApiError(409, "Conflict", f"Precondition failed: {field} in precondition: {pre[field]}, "
                               f"{field} in object meta: {current['metadata'].get(field)}")
        if current["metadata"].get("finalizers"):  # held by finalizers: only marked
            if current["metadata"].get("deletionTimestamp"):
                return current
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = now()
            return self.commit(rt, "MODIFIED", new, current)
        return self.finish_delete(rt, current)

    def finish_delete(self, rt: ResourceType, obj: Obj) -> Obj:
        gone = self.commit(rt, "DELETED", copy.deepcopy(obj))
        if rt.key == CRDS:
            names = obj.get("spec", {}).get("names", {})
            self.unregister((obj.get("spec", {}).get("group", ""), names.get("plural", "")))
        return gone

    def delete_collection(self, params: Mapping[str, str], rt: ResourceType, route: Route) -> Obj:
        match = matcher(params, route)
        victims = [o for o in list(self.objects[rt.key].values()) if match(o)]
        for obj in victims:
            self.delete(rt, Route(rt.group, route.version, rt.plural, obj["metadata"].get("namespace"),
                                  obj["metadata"]["name"], None), None)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version(route.version),
                "metadata": {"resourceVersion": str(self.rv)}, "items": victims}

    # ------------------------------------------------------------ CRDs

    def serve_crd(self, crd: Obj) -> None:
        """GAP: kmock serves any plural it is told; here a CRD object is what makes a resource exist."""
        rt = crd_resource_type(crd)
        old = self.types.get(rt.key)
        if old is not None and old.kind != rt.kind:
            raise ApiError(409, "Conflict", f"{qualified(rt)} is already served with kind {old.kind}")
        self.register(rt)
        crd["status"] = established_status(crd, rt)

    def apply_crd(self, crd: Obj) -> str:
        """Create or replace a CRD (as `kubectl apply` would), returning its name."""
        crds = self.types[CRDS]
        name = (crd.get("metadata") or {}).get("name", "")
        route = Route(crds.group, "v1", crds.plural, None, name, None)
        current = self.objects[crds.key].get(("", name))
        if current is None:
            self.create(crds, route, crd)
        else:
            self.update(crds, current, merge_patch(crd, {"metadata": {"resourceVersion": None}}), None)
        return name
