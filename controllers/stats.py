"""The operator's Prometheus metrics, in a registry owned by the operator (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ControllerStats:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.leader = Gauge("brix_controllers_leader", "1 while this replica holds the leader Lease", registry=r)
        labels = ["namespace", "name"]
        self.desired = Gauge("brix_autoscaler_desired_replicas", "Replicas the PodAutoscaler decided", labels,
                             registry=r)
        self.actual = Gauge("brix_autoscaler_actual_replicas", "The target's status.replicas at the last decision",
                            labels, registry=r)
        self.panic = Gauge("brix_autoscaler_panic", "1 while a KPA autoscaler is in panic mode", labels, registry=r)
        self.scale_events = Counter("brix_autoscaler_scale_events", "Writes of the target's /scale",
                                    [*labels, "direction"], registry=r)
        self.scrape_failures = Counter("brix_autoscaler_scrape_failures",
                                       "Metric reads that failed (recorded as missing, never as zero)", labels,
                                       registry=r)
        self.adapter_calls = Counter("brix_modeladapter_engine_calls", "Load and unload calls to engines",
                                     [*labels, "action", "result"], registry=r)
        self.adapter_rate = Gauge("brix_modeladapter_request_rate",
                                  "Requests per second the placement weighs the adapter with (measured over the "
                                  "window, else the mean of the measured adapters, else 1)", labels, registry=r)
        self.adapter_ready = Gauge("brix_modeladapter_ready_replicas",
                                   "Pods that list the adapter in GET /v1/models and are in its EndpointSlice",
                                   labels, registry=r)
        self.kvcache_ready = Gauge("brix_kvcache_ready_replicas", "Cache servers of the KVCache that are Ready",
                                   labels, registry=r)
        self.rayfleet_syncs = Counter("brix_rayfleet_syncs", "Syncs of fleets and replica sets by result (ok, "
                                      "retry after a conflict, error)", ["kind", "result"], registry=r)
        self.rayfleet_clusters = Gauge("brix_rayfleet_clusters", "A RayClusterFleet's clusters as its status "
                                       "last said (replicas, updatedReplicas, readyReplicas, availableReplicas)",
                                       [*labels, "state"], registry=r)
