"""KVCache's pure parts: spec defaults and refusals, the objects it owns, its status."""

from __future__ import annotations

import pytest

from controllers.kvcache import resources
from controllers.kvcache.model import SpecError, parse_spec
from controllers.kvcache.status import summarize


def test_distributed_without_an_address_runs_a_managed_redis_and_engines_find_it_in_status() -> None:
    spec = parse_spec({"replicas": 3})
    assert (spec.mode, spec.managed_redis, spec.capacity, spec.eviction) == ("distributed", True, "4GiB", "s3fifo")
    objs = {(o["kind"], o["metadata"]["name"]) for o in resources.desired("pool", "ns", "u1", spec)}
    assert objs == {("StatefulSet", "pool"), ("Service", "pool"), ("Deployment", "pool-redis"),
                    ("Service", "pool-redis")}
    args = resources.statefulset("pool", "ns", "u1", spec)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--redis=redis://pool-redis.ns.svc.cluster.local:6379/0" in args and "--pool=ns.pool" in args
    assert "--advertise=$(POD_IP)" in args
    assert resources.pool_url("pool", "ns", spec) == "redis://pool-redis.ns.svc.cluster.local:6379/0?pool=ns.pool"


def test_an_external_redis_and_centralized_mode_make_no_redis_objects() -> None:
    ext = parse_spec({"metadata": {"redis": {"address": "redis.infra:6379"}}})
    assert not ext.managed_redis
    assert {o["kind"] for o in resources.desired("p", "ns", "u", ext)} == {"StatefulSet", "Service"}
    central = parse_spec({"mode": "centralized"})
    assert resources.pool_url("p", "ns", central) == "kvcache://p-0.p.ns.svc.cluster.local:9600"
    args = resources.statefulset("p", "ns", "u", central)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--redis") for a in args)


@pytest.mark.parametrize(("spec", "message"), [
    ({"mode": "centralized", "replicas": 2}, "centralized KVCache is one server"),
    ({"capacity": "lots"}, "spec.capacity 'lots' is not a size"),
    ({"eviction": "fifo"}, "s3fifo or lru"),
    ({"metadata": {"redis": {"address": "r:1", "managed": True}}}, "give one"),
    ({"metadata": {"redis": {"address": "no-port"}}}, "host:port"),
    ({"service": {"port": 9601}}, "must differ"),
])
def test_bad_specs_say_which_field_and_how_to_fix_it(spec: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


def test_a_spec_change_changes_the_hash_only_of_the_objects_it_touches() -> None:
    a, b = parse_spec({"replicas": 2}), parse_spec({"replicas": 3})
    hashes = lambda s: {o["kind"] + o["metadata"]["name"]: resources.spec_hash(o)  # noqa: E731
                        for o in resources.desired("p", "ns", "u", s)}
    ha, hb = hashes(a), hashes(b)
    assert [k for k in ha if ha[k] != hb[k]] == ["StatefulSetp"]


def test_status_ready_degraded_pending_failed() -> None:
    spec = parse_spec({"replicas": 2, "metadata": {"redis": {"address": "r:1"}}})
    sts = lambda n: {"status": {"readyReplicas": n}}  # noqa: E731
    assert summarize(spec, None, sts(2), None, "u", [], 0, 1)["phase"] == "Ready"
    assert summarize(spec, None, sts(1), None, "u", [], 0, 1)["phase"] == "Degraded"
    assert summarize(spec, None, None, None, "u", [], 0, 1)["phase"] == "Pending"
    managed = parse_spec({"replicas": 1})
    st = summarize(managed, None, sts(1), {"status": {}}, "u", [], 0, 1)
    assert st["phase"] == "Pending" and st["conditions"][0]["reason"] == "MetadataStoreNotReady"
    failed = summarize(None, "spec.eviction must be s3fifo or lru", None, None, "", [], 0, 1)
    assert failed["phase"] == "Failed" and failed["conditions"][0]["message"].startswith("spec.eviction")
