"""session-affinity: requests with the same `x-session-id` header go to the same endpoint while it lives.

A new session is placed by rendezvous hashing over the candidates (so two gateway replicas
agree without sharing state) and remembered in a bounded table, so that endpoints added later
do not move it. When its endpoint disappears the session is placed again. Requests without the
header score every endpoint 1 (the rest of the profile decides).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.routing.api import Category, as_float, as_int, check_params
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest

TYPE = "session-affinity"
HEADER = "x-session-id"


def rendezvous(session: str, endpoint_ids: Sequence[str]) -> str:
    def weight(eid: str) -> bytes:
        return hashlib.blake2b(f"{session}|{eid}".encode(), digest_size=8).digest()
    return max(endpoint_ids, key=lambda eid: (weight(eid), eid))


@dataclass
class SessionAffinityScorer:
    name: str = TYPE
    max_sessions: int = 100_000
    ttl_s: float = 3600.0
    category: Category = "affinity"
    needs_prompt: bool = False
    _table: OrderedDict[str, tuple[str, float]] = field(default_factory=OrderedDict, repr=False)

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        session = request.headers.get(HEADER)
        ids = [e.id for e in endpoints]
        if not session or not ids:
            return dict.fromkeys(ids, 1.0)
        entry = self._table.get(session)
        target = entry[0] if entry and entry[0] in ids and ctx.now - entry[1] <= self.ttl_s else rendezvous(session, ids)
        return {eid: 1.0 if eid == target else 0.0 for eid in ids}

    def routed(self, ctx: RoutingContext, request: RoutingRequest, endpoint: EndpointState) -> None:
        session = request.headers.get(HEADER)
        if not session:
            return
        self._table[session] = (endpoint.id, ctx.now)
        self._table.move_to_end(session)
        while len(self._table) > self.max_sessions:
            self._table.popitem(last=False)


def from_params(name: str, raw: dict[str, object] | None) -> SessionAffinityScorer:
    p = check_params(TYPE, raw, ["max_sessions", "ttl_s"])
    scorer = SessionAffinityScorer(name=name, max_sessions=as_int(p, "max_sessions", 100_000),
                                   ttl_s=as_float(p, "ttl_s", 3600.0))
    if scorer.max_sessions < 1 or scorer.ttl_s <= 0:
        raise ValueError(f"{TYPE}: max_sessions must be >= 1 and ttl_s > 0")
    return scorer
