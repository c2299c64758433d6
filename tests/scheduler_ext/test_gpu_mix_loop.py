"""The GPU-mix loop over real processes: requests through two gateway replicas (official openai
client) in front of an engine-mock; `brix scheduler-ext --gateway-url A --gateway-url B` reads both
workloads, sums them and serves GPU-mix targets that follow the request mix."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import openai
import yaml

from brix import procs
from tests.scheduler_ext.conftest import http, node

MODEL = "mock-llm"
# grid: completion ticks [64] x prompt ticks [256, 4096]; tiny rates so a test's trickle matters
PROFILES = {
    "small": {"gpu": "small", "cost": 1.0, "tputs": [[0.5, 0.05]], "indexes": [[64], [256, 4096]], "model": MODEL},
    "big": {"gpu": "big", "cost": 3.0, "tputs": [[1.0, 0.4]], "indexes": [[64], [256, 4096]], "model": MODEL},
}


def prompt(tokens: int) -> str:
    return "abcd" + " abcd" * (tokens - 1)   # one token per word with brix's tokenizer (engine-mock counts so)


def targets(url: str) -> dict[str, float]:
    status, text = http("GET", f"{url}/v1/optimizer/targets/default/{MODEL}")
    if status != 200:
        return {}
    out = {}
    for line in str(text).splitlines():
        if line.startswith("brix_optimizer_target_replicas{"):
            gpu = line.split('gpu_type="', 1)[1].split('"', 1)[0]
            out[gpu] = float(line.rsplit(" ", 1)[1])
    return out


def wait_for(what: str, check, timeout: float = 40.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Load:
    """Requests of one shape at about `rps`, each to the next of `gateways`, until stopped."""

    def __init__(self, gateways: list[str], prompt_tokens: int, rps: float) -> None:
        self.clients = [openai.OpenAI(base_url=f"{g}/v1", api_key="unused", max_retries=0) for g in gateways]
        self.prompt, self.gap, self.done, self.errors = prompt(prompt_tokens), 1.0 / rps, threading.Event(), []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        k = 0
        while not self.done.is_set():
            try:
                self.clients[k % len(self.clients)].completions.create(model=MODEL, prompt=self.prompt, max_tokens=20)
            except openai.OpenAIError as exc:
                self.errors.append(exc)
            k += 1
            self.done.wait(self.gap)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)
        assert not self.errors, self.errors[:3]


def test_targets_follow_the_mix_seen_by_both_gateways(brix_process, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name, doc in PROFILES.items():
        (profiles / f"{name}.json").write_text(json.dumps(doc))
    (tmp_path / "nodes.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [node("n1", 4)]}))
    eport = procs.free_port()
    brix_process("engine", "engine-mock", "--port", str(eport), "--model", MODEL, "--speed", "20",
                 "--max-model-len", "8192", ready_url=f"http://127.0.0.1:{eport}/health")
    gateways = []
    for name in ("gw-a", "gw-b"):
        port = procs.free_port()
        url = f"http://127.0.0.1:{port}"
        brix_process(name, "gateway", "--port", str(port), "--endpoints", f"http://127.0.0.1:{eport}",
                     "--workload-window", "8", "--no-access-log", ready_url=f"{url}/readyz")
        gateways.append(url)
    xport = procs.free_port()
    ext = f"http://127.0.0.1:{xport}"
    brix_process("scheduler-ext", "scheduler-ext", "--nodes", str(tmp_path / "nodes.yaml"), "--port", str(xport),
                 "--profiles", str(profiles), "--gateway-url", gateways[0], "--gateway-url", gateways[1],
                 "--mix-interval", "0.5", "--mix-down-delay", "3", ready_url=f"{ext}/readyz")

    # short prompts through gateway A only, long ones through gateway B only: a mix of both types
    # comes out only if the extender reads and adds up both gateways
    short, long_ = Load([gateways[0]], 200, 2.0), Load([gateways[1]], 3000, 0.5)
    try:
        mixed = wait_for("targets with both GPU types", lambda: (t := targets(ext)) and t.get("small", 0) >= 1
                         and t.get("big", 0) >= 1 and t)
        status, doc = http("GET", f"{gateways[1]}/v1/workload")
        assert status == 200 and doc["models"][MODEL]["cells"][0]["prompt_tokens"] == 4096
    finally:
        short.stop()
    # the chats stop and only long prompts remain (now through both gateways): after the window and
    # the down delay the small type goes to 0 and the big type carries everything
    long_.stop()
    long_ = Load(gateways, 3000, 0.8)
    try:
        final = wait_for("targets on the big type only", lambda: (t := targets(ext)) and t.get("small") == 0
                         and t.get("big", 0) >= 1 and t)
    finally:
        long_.stop()
    assert mixed["small"] >= 1 and final["big"] >= 1
