"""The Service and EndpointSlice named after a ModelAdapter (pure bodies): a headless Service without a
selector and one IPv4 EndpointSlice listing the pods that serve the adapter, both owned by it."""

from __future__ import annotations

from typing import Any

from controllers.modeladapter.model import GROUP, KIND, MODEL_LABEL, NAME_LABEL, VERSION, AdapterView, PodView

MANAGED_BY = "adapter.model.brix.dev"


def _meta(a: AdapterView, namespace: str, base_model: str | None) -> dict[str, Any]:
    labels = {NAME_LABEL: a.name, "app.kubernetes.io/managed-by": "brix-controllers"}
    if base_model:
        labels[MODEL_LABEL] = base_model
    return {"name": a.name, "namespace": namespace, "labels": labels,
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": a.name, "uid": a.uid,
                                 "controller": True}]}


def port_of(pods: list[PodView]) -> int:
    return pods[0].port if pods else 8000


def service(a: AdapterView, namespace: str, port: int) -> dict[str, Any]:
    meta = _meta(a, namespace, a.spec.base_model if a.spec else None)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}}


def address(ip: str, namespace: str, loopback: bool) -> str:
    """The API server refuses loopback IPs in IPv4 slices; the local cluster's pods live on 127.x, so
    there the slice is FQDN and lists each pod by its cluster DNS name, a-b-c-d.<ns>.pod.cluster.local."""
    return f"{ip.replace('.', '-')}.{namespace}.pod.cluster.local" if loopback else ip


def endpoint_slice(a: AdapterView, namespace: str, pods: list[PodView], port: int, loopback: bool) -> dict[str, Any]:
    meta = _meta(a, namespace, a.spec.base_model if a.spec else None)
    meta["labels"].update({"kubernetes.io/service-name": a.name, "endpointslice.kubernetes.io/managed-by": MANAGED_BY})
    endpoints = [{"addresses": [address(p.ip or "", namespace, loopback)], "conditions": {"ready": True},
                  "targetRef": {"kind": "Pod", "name": p.name, "namespace": namespace, "uid": p.uid}}
                 for p in sorted(pods, key=lambda p: p.name) if p.port == port]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": "FQDN" if loopback else "IPv4",
            "endpoints": endpoints, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}
