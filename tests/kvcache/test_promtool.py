"""`promtool check metrics` passes for the pool server's /metrics and engine-mock's kv_pool series."""

from __future__ import annotations

import json
import urllib.request

from brix import procs
from tests.foundation.test_promtool import lint, page, promtool


def test_promtool_passes_for_the_pool_and_the_engines_pool_metrics(brix_process) -> None:  # type: ignore[no-untyped-def]
    tool = promtool()
    port, http, engine_port = procs.free_port(), procs.free_port(), procs.free_port()
    brix_process("kvcache", "kvcache", "serve", "--port", str(port), "--http-port", str(http),
                 ready_url=f"http://127.0.0.1:{http}/readyz")
    engine = f"http://127.0.0.1:{engine_port}"
    brix_process("engine-mock", "engine-mock", "--port", str(engine_port), "--speed", "50", "--kv-pool",
                 f"kvcache://127.0.0.1:{port}", ready_url=f"{engine}/health")
    body = json.dumps({"model": "mock-model", "prompt": "hello " * 100, "max_tokens": 2}).encode()
    req = urllib.request.Request(f"{engine}/v1/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    pool_page = page(f"http://127.0.0.1:{http}/metrics")
    engine_page = "".join(line + "\n" for line in page(f"{engine}/metrics").splitlines()
                          if "engine_mock_kv_pool" in line)
    assert "brix_kvcache_keys_total" in pool_page and "engine_mock_kv_pool_prefill_tokens_total" in engine_page
    assert lint(tool, pool_page) == [] and lint(tool, engine_page) == []
