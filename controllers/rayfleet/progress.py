"""A fleet's status and its conditions, as the Deployment controller computes them (pure; `now` in).

calculate_status (replicas, updated, ready, available, unavailable, Available), the Progressing
condition of sync_rollout_status (NewReplicaSetAvailable when complete, ReplicaSetUpdated on any
progress, ProgressDeadlineExceeded with status False once lastUpdateTime + progressDeadlineSeconds
has passed without progress), the paused / resumed Unknown condition, ReplicaFailure copied from
the replica sets, and when to look again for a rollout that may be stuck.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from controllers.conditions import iso
from controllers.rayfleet.model import FleetSpec, ReplicaSetView, parse_time
from controllers.rayfleet.rollout import available_total, max_unavailable, spec_total

AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
RS_UPDATED, RS_CREATED, RS_FOUND = "ReplicaSetUpdated", "NewReplicaSetCreated", "FoundNewReplicaSet"
RS_CREATE_ERROR, NEW_RS_AVAILABLE = "ReplicaSetCreateError", "NewReplicaSetAvailable"
TIMED_OUT, PAUSED, RESUMED = "ProgressDeadlineExceeded", "FleetPaused", "FleetResumed"
INVALID_SPEC = "InvalidSpec"

Status = dict[str, Any]


def new_condition(ctype: str, status: str, reason: str, message: str, now: float) -> dict[str, Any]:
    t = iso(now)
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastUpdateTime": t,
            "lastTransitionTime": t}


def get_condition(status: Status, ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def set_condition(status: Status, cond: dict[str, Any]) -> None:
    """deploymentutil.SetDeploymentCondition: nothing when status and reason are unchanged; the
    transition time kept when only the reason changes."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime", cond["lastTransitionTime"])}
    remove_condition(status, cond["type"])
    status["conditions"] = [*status.get("conditions", []), cond]


def remove_condition(status: Status, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def calculate_status(spec: FleetSpec, generation: int, old: Status, all_rss: Sequence[ReplicaSetView],
                     new_rs: ReplicaSetView | None, now: float) -> Status:
    available = available_total(all_rss)
    unavailable = max(0, spec_total(all_rss) - available)
    status: Status = {
        "observedGeneration": generation,
        "replicas": sum(r.status_replicas for r in all_rss),
        "updatedReplicas": new_rs.status_replicas if new_rs is not None else 0,
        "readyReplicas": sum(r.ready for r in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    for key in ("collisionCount", "selector"):
        if key in old:
            status[key] = old[key]
    if available >= spec.replicas - max_unavailable(spec):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Fleet has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Fleet does not have minimum availability.", now))
    return status


def complete(spec: FleetSpec, generation: int, status: Status) -> bool:
    """deploymentutil.DeploymentComplete."""
    return (status.get("updatedReplicas") == spec.replicas and status.get("replicas") == spec.replicas
            and status.get("availableReplicas") == spec.replicas
            and int(status.get("observedGeneration") or 0) >= generation)


def progressing(old: Status, new: Status) -> bool:
    """deploymentutil.DeploymentProgressing: more updated, fewer old, more ready or more available."""
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(new.get("replicas") or 0) - int(new.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0) or new_old < old_old
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


def timed_out(spec: FleetSpec, status: Status, now: float) -> bool:
    if spec.progress_deadline_s is None:
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + spec.progress_deadline_s < now


def replica_failures(all_rss: Sequence[ReplicaSetView], new_rs: ReplicaSetView | None) -> list[dict[str, Any]]:
    found = [c for c in (new_rs.conditions if new_rs is not None else []) if c.get("type") == REPLICA_FAILURE]
    if found:
        return found
    return [c for rs in all_rss for c in rs.conditions if c.get("type") == REPLICA_FAILURE]


def sync_rollout_status(spec: FleetSpec, name: str, generation: int, old: Status, working: Status,
                        all_rss: Sequence[ReplicaSetView], new_rs: ReplicaSetView | None,
                        now: float) -> tuple[Status, float | None]:
    """dc.syncRolloutStatus: the status to write and, when the rollout may be stuck, after how many
    seconds to look again (to turn Progressing False at the deadline). `old` is the status as read,
    `working` the status this sync has changed so far (conditions set on the way)."""
    new = calculate_status(spec, generation, working, all_rss, new_rs, now)
    if spec.progress_deadline_s is None:
        remove_condition(new, PROGRESSING)
    current = get_condition(working, PROGRESSING)
    is_complete = (new["replicas"] == new["updatedReplicas"] and current is not None
                   and current.get("reason") == NEW_RS_AVAILABLE)
    rs_name = f"ReplicaSet {new_rs.name!r}" if new_rs is not None else f"Fleet {name!r}"
    if spec.progress_deadline_s is not None and not is_complete:
        if complete(spec, generation, new):
            set_condition(new, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                             f"{rs_name} has successfully progressed.", now))
        elif progressing(old, new):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{rs_name} is progressing.", now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                remove_condition(new, PROGRESSING)
            set_condition(new, cond)
        elif timed_out(spec, new, now):
            set_condition(new, new_condition(PROGRESSING, "False", TIMED_OUT, f"{rs_name} has timed out progressing.",
                                             now))
    failures = replica_failures(all_rss, new_rs)
    if failures:
        f = failures[0]
        set_condition(new, new_condition(REPLICA_FAILURE, f.get("status", "True"), f.get("reason", ""),
                                         f.get("message", ""), now))
    else:
        remove_condition(new, REPLICA_FAILURE)
    return new, requeue_after(spec, generation, working, new, now)


def requeue_after(spec: FleetSpec, generation: int, current_status: Status, new: Status, now: float) -> float | None:
    """dc.requeueStuckDeployment: seconds until the progress deadline of a rollout that is neither
    complete nor timed out (plus one, as upstream), at least 0."""
    cond = get_condition(current_status, PROGRESSING)
    if spec.progress_deadline_s is None or cond is None:
        return None
    if complete(spec, generation, new) or cond.get("reason") == TIMED_OUT:
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    after = since + spec.progress_deadline_s - now
    return 0.0 if after < 1 else after + 1


def paused_conditions(spec: FleetSpec, status: Status, now: float) -> bool:
    """dc.checkPausedConditions: Progressing Unknown FleetPaused / FleetResumed (never over a
    reported timeout); True when it changed."""
    if spec.progress_deadline_s is None:
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return False
    paused_now = cond is not None and cond.get("reason") == PAUSED
    if spec.paused and not paused_now:
        set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED, "Fleet is paused", now))
        return True
    if not spec.paused and paused_now:
        set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED, "Fleet is resumed", now))
        return True
    return False
