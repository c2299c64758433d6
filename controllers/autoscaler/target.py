"""The scale target through its /scale subresource (any kind that has one), and its Ready pods.

Blocking `kubernetes` client calls; handlers run them with asyncio.to_thread. A PATCH answered
409 Conflict is retried (a fresh read, then the write again), so a racing writer never makes a
decision disappear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException


@dataclass(frozen=True)
class ScaleView:
    replicas: int            # spec.replicas
    status_replicas: int     # status.replicas
    selector: str            # status.selector (label selector string)


@dataclass(frozen=True)
class ReadyPods:
    ips: dict[str, str]      # Ready pod name -> pod IP
    total: int               # pods matching the selector that are not being deleted


class Targets:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client
        self._plurals: dict[tuple[str, str], str] = {}

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        args = self.api.param_serialize(method, path, header_params=headers, body=body, auth_settings=["BearerToken"])
        resp = self.api.call_api(*args, _request_timeout=30)
        data = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason, body=data.decode(errors="replace"))
        return json.loads(data or b"null")

    def plural(self, api_version: str, kind: str) -> str:
        """The resource name of kind in api_version, from the API server's discovery."""
        key = (api_version, kind)
        if key not in self._plurals:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            for r in self._call("GET", base).get("resources", []):
                if r.get("kind") == kind and "/" not in r.get("name", ""):
                    self._plurals[(api_version, r["kind"])] = r["name"]
            if key not in self._plurals:
                raise LookupError(f"the API server serves no kind {kind!r} in {api_version}")
        return self._plurals[key]

    def _scale_path(self, namespace: str, api_version: str, kind: str, name: str) -> str:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        return f"{base}/namespaces/{namespace}/{self.plural(api_version, kind)}/{name}/scale"

    def read_scale(self, namespace: str, api_version: str, kind: str, name: str) -> ScaleView:
        doc = self._call("GET", self._scale_path(namespace, api_version, kind, name))
        spec, status = doc.get("spec") or {}, doc.get("status") or {}
        return ScaleView(int(spec.get("replicas") or 0), int(status.get("replicas") or 0),
                         str(status.get("selector") or ""))

    def write_scale(self, namespace: str, api_version: str, kind: str, name: str, replicas: int,
                    attempts: int = 4) -> None:
        path = self._scale_path(namespace, api_version, kind, name)
        for attempt in range(attempts):
            try:
                self._call("PATCH", path, {"spec": {"replicas": replicas}}, "application/merge-patch+json")
                return
            except ApiException as exc:
                if exc.status != 409 or attempt == attempts - 1:
                    raise

    def ready_pods(self, namespace: str, selector: str) -> ReadyPods:
        if not selector:
            return ReadyPods({}, 0)
        pods = client.CoreV1Api(self.api).list_namespaced_pod(namespace, label_selector=selector)
        ips: dict[str, str] = {}
        total = 0
        for pod in pods.items:
            if pod.metadata.deletion_timestamp:
                continue
            total += 1
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            if ready and pod.status.pod_ip:
                ips[pod.metadata.name] = pod.status.pod_ip
        return ReadyPods(ips, total)
