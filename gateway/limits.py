"""Admission: API key check and the RPM / TPM / RPS limits, over a rate-limit Store."""

from __future__ import annotations

import logging
import math
import time

from brix.logs import kv
from gateway.apikeys import ApiKey, KeyBook
from gateway.errors import RequestRejected
from gateway.ratelimit import Decision, Mode, Store

log = logging.getLogger(__name__)


class RateLimited(RequestRejected):
    def __init__(self, message: str, retry_after_s: float, limit: str) -> None:
        super().__init__(429, message, "rate_limit_exceeded", "rate_limit_error")
        self.retry_after = max(1, math.ceil(retry_after_s))
        self.limit = limit


class Admission:
    def __init__(self, keys: KeyBook | None, store: Store, model_rps: dict[str, float]) -> None:
        self.keys = keys
        self.store = store
        self.model_rps = model_rps
        self._last_store_error = 0.0

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        if self.keys is None:
            return None
        key = self.keys.lookup(authorization)
        if key is None:
            raise RequestRejected(401, "missing or invalid API key; send 'Authorization: Bearer <key>'",
                               "invalid_api_key", "authentication_error")
        return key

    async def _hit(self, key: str, limit: float, window_s: float, amount: float, mode: Mode) -> Decision:
        try:
            return await self.store.hit(key, limit, window_s, amount, mode, time.time())
        except Exception as exc:  # noqa: BLE001 - a broken limiter must not take the gateway down
            now = time.monotonic()
            if now - self._last_store_error > 10:
                kv(log, "rate-limit store failed; letting requests through", logging.WARNING,
                   error=f"{type(exc).__name__}: {exc}")
                self._last_store_error = now
            return Decision(True, 0.0, 0.0)

    async def admit(self, key: ApiKey | None, model: str) -> None:
        """Raise RateLimited (429) when a limit is reached; counts the request otherwise."""
        if key is not None:
            if key.models is not None and model not in key.models:
                raise RequestRejected(403, f"this API key may not use model {model!r}", "model_not_allowed",
                                   "permission_error")
            if key.tpm:
                d = await self._hit(f"tpm:{key.name}", key.tpm, 60.0, 0, "peek")
                if not d.allowed:
                    raise RateLimited(f"tokens per minute limit {key.tpm} reached for key {key.name!r}",
                                      d.retry_after_s, "tpm")
            if key.rpm:
                d = await self._hit(f"rpm:{key.name}", key.rpm, 60.0, 1, "take")
                if not d.allowed:
                    raise RateLimited(f"requests per minute limit {key.rpm} reached for key {key.name!r}",
                                      d.retry_after_s, "rpm")
        rps = self.model_rps.get(model)
        if rps:
            d = await self._hit(f"rps:{model}", rps, 1.0, 1, "take")
            if not d.allowed:
                raise RateLimited(f"requests per second limit {rps:g} reached for model {model!r}",
                                  d.retry_after_s, "rps")

    async def count_tokens(self, key: ApiKey | None, tokens: int) -> None:
        if key is not None and key.tpm and tokens > 0:
            await self._hit(f"tpm:{key.name}", key.tpm, 60.0, tokens, "add")
