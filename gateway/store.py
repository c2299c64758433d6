"""EndpointStore: the gateway's current view of its endpoints (no I/O).

Discovery writes endpoints and their model lists, the scraper writes metrics, the proxy
counts requests in flight. Routing asks for `candidates(model)`, which builds immutable
EndpointState values from the current data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.routing.model import EndpointMetrics, EndpointState


@dataclass
class _Entry:
    id: str
    models: frozenset[str] = frozenset()
    model_cards: tuple[dict[str, object], ...] = ()
    metrics: EndpointMetrics = EndpointMetrics()
    discovered_ready: bool = True    # Kubernetes Ready condition / static: last /v1/models fetch OK
    reachable: bool = True           # false after repeated scrape or connect failures
    healthy: bool = True             # false while /health answers 5xx or /v1/models fails
    models_known: bool = False
    models_seq: int = 0              # store.seq when the /v1/models answer in `models` was asked for
    routed: frozenset[str] = frozenset()   # models routed here: `models` with ModelAdapters' slices applied


class EndpointStore:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._in_flight: dict[str, int] = {}
        self._by_model: dict[str, tuple[str, ...]] = {}
        self._seen_models: set[str] = set()   # every model any endpoint ever served (scale from zero)
        self.version = 0
        # Kubernetes discovery has listed pods at least once: the gateway knows what exists, so it
        # is ready to take requests even while no engine is (it answers 503 or holds them)
        self.discovered = False
        # adapters that ModelAdapters manage: adapter -> (endpoints its EndpointSlice lists, store.seq
        # of that slice, slice still exists). For those the slice, not /v1/models, says where to route.
        self._managed: dict[str, tuple[frozenset[str], int, bool]] = {}
        self.seq = 0

    # ---- discovery side ------------------------------------------------------------------
    def set_endpoints(self, ids: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(ids))
        for eid in wanted:
            if eid not in self._entries:
                self._entries[eid] = _Entry(eid)
                self._in_flight.setdefault(eid, 0)
        for eid in [e for e in self._entries if e not in wanted]:
            del self._entries[eid]
        self._reindex()

    def upsert(self, eid: str, ready: bool) -> None:
        entry = self._entries.get(eid)
        if entry is None:
            entry = self._entries[eid] = _Entry(eid)
            self._in_flight.setdefault(eid, 0)
        entry.discovered_ready = ready
        self._reindex()

    def remove(self, eid: str) -> None:
        if self._entries.pop(eid, None) is not None:
            self._reindex()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def set_models(self, eid: str, cards: list[dict[str, object]], asked_at: int | None = None) -> None:
        """The endpoint's GET /v1/models answer; `asked_at` = next_seq() taken before asking."""
        entry = self._entries.get(eid)
        if entry is None:
            return
        models = frozenset(str(c.get("id")) for c in cards if c.get("id"))
        entry.model_cards = tuple(cards)
        entry.models_known = True
        entry.models_seq = asked_at if asked_at is not None else self.next_seq()
        if models != entry.models or not entry.healthy or self._managed:
            entry.models = models
            entry.healthy = True
            self._reindex()

    def set_adapter_endpoints(self, adapter: str, eids: Iterable[str]) -> None:
        """A ModelAdapter's EndpointSlice lists these endpoints: the adapter is routed there at once
        (the operator verified it in /v1/models), and nowhere else."""
        self._managed[adapter] = (frozenset(eids), self.next_seq(), True)
        self._reindex()

    def drop_adapter(self, adapter: str) -> None:
        """The slice is gone: route the adapter nowhere until each endpoint's next /v1/models says so."""
        if adapter in self._managed:
            self._managed[adapter] = (frozenset(), self.next_seq(), False)
            self._reindex()

    def _routed(self, e: _Entry) -> frozenset[str]:
        if not self._managed:
            return e.models
        out = set(e.models)
        for adapter, (eids, seq, alive) in self._managed.items():
            fresh = e.models_known and e.models_seq > seq      # /v1/models asked after the slice changed
            if e.id in eids:
                if fresh and adapter not in e.models:          # e.g. the engine restarted since
                    out.discard(adapter)
                else:
                    out.add(adapter)
            elif alive or not fresh:
                out.discard(adapter)
        return frozenset(out)

    def set_unhealthy(self, eid: str) -> None:
        entry = self._entries.get(eid)
        if entry is not None and entry.healthy:
            entry.healthy = False
            self._reindex()

    def set_ready(self, eid: str, reachable: bool) -> None:
        entry = self._entries.get(eid)
        if entry is not None and entry.reachable != reachable:
            entry.reachable = reachable
            self._reindex()

    def set_metrics(self, eid: str, metrics: EndpointMetrics) -> None:
        entry = self._entries.get(eid)
        if entry is not None:
            entry.metrics = metrics
            if not entry.reachable:
                entry.reachable = True
                self._reindex()

    def set_metrics_missing(self, eid: str) -> None:
        """The endpoint answers but has no /metrics page: keep it routable on gateway counts only."""
        self.set_ready(eid, True)

    def metrics_of(self, eid: str) -> EndpointMetrics | None:
        entry = self._entries.get(eid)
        return entry.metrics if entry else None

    def _reindex(self) -> None:
        by_model: dict[str, list[str]] = {}
        for e in self._entries.values():
            e.routed = self._routed(e)
            for m in e.routed:
                by_model.setdefault(m, []).append(e.id)
        self._by_model = {m: tuple(ids) for m, ids in by_model.items()}
        self._seen_models.update(by_model)
        self.version += 1

    # ---- proxy side ----------------------------------------------------------------------
    def endpoint_ids(self) -> list[str]:
        return list(self._entries)

    def knows_model(self, model: str) -> bool:
        return model in self._by_model

    def served_before(self, model: str) -> bool:
        """Some endpoint served the model since the gateway started (it may be scaled to zero now)."""
        return model in self._seen_models

    def candidates(self, model: str, exclude: frozenset[str] = frozenset()) -> list[EndpointState]:
        out = []
        inflight = self._in_flight
        for eid in self._by_model.get(model, ()):
            e = self._entries[eid]
            if eid in exclude or not (e.discovered_ready and e.reachable and e.healthy):
                continue
            out.append(EndpointState(eid, e.routed, e.metrics, inflight.get(eid, 0), True))
        return out

    def acquire(self, eid: str) -> None:
        self._in_flight[eid] = self._in_flight.get(eid, 0) + 1

    def release(self, eid: str) -> None:
        self._in_flight[eid] = max(0, self._in_flight.get(eid, 0) - 1)

    def in_flight(self, eid: str) -> int:
        return self._in_flight.get(eid, 0)

    def ready_count(self) -> int:
        return sum(1 for e in self._entries.values() if e.discovered_ready and e.reachable and e.healthy and e.models_known)

    def model_cards(self) -> list[dict[str, object]]:
        """The union of the ready endpoints' /v1/models cards, one per model id."""
        seen: dict[str, dict[str, object]] = {}
        for e in self._entries.values():
            if not (e.discovered_ready and e.reachable and e.healthy):
                continue
            for card in e.model_cards:
                seen.setdefault(str(card.get("id")), card)
        return list(seen.values())

    def describe(self) -> list[dict[str, object]]:
        return [{"endpoint": e.id, "ready": e.discovered_ready and e.reachable and e.healthy, "models": sorted(e.routed),
                 "in_flight": self._in_flight.get(e.id, 0)} for e in self._entries.values()]
