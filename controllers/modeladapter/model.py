"""ModelAdapter (model.brix.dev/v1alpha1): the spec as plain data, validated, and the views of
engine pods and adapters that the pure reconcile reads (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controllers.selectors import Selector
from controllers.selectors import parse_selector as parse_label_selector

GROUP, VERSION, PLURAL, KIND = "model.brix.dev", "v1alpha1", "modeladapters", "ModelAdapter"
FINALIZER = "adapter.model.brix.dev/finalizer"
NAME_LABEL = "adapter.model.brix.dev/name"
MODEL_LABEL = "model.brix.dev/name"
PORT_LABEL = "model.brix.dev/port"
MEMORY_ANNOTATION = "adapter.model.brix.dev/memory-mib"
"""On an engine pod: MiB its engine has for LoRA adapters (default: unlimited)."""
SCHEMES = ("huggingface://", "s3://", "gs://", "gcs://", "file://", "/")
UNLIMITED_MIB = 1 << 40


class SpecError(ValueError):
    """A ModelAdapter spec that cannot be acted on; the message names the field."""


@dataclass(frozen=True)
class AdapterSpec:
    base_model: str | None
    selector: Selector
    artifact_url: str
    replicas: int | None                     # None = every matching pod
    additional_config: tuple[tuple[str, str], ...] = ()
    credentials_secret: str | None = None
    size_mib: int = 0

    @property
    def lora_path(self) -> str:
        """What vLLM's /v1/load_lora_adapter takes: huggingface://org/name -> org/name, file:///p -> /p."""
        url = self.artifact_url
        if url.startswith("huggingface://"):
            return url[len("huggingface://"):]
        if url.startswith("file://"):
            return url[len("file://"):]
        return url

    @property
    def api_key(self) -> str | None:
        return dict(self.additional_config).get("api-key")


def parse_selector(raw: Any, where: str) -> Selector:
    errors: list[str] = []
    selector = parse_label_selector(raw, where, errors, "pod")
    if errors:
        raise SpecError(errors[0])
    return selector


def parse_spec(raw: Any) -> AdapterSpec:
    """The CR's spec -> AdapterSpec; SpecError names the field (the CRD checks most of this at apply
    time; this covers objects written before the CRD was updated and the emulator)."""
    if not isinstance(raw, dict):
        raise SpecError("spec is missing")
    url = raw.get("artifactURL")
    if not isinstance(url, str) or not url:
        raise SpecError("spec.artifactURL is required")
    if not url.startswith(SCHEMES):
        raise SpecError(f"spec.artifactURL {url!r} must start with huggingface://, s3://, gs://, file:// or /")
    if url.startswith("huggingface://") and url.count("/") < 3:
        raise SpecError(f"spec.artifactURL {url!r} must name huggingface://ORG/NAME")
    replicas = raw.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1):
        raise SpecError(f"spec.replicas must be an integer >= 1 (or unset for every matching pod), got {replicas!r}")
    extra = raw.get("additionalConfig") or {}
    if not isinstance(extra, dict):
        raise SpecError("spec.additionalConfig must map names to strings")
    size = extra.get("sizeMiB", "0")
    try:
        size_mib = int(size)
        if size_mib < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise SpecError(f"spec.additionalConfig.sizeMiB must be a whole number of MiB >= 0, got {size!r}") from None
    secret = raw.get("credentialsSecretRef")
    secret_name = secret.get("name") if isinstance(secret, dict) else None
    base = raw.get("baseModel")
    return AdapterSpec(base_model=str(base) if base else None,
                       selector=parse_selector(raw.get("podSelector"), "spec.podSelector"),
                       artifact_url=url, replicas=replicas,
                       additional_config=tuple(sorted((str(k), str(v)) for k, v in extra.items())),
                       credentials_secret=secret_name, size_mib=size_mib)


@dataclass(frozen=True)
class PodView:
    """One pod in an adapter's namespace, as observed this round."""

    name: str
    uid: str
    ip: str | None
    port: int
    labels: dict[str, str]
    ready: bool
    deleting: bool
    loaded: frozenset[str] | None = None
    """Adapter names the engine's GET /v1/models lists; None = not asked or not answering."""
    base_models: frozenset[str] = frozenset()
    slots: int = 0
    """The engine's --max-loras (vllm:lora_requests_info max_lora); 0 = unknown / LoRA off."""
    memory_mib: int = UNLIMITED_MIB

    @property
    def usable(self) -> bool:
        return self.ready and not self.deleting and bool(self.ip) and self.loaded is not None


@dataclass(frozen=True)
class AdapterView:
    """One ModelAdapter as the reconcile reads it."""

    name: str
    uid: str
    generation: int
    spec: AdapterSpec | None
    spec_error: str | None = None
    deleting: bool = False
    instances: tuple[str, ...] = ()            # status.instances: the placement last written
    failed_generation: int | None = None        # status says a permanent error for this generation
    failed_message: str = ""
    rate: float = 1.0
    """Recent requests per second (all pods); the handlers measure it, 1.0 until anything is measured."""


@dataclass
class Attempt:
    failures: int
    next_at: float
    error: str


@dataclass
class State:
    """What one operator process remembers between rounds (lost on restart, which only costs a retry
    sooner or a drain again)."""

    backoff: dict[tuple[str, str], Attempt] = field(default_factory=dict)      # (adapter, pod)
    draining: dict[tuple[str, str], float] = field(default_factory=dict)       # (adapter, pod) -> since
    failed: dict[str, tuple[int, str]] = field(default_factory=dict)           # adapter -> (generation, msg)
    unready_since: dict[str, float] = field(default_factory=dict)              # pod -> first seen not usable
    last_rebalance: float | None = None                                        # the last rebalance solve


def pod_view(pod: dict[str, Any]) -> PodView:
    """A pod from the API (as JSON) -> PodView, with nothing observed from its engine yet."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    try:
        port = int(labels.get(PORT_LABEL, 8000))
    except ValueError:
        port = 8000
    try:
        memory = int((meta.get("annotations") or {}).get(MEMORY_ANNOTATION, UNLIMITED_MIB))
    except ValueError:
        memory = UNLIMITED_MIB
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return PodView(name=meta.get("name", ""), uid=meta.get("uid", ""), ip=status.get("podIP"), port=port,
                   labels=dict(labels), ready=ready, deleting=bool(meta.get("deletionTimestamp")),
                   memory_mib=memory)


def adapter_view(body: dict[str, Any]) -> AdapterView:
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    gen = int(meta.get("generation") or 0)
    try:
        spec, error = parse_spec(body.get("spec")), None
    except SpecError as exc:
        spec, error = None, str(exc)
    failed_gen, failed_msg = None, ""
    if status.get("phase") == "Failed":
        cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if cond.get("reason") == "LoadFailed":
            failed_gen, failed_msg = status.get("observedGeneration"), cond.get("message", "")
    return AdapterView(name=meta.get("name", ""), uid=meta.get("uid", ""), generation=gen, spec=spec,
                       spec_error=error, deleting=bool(meta.get("deletionTimestamp")),
                       instances=tuple(status.get("instances") or ()), failed_generation=failed_gen,
                       failed_message=failed_msg)
