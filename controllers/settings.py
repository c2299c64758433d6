"""Typed settings for `brix controllers`, built from flags in controllers/cli.py (nothing deeper sees argparse)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LeaderSettings:
    enabled: bool = True
    """Elect a leader through a coordination.k8s.io/v1 Lease, so that two replicas can run; only
    the leader watches and scales. Off: this process acts at once (one replica, or tests)."""
    namespace: str = "default"
    """Namespace of the Lease (the operator's own namespace in a pod: POD_NAMESPACE)."""
    name: str = "brix-controllers"
    identity: str = ""
    """This replica's name in the Lease; empty = hostname_pid."""
    lease_duration_s: float = 15.0
    """A leader that has not renewed for this long may be replaced (client-go's default)."""
    renew_period_s: float = 5.0
    """How often the leader renews and a standby retries."""


@dataclass(frozen=True)
class AutoscalerSettings:
    tick_s: float = 1.0
    """How often each PodAutoscaler's pods are scraped; one sample per second fills the
    per-second buckets. Decisions happen at each autoscaler's own sync period."""
    scrape_timeout_s: float = 1.0
    """Timeout of one /metrics read (pod, external URL, optimizer, gateway)."""
    gateway_urls: tuple[str, ...] = ()
    """Gateways whose held-request metric (brix_gateway_held_requests) triggers scale from zero."""
    history: int = 10
    """Decisions kept in status.lastDecisions."""


@dataclass(frozen=True)
class ModelAdapterSettings:
    tick_s: float = 1.0
    """How often each namespace with ModelAdapters is reconciled: its pods listed, their engines'
    GET /v1/models read (drift shows up within one tick), loads and unloads done. A change to a
    ModelAdapter starts a round at once."""
    request_timeout_s: float = 30.0
    """Timeout of one call to an engine (load, unload, /v1/models); AIBrix uses 30 s."""
    drain_s: float = 1.0
    """A pod leaves the adapter's EndpointSlice this long before the adapter is unloaded from it."""
    backoff_base_s: float = 1.0
    """First retry delay of a load that failed on a retriable error; doubles up to backoff_cap_s,
    with jitter (half the delay fixed, half random)."""
    backoff_cap_s: float = 60.0
    solve_time_s: float = 5.0
    """Time limit of one LoRA placement solve (CP-SAT)."""
    rate_scrape_s: float = 5.0
    """How often each engine's per-adapter request counters (/metrics) are read for placement."""
    rate_window_s: float = 60.0
    """Request rates are the counters' increase over this window."""


@dataclass(frozen=True)
class KVCacheSettings:
    tick_s: float = 1.0
    """How often each KVCache's objects are checked (created if missing, patched if their spec changed)
    and its status refreshed from the StatefulSet's ready count. A change to a KVCache starts a round at once."""


@dataclass(frozen=True)
class RayFleetSettings:
    workers: int = 4
    """Fleets synced at once, and as many replica sets (one sync per object at a time, as the
    Deployment and ReplicaSet controllers' worker pools)."""
    delete_parallelism: int = 10
    """RayClusters one replica set deletes at once (AIBrix's limit)."""
    retry_base_s: float = 0.5
    """First retry of a sync that failed (a 409 from a cache that was behind, an API error); doubles
    up to retry_cap_s."""
    retry_cap_s: float = 30.0


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty with all_namespaces = cluster-wide."""
    all_namespaces: bool = False
    kubeconfig: str | None = None
    """Kubeconfig file; None = in-cluster, then ~/.kube/config."""
    host: str = "0.0.0.0"
    metrics_port: int = 8080
    """Port of /healthz (liveness), /readyz (readiness) and /metrics."""
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)
    modeladapter: ModelAdapterSettings = field(default_factory=ModelAdapterSettings)
    rayfleet: RayFleetSettings = field(default_factory=RayFleetSettings)
    kvcache: KVCacheSettings = field(default_factory=KVCacheSettings)
