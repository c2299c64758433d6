"""What a kubelet decides about a pod, as pure functions over the pod's JSON: which extended
resources it needs, which containers run a `brix` subcommand (and so become local processes), the
environment of each, and the status the kubelet reports. No I/O here; brix/node_agent/agent.py
does the talking."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# resources a device plugin serves (the names kube-scheduler's extender config manages)
DEVICE_RESOURCE = re.compile(r"^[a-z0-9.-]+\.[a-z]+/[A-Za-z0-9._-]+$")
NATIVE_PREFIXES = ("kubernetes.io/", "requests.", "limits.")


def device_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """Extended resources (nvidia.com/gpu, ...) the pod's containers ask for, summed. Init
    containers run one at a time, so their largest request counts, as in kubelet's admission."""
    spec = pod.get("spec", {})
    total: dict[str, int] = {}
    for container in spec.get("containers", []):
        for name, count in _extended(container).items():
            total[name] = total.get(name, 0) + count
    for container in spec.get("initContainers", []):
        for name, count in _extended(container).items():
            total[name] = max(total.get(name, 0), count)
    return total


def _extended(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources", {})
    merged = {**resources.get("requests", {}), **resources.get("limits", {})}
    return {k: int(v) for k, v in merged.items()
            if "/" in k and DEVICE_RESOURCE.match(k) and not k.startswith(NATIVE_PREFIXES)}


BRIX_IMAGES = ("brix", "brix-node")  # the image repositories whose entrypoint is `brix`


def brix_args(container: Mapping[str, Any]) -> list[str] | None:
    """The `brix` argv (without "brix") a container runs, or None when it runs something else.

    A container runs Brix when its command is `brix ...` (or a path ending in /brix), or when it has
    no command and its image is a Brix image (BRIX_IMAGES, whose entrypoint is `brix`).
    """
    command = list(container.get("command") or [])
    args = [str(a) for a in container.get("args") or []]
    if command:
        if os.path.basename(str(command[0])) != "brix":
            return None
        return [str(c) for c in command[1:]] + args
    image = str(container.get("image", ""))
    repository = image.rsplit("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    if repository.rsplit("/", 1)[-1] not in BRIX_IMAGES:
        return None
    return args


def _field(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    raise ValueError(f"fieldRef {path!r} is not supported by the node agent")


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], *, pod_ip: str, host_ip: str,
                  device_env: Mapping[str, str], config_maps: Mapping[str, Mapping[str, str]]
                  ) -> tuple[dict[str, str], list[str]]:
    """The environment the container's process gets, and the problems found (unsupported sources).

    Order as in kubelet: device plugin Allocate envs, then envFrom, then env (later wins).
    Supported: value (with $(VAR) expansion), fieldRef, configMapKeyRef and configMapRef.
    """
    env: dict[str, str] = dict(device_env)
    problems: list[str] = []
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref and ref.get("name") in config_maps:
            prefix = source.get("prefix", "")
            env.update({prefix + k: v for k, v in config_maps[ref["name"]].items()})
        elif ref and not ref.get("optional"):
            problems.append(f"envFrom configMap {ref.get('name')!r} not found")
        elif not ref:
            problems.append("envFrom: only configMapRef is supported by the node agent")
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = _expand(str(item["value"]), env)
            continue
        value_from = item.get("valueFrom", {})
        if "fieldRef" in value_from:
            try:
                env[name] = _field(pod, value_from["fieldRef"]["fieldPath"], pod_ip, host_ip)
            except ValueError as exc:
                problems.append(f"env {name}: {exc}")
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            data = config_maps.get(ref.get("name", ""), {})
            if ref.get("key") in data:
                env[name] = data[ref["key"]]
            elif not ref.get("optional"):
                problems.append(f"env {name}: configMap {ref.get('name')!r} key {ref.get('key')!r} not found")
        elif "valueFrom" in item:
            problems.append(f"env {name}: only value, fieldRef and configMapKeyRef are supported by the node agent")
        else:
            env[name] = ""
    return env, problems


def expand_args(args: Iterable[str], env: Mapping[str, str]) -> list[str]:
    return [_expand(a, env) for a in args]


def container_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {container.get('name')!r} has no port named {port!r}")


@dataclass(frozen=True)
class Probe:
    kind: str  # http | tcp | none
    port: int = 0
    path: str = "/"
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1


def readiness_probe(container: Mapping[str, Any]) -> Probe:
    probe = container.get("readinessProbe")
    if not probe:
        return Probe("none")
    common: dict[str, Any] = {"initial_delay": float(probe.get("initialDelaySeconds", 0)),
              "period": float(probe.get("periodSeconds", 10)), "timeout": float(probe.get("timeoutSeconds", 1)),
              "failure_threshold": int(probe.get("failureThreshold", 3)),
              "success_threshold": int(probe.get("successThreshold", 1))}
    if "httpGet" in probe:
        http = probe["httpGet"]
        return Probe("http", container_port(container, http["port"]), http.get("path", "/"), **common)
    if "tcpSocket" in probe:
        return Probe("tcp", container_port(container, probe["tcpSocket"]["port"]), **common)
    return Probe("none")  # exec and grpc probes: treated as passing (documented)


class IpPool:
    """Pod IPs from a loopback range; 127.0.0.0/8 is all loopback on Linux, so each pod binds its own."""

    def __init__(self, cidr: str = "127.1.0.0/16") -> None:
        self.network = ipaddress.ip_network(cidr)
        if not self.network.subnet_of(ipaddress.ip_network("127.0.0.0/8")):  # type: ignore[arg-type]  # v4 only
            raise ValueError(f"pod CIDR {cidr} is not inside 127.0.0.0/8 (loopback)")
        self._hosts = self.network.hosts()
        self._free: list[str] = []
        self.used: set[str] = set()

    def take(self) -> str:
        ip = self._free.pop() if self._free else str(next(self._hosts))
        self.used.add(ip)
        return ip

    def give_back(self, ip: str) -> None:
        if ip in self.used:
            self.used.discard(ip)
            self._free.append(ip)


def condition(kind: str, status: bool, now: str, reason: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "status": "True" if status else "False", "lastProbeTime": None,
                           "lastTransitionTime": now}
    if reason:
        out["reason"] = reason
    return out


@dataclass(frozen=True)
class ContainerView:
    """What the agent knows of one container, for status."""

    name: str
    image: str
    running: bool
    ready: bool
    restarts: int
    started_at: str | None
    pid: int | None
    exit_code: int | None = None
    reason: str | None = None
    finished_at: str | None = None
    waiting_reason: str | None = None


def pod_status(*, phase: str, pod_ip: str, host_ip: str, start_time: str, now: str,
               containers: list[ContainerView], previous: Mapping[str, Any] | None = None,
               message: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """The pod status a kubelet reports. Condition transition times are kept from `previous`
    when the status did not change."""
    ready = phase == "Running" and all(c.ready for c in containers)
    old = {c["type"]: c for c in (previous or {}).get("conditions", [])}

    def cond(kind: str, value: bool) -> dict[str, Any]:
        fresh = condition(kind, value, now)
        was = old.get(kind)
        if was and was.get("status") == fresh["status"]:
            fresh["lastTransitionTime"] = was.get("lastTransitionTime", now)
        return fresh

    statuses = []
    for c in containers:
        state: dict[str, Any]
        if c.running:
            state = {"running": {"startedAt": c.started_at}}
        elif c.exit_code is not None:
            state = {"terminated": {"exitCode": c.exit_code, "reason": c.reason or "Completed",
                                    "startedAt": c.started_at, "finishedAt": c.finished_at or now}}
        else:
            state = {"waiting": {"reason": c.waiting_reason or "ContainerCreating"}}
        statuses.append({"name": c.name, "image": c.image, "imageID": "", "ready": c.ready,
                         "restartCount": c.restarts, "started": c.running, "state": state,
                         "containerID": f"brix://{c.pid}" if c.pid else ""})
    status: dict[str, Any] = {
        "phase": phase, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": start_time,
        "conditions": [cond("PodReadyToStartContainers", phase != "Pending"), cond("Initialized", True),
                       cond("Ready", ready), cond("ContainersReady", ready), cond("PodScheduled", True)],
        "containerStatuses": statuses,  # qosClass is the API server's, immutable
    }
    if pod_ip:
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    return status
