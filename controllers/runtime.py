"""What one operator process owns, passed explicitly to every controller (no module-level state)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from controllers.settings import OperatorSettings
from controllers.stats import ControllerStats


@dataclass
class Runtime:
    settings: OperatorSettings
    api_client: client.ApiClient
    stats: ControllerStats = field(default_factory=ControllerStats)
    clock: Callable[[], float] = time.time
    """Wall-clock seconds: decider state is saved in status and read back by the next leader."""
    controllers: dict[str, Any] = field(default_factory=dict)
    leading: bool = False
    kopf_ready: bool = False
    lease_ok_at: float | None = None
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when kopf stopped on SIGTERM / SIGINT: the process ends (releasing the Lease)."""
