"""kube-scheduler extender wire types (PascalCase Go field names) <-> snake_case dataclasses.

kube-scheduler marshals k8s.io/kube-scheduler/extender/v1 structs that carry no json tags, so the
keys are the Go field names: `Pod`, `Nodes`, `NodeNames`, `FailedNodes`, `Host`, `Score`, ...
The embedded Pod and Node objects are ordinary Kubernetes objects (camelCase). Parsing here
validates the shape and raises WireError (HTTP 400) with a message that names the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ANNOTATION_MODEL = "model.brix.dev/name"
ANNOTATION_GPU_TYPES = "scheduling.brix.dev/gpu-types"
ANNOTATION_POLICY = "scheduling.brix.dev/policy"
ANNOTATION_SLO = "scheduling.brix.dev/slo"
POLICIES = ("cost", "binpack", "spread")

# Extended resources this extender manages by default (GPUs and NPUs).
DEFAULT_RESOURCES = (
    "nvidia.com/gpu", "amd.com/gpu", "huawei.com/Ascend910", "huawei.com/Ascend910B",
    "huawei.com/Ascend310P", "huawei.com/Ascend310",
)

MIN_PRIORITY = 0
MAX_PRIORITY = 10


class WireError(ValueError):
    """The request body is not valid extender JSON; the server answers HTTP 400 with this text."""


@dataclass(frozen=True)
class Slo:
    """Latency objectives from `scheduling.brix.dev/slo`, in seconds, keyed like `ttft_p99`."""

    targets: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PodRequest:
    """What the extender needs to know about the pod being scheduled."""

    uid: str
    name: str
    namespace: str
    priority: int
    requests: dict[str, int]  # managed resource -> count (effective request)
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def model(self) -> str | None:
        return self.labels.get(ANNOTATION_MODEL) or self.annotations.get(ANNOTATION_MODEL)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ExtenderArgs:
    pod_raw: dict[str, Any]
    nodes: list[dict[str, Any]] | None  # full Node objects (nodeCacheCapable: false)
    node_names: list[str] | None  # names only (nodeCacheCapable: true)


@dataclass(frozen=True)
class BindingArgs:
    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str


@dataclass(frozen=True)
class PreemptionArgs:
    pod_raw: dict[str, Any]
    # node -> victim pod UIDs proposed by kube-scheduler; full pods when not node-cache capable
    node_to_victim_uids: dict[str, list[str]]
    node_to_victim_pods: dict[str, list[dict[str, Any]]] | None
    meta: bool  # whether the request used NodeNameToMetaVictims


@dataclass
class FilterResult:
    node_names: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    error: str = ""


# ---------------------------------------------------------------------------- parsing

def loads(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WireError(f"request body must be a JSON object, got {type(doc).__name__}")
    return doc


def parse_pod(doc: dict[str, Any], where: str = "Pod") -> dict[str, Any]:
    """The request's Pod object, checked for what every verb reads (an object with metadata.name)."""
    pod = doc.get("Pod")
    if not isinstance(pod, dict):
        raise WireError(f"missing field {where}: expected the v1 Pod object being scheduled")
    meta = pod.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise WireError(f"{where}.metadata.name is missing")
    return pod


def parse_extender_args(doc: dict[str, Any]) -> ExtenderArgs:
    pod = parse_pod(doc)
    nodes_raw = doc.get("Nodes")
    names_raw = doc.get("NodeNames")
    nodes = None
    names = None
    if names_raw is not None:
        if not isinstance(names_raw, list) or not all(isinstance(n, str) for n in names_raw):
            raise WireError("NodeNames must be a list of node name strings")
        names = names_raw
    elif nodes_raw is not None:
        items = nodes_raw.get("items") if isinstance(nodes_raw, dict) else None
        if items is None and isinstance(nodes_raw, dict):
            items = []
        if not isinstance(items, list) or not all(isinstance(n, dict) for n in items):
            raise WireError("Nodes.items must be a list of v1 Node objects")
        for i, node in enumerate(items):
            if not isinstance((node.get("metadata") or {}).get("name"), str):
                raise WireError(f"Nodes.items[{i}].metadata.name is missing")
        nodes = items
    else:
        raise WireError("missing field: one of NodeNames (nodeCacheCapable: true) or Nodes must be set")
    return ExtenderArgs(pod, nodes, names)


