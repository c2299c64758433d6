"""RayClusterFleet and RayClusterReplicaSet (orchestration.brix.dev/v1alpha1) as validated data, and
the views of replica sets and RayClusters that the pure code reads (no I/O here).

`parse_fleet_spec` / `parse_replicaset_spec` turn a CR's spec (as the API server returns it, after
the CRD's defaults and validation) into frozen dataclasses; every problem is collected with its
field path and raised as one `SpecError`, so an object written before the CRD was tightened (or
one the test emulator, which does not validate, accepted) is refused with the same messages.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from controllers.selectors import Selector, parse_selector

GROUP, VERSION = "orchestration.brix.dev", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FLEETS, FLEET_KIND = "rayclusterfleets", "RayClusterFleet"
REPLICASETS, RS_KIND = "rayclusterreplicasets", "RayClusterReplicaSet"
RAY_GROUP, RAY_VERSION, RAYCLUSTERS, RAYCLUSTER_KIND = "ray.io", "v1", "rayclusters", "RayCluster"

HASH_LABEL = "orchestration.brix.dev/template-hash"
"""On replica sets, their selector and template, and the RayClusters: the template's hash (as
Deployments' pod-template-hash)."""
REVISION = "orchestration.brix.dev/revision"
REVISION_HISTORY = "orchestration.brix.dev/revision-history"
DESIRED_REPLICAS = "orchestration.brix.dev/desired-replicas"
MAX_REPLICAS = "orchestration.brix.dev/max-replicas"
ROLLBACK_TO = "orchestration.brix.dev/rollback-to"
"""On a fleet: roll back to that revision ("0" or "" = the previous one), as `kubectl rollout undo`."""
DELETION_COST = "orchestration.brix.dev/deletion-cost"
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"   # AIBrix's key, read as a fallback
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                                 ROLLBACK_TO})
"""Fleet annotations never copied to its replica sets (and kept on the fleet by a rollback)."""

