"""Health policy (pure): which faults count, and when a device returns to Healthy.

Which XIDs count — the semantics of NVIDIA's device plugin, so the same env vars work:

- Application XIDs 13, 31, 43, 45, 68, 109 are ignored by default (a bad kernel, not bad hardware).
- `DP_DISABLE_HEALTHCHECKS`: a comma list. `all` disables every check; `xids` disables the XID
  check; a number adds that XID to the ignored ones. Brix also accepts the polled check names
  `ecc`, `retired_pages`, `remapped_rows`, `pcie_link` to switch one polled check off.
- `DP_ENABLE_HEALTHCHECKS`: a comma list of XIDs that always count, even with `all` disabled
  or when they are in the default ignore list.
- Every other XID counts as critical, as NVIDIA does (unknown XIDs are not ignored).

Recovery — what NVIDIA's plugin cannot do (its ListAndWatch has a FIXME: no way back):
a device is Unhealthy from the moment any fault is observed (a critical XID event, or a poll that
sees uncorrectable ECC, retired pages dbe/pending, remapping failure/pending, PCIe link width
below max, or an NVML error on the device). It returns to Healthy only after `quiet_period`
seconds in which no fault was observed at all: no new counted XID and every poll clean. So a
polled fault (ECC, remapping...) keeps the device Unhealthy for as long as NVML still reports it
(for example until `brix nvml-mock inject --heal`, or a GPU reset on real hardware) plus the quiet
period; an XID fault clears after the quiet period if no other fault shows and no XID repeats.
Set `quiet_period` to infinity (`--health-quiet-period inf`) for NVIDIA's one-way behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

DEFAULT_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
POLLED_CHECKS = ("ecc", "retired_pages", "remapped_rows", "pcie_link")


class PolicyError(ValueError):
    """A bad value in DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS."""


@dataclass(frozen=True)
class HealthChecks:
    """Which health checks run, parsed from the NVIDIA-compatible env values."""

    all_disabled: bool = False
    xids_disabled: bool = False
    ignored_xids: frozenset[int] = DEFAULT_IGNORED_XIDS
    enabled_xids: frozenset[int] = frozenset()
    disabled_polls: frozenset[str] = frozenset()

    def xid_counts(self, xid: int) -> bool:
        """Does this XID turn the GPU Unhealthy?"""
        if xid in self.enabled_xids:
            return True
        if self.all_disabled or self.xids_disabled:
            return False
        return xid not in self.ignored_xids

    def watch_xids(self) -> bool:
        """Is it worth registering for XID events at all?"""
        return bool(self.enabled_xids) or not (self.all_disabled or self.xids_disabled)

    def poll_enabled(self, check: str) -> bool:
        return not self.all_disabled and check not in self.disabled_polls


def parse_checks(disable: str | None, enable: str | None) -> HealthChecks:
    """Parse DP_DISABLE_HEALTHCHECKS and DP_ENABLE_HEALTHCHECKS values (None/"" = unset)."""
    all_disabled = xids_disabled = False
    ignored: set[int] = set(DEFAULT_IGNORED_XIDS)
    polls: set[str] = set()
    for token in _tokens(disable):
        low = token.lower()
        if low == "all":
            all_disabled = True
        elif low == "xids":
            xids_disabled = True
        elif low in POLLED_CHECKS:
            polls.add(low)
        else:
            ignored.add(_xid(token, "DP_DISABLE_HEALTHCHECKS"))
    enabled = {_xid(t, "DP_ENABLE_HEALTHCHECKS") for t in _tokens(enable)}
    return HealthChecks(all_disabled, xids_disabled, frozenset(ignored), frozenset(enabled), frozenset(polls))


def _tokens(raw: str | None) -> list[str]:
    return [t.strip() for t in (raw or "").split(",") if t.strip()]


def _xid(token: str, where: str) -> int:
    try:
        value = int(token, 10)
    except ValueError:
        raise PolicyError(
            f"{where}: {token!r} is not an XID number; use a comma list of numbers, 'all', 'xids'"
            + (f" or one of {', '.join(POLLED_CHECKS)}" if where == "DP_DISABLE_HEALTHCHECKS" else "")
        ) from None
    if value < 0:
        raise PolicyError(f"{where}: XID {value} is negative")
    return value


@dataclass(frozen=True)
class DeviceHealth:
    """Health of one device as the policy sees it."""

    healthy: bool = True
    reason: str = ""
    last_fault_at: float = -math.inf


@dataclass(frozen=True)
class Transition:
    healthy: bool
    reason: str


def observe(state: DeviceHealth, faults: list[str], now: float, quiet_period: float
            ) -> tuple[DeviceHealth, Transition | None]:
    """Fold one observation (faults seen now; [] = a clean poll) into the device's health.

    Returns the new state and the transition to report, if health flipped.
    """
    if faults:
        reason = "; ".join(faults)
        new = replace(state, healthy=False, reason=reason, last_fault_at=now)
        return new, (Transition(False, reason) if state.healthy else None)
    if not state.healthy and now - state.last_fault_at >= quiet_period:
        reason = f"recovered: no fault for {quiet_period:g}s (last: {state.reason})"
        return replace(state, healthy=True, reason=reason), Transition(True, reason)
    return state, None
