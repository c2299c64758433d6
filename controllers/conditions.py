"""Status conditions as every controller writes them (pure): one type replaced, its
lastTransitionTime moved only when its status flips, times in RFC 3339 seconds."""

from __future__ import annotations

import datetime as dt
from typing import Any


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[dict[str, Any]], ctype: str, ok: bool, reason: str, message: str,
                  now: float) -> list[dict[str, Any]]:
    """Conditions with the one of type `ctype` replaced."""
    status = "True" if ok else "False"
    old = next((c for c in conditions if c.get("type") == ctype), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else iso(now)
    new = {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}
    return [c for c in conditions if c.get("type") != ctype] + [new]
