"""The one place that says which controllers the operator runs (no import-time handlers).

`register_all(registry, runtime)` adds every controller's kopf handlers to a registry made by the
caller and returns the background loops to run while this replica leads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import kopf

from controllers.autoscaler.handlers import AutoscalerController
from controllers.kvcache.handlers import KVCacheController
from controllers.modeladapter.handlers import ModelAdapterController
from controllers.rayfleet.handlers import RayFleetController
from controllers.runtime import Runtime

Loop = Callable[[asyncio.Event], Awaitable[None]]


def register_all(registry: kopf.OperatorRegistry, rt: Runtime) -> list[Loop]:
    autoscaler = AutoscalerController(rt.settings.autoscaler, rt.api_client, rt.stats, rt.clock)
    autoscaler.register(registry)
    rt.controllers["autoscaler"] = autoscaler
    adapters = ModelAdapterController(rt.settings.modeladapter, rt.api_client, rt.stats, rt.clock)
    adapters.register(registry)
    rt.controllers["modeladapter"] = adapters
    kvcaches = KVCacheController(rt.settings.kvcache, rt.api_client, rt.stats, rt.clock)
    kvcaches.register(registry)
    rt.controllers["kvcache"] = kvcaches
    fleets = RayFleetController(rt.settings.rayfleet, rt.api_client, rt.stats, rt.clock)
    fleets.register(registry)
    rt.controllers["rayfleet"] = fleets
    return [autoscaler.run, adapters.run, kvcaches.run, fleets.run]