def _str_field(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise WireError(f"missing field {key}: ExtenderBindingArgs needs PodName, PodNamespace, PodUID and Node")
    return value


def parse_binding_args(doc: dict[str, Any]) -> BindingArgs:
    return BindingArgs(_str_field(doc, "PodName"), _str_field(doc, "PodNamespace"),
                       _str_field(doc, "PodUID"), _str_field(doc, "Node"))


def parse_preemption_args(doc: dict[str, Any]) -> PreemptionArgs:
    pod = parse_pod(doc)
    meta = doc.get("NodeNameToMetaVictims")
    full = doc.get("NodeNameToVictims")
    uids: dict[str, list[str]] = {}
    pods: dict[str, list[dict[str, Any]]] | None = None
    if meta is not None:
        if not isinstance(meta, dict):
            raise WireError("NodeNameToMetaVictims must be an object of node name -> {Pods: [{UID}]}")
        for node, victims in meta.items():
            plist = (victims or {}).get("Pods") or [] if isinstance(victims, dict) or victims is None else None
            if plist is None or not all(isinstance(p, dict) and isinstance(p.get("UID"), str) for p in plist):
                raise WireError(f"NodeNameToMetaVictims[{node}].Pods must be a list of {{\"UID\": ...}}")
            uids[node] = [p["UID"] for p in plist]
        return PreemptionArgs(pod, uids, None, True)
    if full is not None:
        if not isinstance(full, dict):
            raise WireError("NodeNameToVictims must be an object of node name -> {Pods: [v1 Pod]}")
        pods = {}
        for node, victims in full.items():
            plist = (victims or {}).get("Pods") or [] if isinstance(victims, dict) or victims is None else None
            if plist is None or not all(isinstance(p, dict) for p in plist):
                raise WireError(f"NodeNameToVictims[{node}].Pods must be a list of v1 Pod objects")
            pods[node] = plist
            uids[node] = [str((p.get("metadata") or {}).get("uid", "")) for p in plist]
        return PreemptionArgs(pod, uids, pods, False)
    raise WireError("missing field: NodeNameToMetaVictims or NodeNameToVictims must be set")


# ---------------------------------------------------------------------------- pods and quantities

_SUFFIX = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QTY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")


def parse_quantity(value: Any) -> int:
    """A Kubernetes quantity as an integer count (extended resources are whole numbers)."""
    if isinstance(value, bool):
        raise ValueError(f"bad quantity {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = _QTY.match(text)
    if not match:
        raise ValueError(f"bad quantity {value!r}: expected an integer such as 2 or a Kubernetes quantity")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix == "m":
        return int(number / 1000)
    return int(number * _SUFFIX.get(suffix or "", 1))


def pod_requests(pod: dict[str, Any], resources: frozenset[str]) -> dict[str, int]:
    """Effective request per managed resource: max(sum over containers, max over init containers).

    A container's limit counts when it sets no request (extended resources must be equal anyway).
    """
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for key, acc, combine in (("containers", total, int.__add__), ("initContainers", init_max, max)):
        for container in spec.get(key) or []:
            res = container.get("resources") or {}
            amounts = dict(res.get("limits") or {})
            amounts.update(res.get("requests") or {})
            for name, qty in amounts.items():
                if name in resources:
                    try:
                        count = parse_quantity(qty)
                    except ValueError as exc:
                        raise WireError(f"Pod container {container.get('name')!r} resource {name}: {exc}") from None
                    acc[name] = combine(acc.get(name, 0), count)
    for name, count in init_max.items():
        total[name] = max(total.get(name, 0), count)
    return {k: v for k, v in total.items() if v > 0}


def pod_request(pod: dict[str, Any], resources: frozenset[str]) -> PodRequest:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    prio = spec.get("priority")
    return PodRequest(
        uid=str(meta.get("uid") or ""),
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        priority=int(prio) if isinstance(prio, int) else 0,
        requests=pod_requests(pod, resources),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


# ---------------------------------------------------------------------------- annotations

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m)$")
_SLO_KEY = re.compile(r"^(ttft|tpot|e2e|itl)_(p50|p90|p95|p99|mean)$")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_slo(text: str) -> Slo:
    """`ttft_p99=2s,tpot_p99=100ms` -> Slo; ValueError names the bad part and the expected form."""
    targets: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _SLO_KEY.match(key):
            raise ValueError(f"{ANNOTATION_SLO}: bad entry {part!r}; expected <metric>_<percentile>=<duration> "
                             "with metric ttft|tpot|e2e|itl and percentile p50|p90|p95|p99|mean, e.g. ttft_p99=2s")
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{ANNOTATION_SLO}: bad duration {value!r} for {key}; use a number with us, ms, s or m")
        targets[key] = float(match.group(1)) * _UNIT[match.group(2)]
    if not targets:
        raise ValueError(f"{ANNOTATION_SLO}: empty; expected e.g. ttft_p99=2s,tpot_p99=100ms")
    return Slo(targets)


def parse_policy(text: str | None, default: str) -> str:
    if text is None or not text.strip():
        return default
    policy = text.strip().lower()
    if policy not in POLICIES:
        raise ValueError(f"{ANNOTATION_POLICY}: unknown policy {text!r}; use one of {', '.join(POLICIES)}")
    return policy


def parse_gpu_types(text: str | None) -> frozenset[str] | None:
    """`A100,H100` -> {"a100", "h100"}; None when the pod allows every GPU type."""
    if text is None or not text.strip():
        return None
    return frozenset(t.strip().lower() for t in text.split(",") if t.strip())


# ---------------------------------------------------------------------------- encoding

def filter_result_json(result: FilterResult, nodes: list[dict[str, Any]] | None = None) -> bytes:
    """NodeNames when the request carried NodeNames; the passing Node objects when it carried Nodes."""
    doc = {
        "Nodes": None if nodes is None else {"metadata": {}, "items": nodes},
        "NodeNames": result.node_names if nodes is None else None,
        "FailedNodes": result.failed,
        "FailedAndUnresolvableNodes": result.unresolvable,
        "Error": result.error,
    }
    return json.dumps(doc, separators=(",", ":")).encode()
