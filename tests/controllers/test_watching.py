"""controllers/watching.track: what every controller keeps per object follows kopf's watch events."""

from __future__ import annotations

from typing import Any

from controllers import watching


def event(kind: str, uid: str | None, name: str = "pool") -> dict[str, Any]:
    meta: dict[str, str] = {"name": name, **({"uid": uid} if uid else {})}
    return {"type": kind, "object": {"metadata": meta, "spec": {"replicas": 2}}}


def test_a_deleted_object_is_forgotten_with_everything_kept_for_it() -> None:
    tracked: dict[str, dict[str, Any]] = {}
    statuses = {"u2": "kept for another object"}
    assert watching.track(event("ADDED", "u1"), tracked, statuses)
    assert watching.track(event("MODIFIED", "u2", "other"), tracked, statuses)
    assert set(tracked) == {"u1", "u2"} and tracked["u1"]["metadata"]["name"] == "pool"
    statuses["u1"] = "written"
    assert watching.track(event("DELETED", "u1"), tracked, statuses)
    assert set(tracked) == {"u2"} and statuses == {"u2": "kept for another object"}


def test_an_event_without_a_uid_changes_nothing() -> None:
    tracked: dict[str, dict[str, Any]] = {}
    assert not watching.track(event("ADDED", None), tracked)
    assert not watching.track({"type": "ADDED"}, tracked)
    assert tracked == {}
