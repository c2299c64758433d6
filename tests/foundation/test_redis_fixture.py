"""The redis fixture starts a real redis-server on loopback and stops it afterwards."""

from __future__ import annotations

import redis


def test_redis_fixture_serves_a_real_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("brix:probe", "1", ex=10)
    assert client.get("brix:probe") == b"1"
    assert client.info("server")["tcp_port"] == int(redis_url.rsplit(":", 1)[1].split("/")[0])