_PERCENT = re.compile(r"^[0-9]+%$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NO_DEADLINE = 2**31 - 1   # progressDeadlineSeconds of MaxInt32 = no deadline, as for Deployments


class SpecError(ValueError):
    """A fleet or replica-set spec that cannot be acted on; the message names every bad field."""


@dataclass(frozen=True)
class IntOrPercent:
    value: int
    percent: bool = False

    def scaled(self, total: int, round_up: bool) -> int:
        """intstr.GetScaledValueFromIntOrPercent: a percent of total, rounded up or down."""
        if not self.percent:
            return self.value
        product = self.value * total
        return -(-product // 100) if round_up else product // 100

    @property
    def zero(self) -> bool:
        return self.value == 0

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class FleetSpec:
    replicas: int
    selector: Selector
    template: dict[str, Any]            # {metadata: {labels, annotations}, spec: a KubeRay RayClusterSpec}
    strategy: str                       # RollingUpdate | Recreate
    max_surge: IntOrPercent
    max_unavailable: IntOrPercent
    min_ready_s: int = 0
    revision_history_limit: int = 10
    paused: bool = False
    progress_deadline_s: int | None = 600   # None: no deadline

    @property
    def rolling(self) -> bool:
        return self.strategy == "RollingUpdate"


@dataclass(frozen=True)
class ReplicaSetSpec:
    replicas: int
    selector: Selector
    template: dict[str, Any]
    min_ready_s: int = 0


def _int(raw: dict[str, Any], key: str, where: str, errors: list[str], default: int | None, minimum: int = 0,
         ) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        errors.append(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
        return default
    return value


def parse_int_or_percent(value: Any, where: str, errors: list[str]) -> IntOrPercent:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return IntOrPercent(value)
    if isinstance(value, str) and _PERCENT.match(value):
        return IntOrPercent(int(value[:-1]), True)
    if isinstance(value, str) and value.isdigit():
        return IntOrPercent(int(value))
    errors.append(f"{where} must be an integer >= 0 or a percentage such as '25%', got {value!r}")
    return IntOrPercent(0)


def _template(raw: Any, selector: Selector, where: str, errors: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors.append(f"{where} is required: {{metadata: {{labels}}, spec: a RayClusterSpec}}")
        return {}
    labels = (raw.get("metadata") or {}).get("labels") or {}
    if not isinstance(labels, dict):
        errors.append(f"{where}.metadata.labels must map label names to strings")
        labels = {}
    if selector.match_labels or selector.match_expressions:
        if not selector.matches({str(k): str(v) for k, v in labels.items()}):
            errors.append(f"{where}.metadata.labels do not match the selector {selector.to_string()!r}")
    spec = raw.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("headGroupSpec"), dict):
        errors.append(f"{where}.spec.headGroupSpec is required (a KubeRay RayClusterSpec)")
    else:
        head = spec["headGroupSpec"]
        if not isinstance(head.get("template"), dict):
            errors.append(f"{where}.spec.headGroupSpec.template is required (the head pod's template)")
        params = head.get("rayStartParams")
        if params is not None and (not isinstance(params, dict)
                                   or not all(isinstance(v, str) for v in params.values())):
            errors.append(f"{where}.spec.headGroupSpec.rayStartParams must map flag names to strings")
    return raw


def parse_fleet_spec(raw: Any, name: str = "") -> FleetSpec:
    """A fleet's spec -> FleetSpec, with Deployment's defaults (replicas 1, RollingUpdate 25 % / 25 %,
    revisionHistoryLimit 10, progressDeadlineSeconds 600) and its validation."""
    if not isinstance(raw, dict):
        raise SpecError("spec is missing")
    errors: list[str] = []
    if name and not _DNS1035.match(name):
        errors.append(f"metadata.name {name!r} must be a DNS-1035 label (lower-case letters, digits and '-', "
                      "starting with a letter): RayCluster names start with it")
    replicas = _int(raw, "replicas", "spec", errors, 1)
    selector = parse_selector(raw.get("selector"), "spec.selector", errors, "RayCluster of the namespace")
    template = _template(raw.get("template"), selector, "spec.template", errors)
    strategy = raw.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate") if isinstance(strategy, dict) else None
    surge, unavailable = IntOrPercent(25, True), IntOrPercent(25, True)
    if kind not in ("RollingUpdate", "Recreate"):
        errors.append(f"spec.strategy.type must be RollingUpdate or Recreate, got {kind!r}")
        kind = "RollingUpdate"
    rolling = strategy.get("rollingUpdate") if isinstance(strategy, dict) else None
    if kind == "Recreate" and rolling:
        errors.append("spec.strategy.rollingUpdate may not be given when spec.strategy.type is Recreate")
    elif isinstance(rolling, dict):
        if "maxSurge" in rolling:
            surge = parse_int_or_percent(rolling["maxSurge"], "spec.strategy.rollingUpdate.maxSurge", errors)
        if "maxUnavailable" in rolling:
            unavailable = parse_int_or_percent(rolling["maxUnavailable"],
                                               "spec.strategy.rollingUpdate.maxUnavailable", errors)
        if unavailable.percent and unavailable.value > 100:
            errors.append(f"spec.strategy.rollingUpdate.maxUnavailable must not be more than 100%, got {unavailable}")
        if surge.zero and unavailable.zero:
            errors.append("spec.strategy.rollingUpdate: maxSurge and maxUnavailable may not both be 0 "
                          "(the rollout could never make progress)")
    elif rolling is not None:
        errors.append("spec.strategy.rollingUpdate must be an object {maxSurge, maxUnavailable}")
    min_ready = _int(raw, "minReadySeconds", "spec", errors, 0)
    history = _int(raw, "revisionHistoryLimit", "spec", errors, 10)
    paused = raw.get("paused", False)
    if not isinstance(paused, bool):
        errors.append(f"spec.paused must be true or false, got {paused!r}")
        paused = False
    deadline = _int(raw, "progressDeadlineSeconds", "spec", errors, 600, minimum=1)
    if deadline is not None and min_ready is not None and deadline != NO_DEADLINE and deadline <= min_ready:
        errors.append(f"spec.progressDeadlineSeconds ({deadline}) must be greater than spec.minReadySeconds "
                      f"({min_ready})")
    if errors:
        raise SpecError("; ".join(errors))
    return FleetSpec(replicas=replicas or 0, selector=selector, template=template, strategy=kind,
                     max_surge=surge, max_unavailable=unavailable, min_ready_s=min_ready or 0,
                     revision_history_limit=history if history is not None else 10, paused=paused,
                     progress_deadline_s=None if deadline in (None, NO_DEADLINE) else deadline)


def parse_replicaset_spec(raw: Any) -> ReplicaSetSpec:
    if not isinstance(raw, dict):
        raise SpecError("spec is missing")
    errors: list[str] = []
    replicas = _int(raw, "replicas", "spec", errors, 1)
    selector = parse_selector(raw.get("selector"), "spec.selector", errors, "RayCluster of the namespace")
    template = _template(raw.get("template"), selector, "spec.template", errors)
    min_ready = _int(raw, "minReadySeconds", "spec", errors, 0)
    if errors:
        raise SpecError("; ".join(errors))
    return ReplicaSetSpec(replicas=replicas or 0, selector=selector, template=template, min_ready_s=min_ready or 0)


def parse_time(ts: Any) -> float | None:
    """An RFC 3339 timestamp (metav1.Time) -> epoch seconds; None when absent or unreadable."""
    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def controller_uid(meta: dict[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


@dataclass
class ReplicaSetView:
    """One RayClusterReplicaSet as the fleet controller reads it: spec, annotations, status. Mutable so
    that the planner can apply its own decisions to a working copy as it goes."""

    name: str
    uid: str = ""
    created: float = 0.0
    replicas: int = 0                       # spec.replicas
    template: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    min_ready_s: int = 0
    generation: int = 1
    observed_generation: int = 0
    status_replicas: int = 0                # clusters that exist and are not being deleted or failed
    ready: int = 0
    available: int = 0
    terminating: int = 0                    # clusters being deleted (still holding their nodes)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    deleting: bool = False
    owner_uid: str | None = None
    resource_version: str = ""
    planned: bool = False                   # created by this very plan (not in the API yet)

    @property
    def revision(self) -> int:
        return revision_of(self.annotations)

    @property
    def counted(self) -> int:
        """Clusters this replica set may hold: its spec, or more while scaled-down clusters are still
        being removed (status lags the spec). The surge bound counts these, so that a new cluster is
        never created before the old one it replaces is gone."""
        return max(self.replicas, self.status_replicas + self.terminating)


def revision_of(annotations: dict[str, str]) -> int:
    try:
        return int(annotations.get(REVISION, "0") or 0)
    except ValueError:
        return 0


def replicaset_view(body: dict[str, Any]) -> ReplicaSetView:
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    return ReplicaSetView(
        name=meta.get("name", ""), uid=meta.get("uid", ""), created=parse_time(meta.get("creationTimestamp")) or 0.0,
        replicas=int(spec.get("replicas", 1) or 0), template=spec.get("template") or {},
        labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}),
        min_ready_s=int(spec.get("minReadySeconds") or 0), generation=int(meta.get("generation") or 1),
        observed_generation=int(status.get("observedGeneration") or 0),
        status_replicas=int(status.get("replicas") or 0), ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        terminating=int(status.get("terminatingReplicas") or 0),
        conditions=list(status.get("conditions") or []), deleting=bool(meta.get("deletionTimestamp")),
        owner_uid=controller_uid(meta), resource_version=str(meta.get("resourceVersion", "")))


@dataclass(frozen=True)
class FleetView:
    name: str
    namespace: str
    uid: str
    generation: int
    annotations: dict[str, str]
    raw_spec: dict[str, Any]
    status: dict[str, Any]
    deleting: bool
    resource_version: str
    spec: FleetSpec | None
    spec_error: str | None = None


def fleet_view(body: dict[str, Any]) -> FleetView:
    meta = body.get("metadata") or {}
    try:
        spec, error = parse_fleet_spec(body.get("spec"), meta.get("name", "")), None
    except SpecError as exc:
        spec, error = None, str(exc)
    return FleetView(name=meta.get("name", ""), namespace=meta.get("namespace", ""), uid=meta.get("uid", ""),
                     generation=int(meta.get("generation") or 1), annotations=dict(meta.get("annotations") or {}),
                     raw_spec=body.get("spec") or {}, status=dict(body.get("status") or {}),
                     deleting=bool(meta.get("deletionTimestamp")), resource_version=str(meta.get("resourceVersion", "")),
                     spec=spec, spec_error=error)
