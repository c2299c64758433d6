"""Discovery documents (/api, /apis, /apis/GROUP, /api/v1, /apis/GROUP/VERSION, /) for the served types."""

from __future__ import annotations

from collections.abc import Collection

from tests.k8s_api.resources import ApiError, Obj, ResourceType


def document(parts: list[str], types: Collection[ResourceType], host: str | None) -> Obj | None:
    """The discovery document at the path split into parts; None where the path is not a discovery one."""
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}
    if parts == ["apis"]:
        groups = sorted({rt.group for rt in types if rt.group})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_of(types, g) for g in groups]}
    if len(parts) == 2 and parts[0] == "apis" and any(rt.group == parts[1] for rt in types):
        return {"kind": "APIGroup", "apiVersion": "v1", **group_of(types, parts[1])}
    if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        resources = api_resources(types, group, version)
        if not resources:
            raise ApiError(404, "NotFound", f"no API {group}/{version}")
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
    if parts == []:
        return {"paths": sorted({"/api", "/api/v1", "/apis", "/version", "/healthz"}
                                | {f"/apis/{rt.group}/{v}" for rt in types if rt.group for v in rt.versions})}
    return None


def group_of(types: Collection[ResourceType], group: str) -> Obj:
    versions: list[str] = []
    for rt in types:
        if rt.group == group:
            versions += [v for v in rt.versions if v not in versions]
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_resources(types: Collection[ResourceType], group: str, version: str) -> list[Obj]:
    out: list[Obj] = []
    for rt in types:
        if rt.group != group or version not in rt.versions:
            continue
        out.append({"name": rt.plural, "singularName": rt.singular or rt.kind.lower(), "namespaced": rt.namespaced,
                    "kind": rt.kind, "verbs": list(rt.verbs), "shortNames": list(rt.short_names),
                    "categories": list(rt.categories)})
        if rt.status:
            out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        if rt.scale:
            out.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale",
                        "verbs": ["get", "patch", "update"]})
        if rt.binding:
            out.append({"name": f"{rt.plural}/binding", "singularName": "", "namespaced": rt.namespaced,
                        "kind": "Binding", "verbs": ["create"]})
    return out
