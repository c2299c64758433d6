"""KVCache on the real control plane (the `kube` fixture): the operator (`brix controllers`) creates the
cache StatefulSet and headless Service owned by the KVCache; the node agent runs the cache servers
as pods; they join the pool through the membership Redis (a real redis-server, given as the
external address); a PoolClient reading status.poolURL stores and reads blocks; scaling the KVCache
through /scale adds a server that joins the ring and takes its share; a capacity change rolls the
servers. Times are printed, not asserted."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import Any

import pytest

from brix import procs
from brix.kube import manifests
from kvcache.client import PoolClient
from kvcache.protocol import Namespace
from tests.kube import KubeNamespace

pytestmark = pytest.mark.kube
GROUP = "orchestration.brix.dev"
NS = Namespace("llama", 16)


def kvcache(redis_address: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "KVCache", "metadata": {"name": "pool"},
            "spec": {"mode": "distributed", "replicas": replicas, "capacity": "64Mi", "eviction": "s3fifo",
                     "metadata": {"redis": {"address": redis_address}}}}


def status(kube: KubeNamespace) -> dict[str, Any]:
    return kube.get_json(f"kvcaches.{GROUP}/pool").get("status") or {}


def ready(kube: KubeNamespace, n: int) -> dict[str, Any] | None:
    st = status(kube)
    return st if st.get("phase") == "Ready" and st.get("readyReplicas") == n else None


def server_addresses(kube: KubeNamespace) -> set[str]:
    pods = kube.get_json("pods", "-l", "kvcache.orchestration.brix.dev/name=pool")["items"]
    return {f"{p['status']['podIP']}:9600" for p in pods
            if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")}


async def members_become(client: PoolClient, want: set[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while set(client.members) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"pool members {client.members}, wanted {sorted(want)}")
        await asyncio.sleep(0.1)


def test_kvcache_servers_serve_the_pool_scale_and_roll(kube: KubeNamespace, brix_process, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    kube.kubectl("apply", "-k", str(manifests.DEPLOY / "crds"))
    kube.kubectl("wait", "--for=condition=Established", f"crd/kvcaches.{GROUP}", "--timeout=60s")
    port = procs.free_port()
    brix_process("controllers", "controllers", "--namespace", kube.namespace, "--no-leader-election",
                 "--kubeconfig", str(kube.kubeconfig), "--host", "127.0.0.1", "--metrics-port", str(port),
                 ready_url=f"http://127.0.0.1:{port}/readyz")
    redis_address = urllib.parse.urlsplit(redis_url).netloc

    # created: two servers Ready, objects owned by the KVCache, status says where the pool is
    started = time.monotonic()
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(kvcache(redis_address, 2)))
    st = kube.wait_for("the KVCache Ready with 2 servers", lambda: ready(kube, 2), 90, 0.2)
    t_ready = time.monotonic() - started
    for kind in ("statefulset/pool", "service/pool"):
        owner = kube.get_json(kind)["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("KVCache", "pool", True)
    assert kube.get_json("service/pool")["spec"]["clusterIP"] == "None"
    assert st["poolURL"] == f"redis://{redis_address}/0?pool={kube.namespace}.pool"

    async def use_the_pool() -> tuple[float, float]:
        async with PoolClient(st["poolURL"], refresh_s=0.2) as client:
            two = server_addresses(kube)
            await members_become(client, two)
            keys = list(range(600))
            assert await client.put(NS, [(h, h.to_bytes(8, "little") * 512) for h in keys]) == 600
            got = await client.get(NS, keys)
            assert len(got) == 600 and all(bytes(v) == h.to_bytes(8, "little") * 512 for h, v in got.items())

            # scaled through /scale: a third server joins the ring and takes about a third of the keys
            t0 = time.monotonic()
            kube.kubectl("scale", f"kvcaches.{GROUP}/pool", "--replicas=3")
            kube.wait_for("the KVCache Ready with 3 servers", lambda: ready(kube, 3), 90, 0.2)
            three = server_addresses(kube)
            (new,) = three - two
            await members_become(client, three)
            t_join = time.monotonic() - t0
            moved = client._groups(NS, keys).get(new, [])
            assert 100 < len(moved) < 320
            got = await client.get(NS, keys)
            assert set(got) == set(keys) - set(moved)  # only the new server's share misses
            assert await client.put(NS, [(h, h.to_bytes(8, "little") * 512) for h in moved]) == len(moved)
            assert len(await client.get(NS, keys)) == 600
            assert client.stats.failures == 0
            return t_join, time.monotonic() - t0

    t_join, _ = asyncio.run(use_the_pool())

    # a capacity change rolls the servers (a new StatefulSet revision on every pod)
    kube.kubectl("patch", f"kvcaches.{GROUP}/pool", "--type=merge", "-p", '{"spec": {"capacity": "32Mi"}}')

    def rolled() -> bool:
        sts = kube.get_json("statefulset/pool")
        s = sts.get("status") or {}
        args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
        return ("--capacity=32Mi" in args and s.get("updateRevision") == s.get("currentRevision")
                and s.get("updatedReplicas") == 3 and s.get("readyReplicas") == 3)
    t0 = time.monotonic()
    kube.wait_for("the servers rolled to the new capacity", rolled, 120, 0.5)
    t_roll = time.monotonic() - t0
    kube.wait_for("the KVCache Ready again", lambda: ready(kube, 3), 60, 0.2)
    print(f"\nKVCache apply -> Ready (2 servers) {t_ready:.1f} s; scale 2 -> 3 -> joined the ring {t_join:.1f} s; "
          f"capacity change rolled 3 servers in {t_roll:.1f} s")
