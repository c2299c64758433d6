"""The replica arithmetic of Kubernetes' Deployment controller, for fleets of RayClusters (pure).

Written from the definitions in kubernetes/pkg/controller/deployment (rolling.go, recreate.go,
sync.go's proportional `scale`, util/deployment_util.go): the same fenceposts (maxSurge rounds up,
maxUnavailable rounds down, both resolving to 0 makes maxUnavailable 1), the same order of steps
and the same tie-breaks. Functions work on a planner's working copies of the replica sets
(`ReplicaSetView`, mutated as decisions are taken, as the Go code updates its objects in place)
and record each change as a `ScaleAction` for the handlers to write.

Two deliberate differences, both for statuses that lag their specs (the fleet controller may sync
between its scale-down of an old replica set and that replica set's next status):
- the surge bound (NewRSNewReplicas) counts, for each replica set, its clusters that still exist
  (status) when that is more than its spec, so a new multi-node cluster is created only once the
  old one it replaces is gone: GPUs are held until then (Deployments count spec.replicas only, so
  terminating pods can briefly exceed the surge);
- the availability that allows old replica sets to be scaled down counts at most each replica
  set's spec, so clusters already being removed are not counted as available a second time
  (upstream sums status.availableReplicas and can go below maxUnavailable in that window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controllers.rayfleet.model import DESIRED_REPLICAS, MAX_REPLICAS, FleetSpec, IntOrPercent, ReplicaSetView


@dataclass
class ScaleAction:
    name: str
    replicas: int
    desired: int       # the fleet's replicas, for the desired-replicas annotation
    max_replicas: int  # replicas + maxSurge, for the max-replicas annotation


def resolve_fenceposts(max_surge: IntOrPercent, max_unavailable: IntOrPercent, desired: int) -> tuple[int, int]:
    """deploymentutil.ResolveFenceposts: surge rounds up, unavailable rounds down; if both come to 0
    (only by rounding: validation refuses an explicit 0 / 0), maxUnavailable is 1."""
    surge = max_surge.scaled(desired, round_up=True)
    unavailable = max_unavailable.scaled(desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(spec: FleetSpec) -> int:
    if not spec.rolling:
        return 0
    return resolve_fenceposts(spec.max_surge, spec.max_unavailable, spec.replicas)[0]


def max_unavailable(spec: FleetSpec) -> int:
    if not spec.rolling or spec.replicas == 0:
        return 0
    return min(resolve_fenceposts(spec.max_surge, spec.max_unavailable, spec.replicas)[1], spec.replicas)


def by_creation(rss: Sequence[ReplicaSetView]) -> list[ReplicaSetView]:
    """controller.ReplicaSetsByCreationTimestamp: oldest first, then by name."""
    return sorted(rss, key=lambda r: (r.created, r.name))


def active(rss: Sequence[ReplicaSetView | None]) -> list[ReplicaSetView]:
    return [r for r in rss if r is not None and r.replicas > 0]


def spec_total(rss: Sequence[ReplicaSetView | None]) -> int:
    return sum(r.replicas for r in rss if r is not None)


def available_total(rss: Sequence[ReplicaSetView | None]) -> int:
    return sum(r.available for r in rss if r is not None)


def available_kept(rss: Sequence[ReplicaSetView | None]) -> int:
    """Available clusters that will still be there once each replica set reaches its spec: a
    replica set whose status still counts clusters it is about to remove counts at most its spec
    (a replica set removes unavailable clusters first, so it keeps min(available, spec))."""
    return sum(min(r.available, r.replicas) for r in rss if r is not None)


def replicas_annotations_need_update(rs: ReplicaSetView, desired: int, maximum: int) -> bool:
    return rs.annotations.get(DESIRED_REPLICAS) != str(desired) or rs.annotations.get(MAX_REPLICAS) != str(maximum)


def set_replicas_annotations(rs: ReplicaSetView, desired: int, maximum: int) -> bool:
    changed = replicas_annotations_need_update(rs, desired, maximum)
    rs.annotations[DESIRED_REPLICAS], rs.annotations[MAX_REPLICAS] = str(desired), str(maximum)
    return changed


def scale_replica_set(rs: ReplicaSetView, new_scale: int, spec: FleetSpec, actions: list[ScaleAction]) -> bool:
    """dc.scaleReplicaSet: write the size and the desired / max annotations when either changed;
    True when the size changed."""
    size_changed = rs.replicas != new_scale
    maximum = spec.replicas + max_surge(spec)
    if size_changed or replicas_annotations_need_update(rs, spec.replicas, maximum):
        rs.replicas = new_scale
        set_replicas_annotations(rs, spec.replicas, maximum)
        actions.append(ScaleAction(rs.name, new_scale, spec.replicas, maximum))
    return size_changed


def scale_and_record(rs: ReplicaSetView, new_scale: int, spec: FleetSpec, actions: list[ScaleAction]) -> bool:
    """dc.scaleReplicaSetAndRecordEvent: nothing when the size is already right."""
    if rs.replicas == new_scale:
        return False
    return scale_replica_set(rs, new_scale, spec, actions)


# ---- rolling update (rolling.go) ---------------------------------------------------------------

def new_rs_new_replicas(spec: FleetSpec, all_rss: Sequence[ReplicaSetView], new_rs: ReplicaSetView) -> int:
    """deploymentutil.NewRSNewReplicas (surge counted as explained in the module docstring)."""
    if not spec.rolling:
        return spec.replicas
    surge = spec.max_surge.scaled(spec.replicas, round_up=True)
    current = sum(r.counted for r in all_rss)
    max_total = spec.replicas + surge
    if current >= max_total:
        return new_rs.replicas
    return new_rs.replicas + min(max_total - current, spec.replicas - new_rs.replicas)


def reconcile_new_replica_set(spec: FleetSpec, all_rss: Sequence[ReplicaSetView], new_rs: ReplicaSetView,
                              actions: list[ScaleAction]) -> bool:
    if new_rs.replicas == spec.replicas:
        return False
    if new_rs.replicas > spec.replicas:
        return scale_and_record(new_rs, spec.replicas, spec, actions)
    return scale_and_record(new_rs, new_rs_new_replicas(spec, all_rss, new_rs), spec, actions)


def cleanup_unhealthy_replicas(spec: FleetSpec, old_rss: list[ReplicaSetView], max_cleanup: int,
                               actions: list[ScaleAction]) -> int:
    """Scale old replica sets down by their unavailable clusters first (oldest first): removing a
    cluster that serves nothing never lowers availability, and leaving it could block the rollout."""
    total = 0
    for rs in by_creation(old_rss):
        if total >= max_cleanup:
            break
        if rs.replicas == 0 or rs.available >= rs.replicas:
            continue   # no unavailable cluster (status may still count ones already scaled away)
        count = min(max_cleanup - total, rs.replicas - rs.available)
        scale_and_record(rs, rs.replicas - count, spec, actions)
        total += count
    return total


def scale_down_old_for_rolling_update(spec: FleetSpec, all_rss: Sequence[ReplicaSetView],
                                      old_rss: list[ReplicaSetView], actions: list[ScaleAction]) -> int:
    min_available = spec.replicas - max_unavailable(spec)
    available = available_kept(all_rss)
    if available <= min_available:
        return 0
    total, budget = 0, available - min_available
    for rs in by_creation(old_rss):
        if total >= budget:
            break
        if rs.replicas == 0:
            continue
        count = min(rs.replicas, budget - total)
        scale_and_record(rs, rs.replicas - count, spec, actions)
        total += count
    return total


def reconcile_old_replica_sets(spec: FleetSpec, all_rss: Sequence[ReplicaSetView], old_rss: list[ReplicaSetView],
                               new_rs: ReplicaSetView, actions: list[ScaleAction]) -> bool:
    if spec_total(old_rss) == 0:
        return False
    min_available = spec.replicas - max_unavailable(spec)
    new_unavailable = max(0, new_rs.replicas - new_rs.available)
    # spec totals, not status: a second pass before the replica sets report their scale-down must
    # not scale down again on the availability they no longer have
    max_scaled_down = spec_total(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    cleaned = cleanup_unhealthy_replicas(spec, old_rss, max_scaled_down, actions)
    scaled = scale_down_old_for_rolling_update(spec, [*old_rss, new_rs], old_rss, actions)
    return cleaned + scaled > 0


# ---- Recreate (recreate.go) ----------------------------------------------------------------------

def scale_down_old_for_recreate(spec: FleetSpec, old_rss: Sequence[ReplicaSetView], actions: list[ScaleAction]) -> bool:
    scaled = False
    for rs in old_rss:
        if rs.replicas == 0:
            continue
        if scale_and_record(rs, 0, spec, actions):
            scaled = True
    return scaled


def old_clusters_running(old_rss: Sequence[ReplicaSetView]) -> bool:
    """Recreate waits until every old cluster is gone: each old replica set has reported its
    current spec (observedGeneration) with no cluster left, terminating ones included."""
    return any(rs.observed_generation < rs.generation or rs.status_replicas + rs.terminating > 0 for rs in old_rss)


# ---- proportional scaling (sync.go `scale`) --------------------------------------------------------

def find_active_or_latest(new_rs: ReplicaSetView | None, old_rss: Sequence[ReplicaSetView]) -> ReplicaSetView | None:
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=lambda r: (r.created, r.name), reverse=True)
    live = active([*olds, new_rs])
    if not live:
        return new_rs if new_rs is not None else olds[0]
    return live[0] if len(live) == 1 else None


def is_saturated(spec: FleetSpec, rs: ReplicaSetView | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(rs.annotations.get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    return rs.replicas == spec.replicas and desired == spec.replicas and rs.available == spec.replicas


def _fraction(rs: ReplicaSetView, spec: FleetSpec, status_replicas: int) -> int:
    if spec.replicas == 0:
        return -rs.replicas
    fleet_max = spec.replicas + max_surge(spec)
    try:
        before = int(rs.annotations.get(MAX_REPLICAS, ""))
    except ValueError:
        before = 0
    if before <= 0:
        before = status_replicas or 1   # no annotation: the fleet's current size
    # integer.RoundToInt32: half away from zero
    exact = rs.replicas * fleet_max / before
    rounded = int(exact + 0.5) if exact >= 0 else -int(-exact + 0.5)
    return rounded - rs.replicas


def _proportion(rs: ReplicaSetView, spec: FleetSpec, to_add: int, added: int, status_replicas: int) -> int:
    if rs.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, spec, status_replicas)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def scale(spec: FleetSpec, new_rs: ReplicaSetView | None, old_rss: list[ReplicaSetView], status_replicas: int,
          actions: list[ScaleAction]) -> None:
    """A change of spec.replicas while replica sets are active: all to the one active replica set, or
    shared out in proportion to their sizes during a rollout (largest first; newer first on the way
    up, older first on the way down; leftovers to the largest)."""
    one = find_active_or_latest(new_rs, old_rss)
    if one is not None:
        if one.replicas != spec.replicas:
            scale_and_record(one, spec.replicas, spec, actions)
        return
    if is_saturated(spec, new_rs):
        for old in active(old_rss):
            scale_and_record(old, 0, spec, actions)
        return
    if not spec.rolling:
        return
    live = active([*old_rss, new_rs])
    allowed = spec.replicas + max_surge(spec) if spec.replicas > 0 else 0
    to_add = allowed - spec_total(live)
    if to_add > 0:      # ReplicaSetsBySizeNewer: largest first, then the newest (name descending)
        live.sort(key=lambda r: r.name, reverse=True)
        live.sort(key=lambda r: (-r.replicas, -r.created))
    elif to_add < 0:    # ReplicaSetsBySizeOlder: largest first, then the oldest (name ascending)
        live.sort(key=lambda r: (-r.replicas, r.created, r.name))
    sizes: dict[str, int] = {}
    added = 0
    for rs in live:
        if to_add != 0:
            p = _proportion(rs, spec, to_add, added, status_replicas)
            sizes[rs.name] = rs.replicas + p
            added += p
        else:
            sizes[rs.name] = rs.replicas
    for i, rs in enumerate(live):
        if i == 0 and to_add != 0:
            sizes[rs.name] = max(0, sizes[rs.name] + to_add - added)
        scale_replica_set(rs, sizes[rs.name], spec, actions)


def is_scaling_event(spec: FleetSpec, rss: Sequence[ReplicaSetView | None]) -> bool:
    """A replica set annotated with another desired size than the fleet's: the fleet was scaled."""
    for rs in active(rss):
        desired = rs.annotations.get(DESIRED_REPLICAS)
        if desired is None:
            continue
        try:
            if int(desired) != spec.replicas:
                return True
        except ValueError:
            continue
    return False
