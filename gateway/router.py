"""Router: turns a strategy spec into a Profile of shared plugin instances and picks an endpoint.

Plugin instances are created once per name and shared by every profile that names them, so
stateful strategies (prefix index, session table) see all traffic. Profiles are cached per spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.config import GatewayConfig
from gateway.errors import RequestRejected
from gateway.routing.api import ForgetsEndpoints, Scorer
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest
from gateway.routing.profile import Profile, build_profile
from gateway.routing.registry import Registry

MAX_CACHED_PROFILES = 256


class Router:
    def __init__(self, registry: Registry, config: GatewayConfig) -> None:
        self.registry = registry
        self.config = config
        self._plugin_cfg = {p.name: p for p in config.plugins}
        self._instances: dict[str, Scorer] = {}
        self._forgetting: list[ForgetsEndpoints] = []   # the instances with that hook, found once
        self._profiles: dict[str, Profile] = {}

    def _resolve(self, name: str) -> Scorer:
        inst = self._instances.get(name)
        if inst is not None:
            return inst
        cfg = self._plugin_cfg.get(name)
        if cfg is not None:
            inst = self.registry.build(cfg.type, cfg.name, cfg.params)
        elif name in self.registry.factories:
            inst = self.registry.build(name, name, None)
        else:
            known = sorted(set(self._plugin_cfg) | set(self.registry.factories))
            raise RequestRejected(400, f"unknown routing strategy {name!r}; known: {', '.join(known)}",
                               "invalid_routing_strategy")
        self._instances[name] = inst
        if isinstance(inst, ForgetsEndpoints):
            self._forgetting.append(inst)
        return inst

    def strategy_for(self, model: str, header: str | None) -> str:
        if header:
            return header
        mc = self.config.models.get(model)
        if mc is not None and mc.strategy:
            return mc.strategy
        return self.config.default_strategy

    def profile(self, spec: str) -> Profile:
        prof = self._profiles.get(spec)
        if prof is not None:
            return prof
        try:
            prof = build_profile(spec, self._resolve)
        except ValueError as exc:
            raise RequestRejected(400, f"bad routing-strategy {spec!r}: {exc}", "invalid_routing_strategy") from None
        if len(self._profiles) >= MAX_CACHED_PROFILES:
            self._profiles.pop(next(iter(self._profiles)))
        self._profiles[spec] = prof
        return prof

    def forget_endpoints(self, keep: Iterable[str]) -> None:
        """Let stateful strategies (prefix index, ledgers) drop endpoints discovery no longer has."""
        alive = list(keep)
        for inst in self._forgetting:
            inst.forget_endpoints(alive)

    def pick(self, profile: Profile, ctx: RoutingContext, request: RoutingRequest,
             endpoints: Sequence[EndpointState]) -> EndpointState | None:
        return profile.pick(ctx, request, endpoints)

    def metric_label(self, spec: str) -> str:
        """The strategy as a metrics label: configured specs and single known names as they are,
        any other header-made combination as "custom" (header values must not grow label sets)."""
        if spec == self.config.default_strategy or spec in self._plugin_cfg or spec in self.registry.factories:
            return spec
        if any(spec == m.strategy for m in self.config.models.values()):
            return spec
        return "custom"

    def instances(self) -> dict[str, Scorer]:
        return dict(self._instances)
