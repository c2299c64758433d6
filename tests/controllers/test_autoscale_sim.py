"""`brix autoscale-sim` as a user runs it: a t,rps CSV or a request trace in, JSON per strategy out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brix.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    code = main(["autoscale-sim", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], out + err


def test_a_step_in_demand_scales_every_strategy_and_prints_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = tmp_path / "step.csv"
    trace.write_text("t,rps\n" + "".join(f"{t},{2 if t < 300 else 10}\n" for t in range(900)))
    code, rows, text = run(capsys, "--trace", str(trace), "--startup-delay", "10", "--plot", str(tmp_path / "c.png"))
    assert code == 0 and [r["strategy"] for r in rows] == ["HPA", "KPA", "APA"]
    for r in rows:
        assert r["max_replicas"] >= 15                       # 10 req/s at 70 % of 1 req/s per pod
        assert r["replica_seconds"] > 900 * 3
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    again = run(capsys, "--trace", str(trace), "--startup-delay", "10")[1]
    assert again == rows                                     # deterministic


def test_a_request_trace_is_binned_per_second(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = tmp_path / "req.csv"
    trace.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + "".join(f"{i / 4},10,10\n" for i in range(400)))
    code, rows, _ = run(capsys, "--trace", str(trace), "--strategy", "kpa")
    assert code == 0 and len(rows) == 1 and rows[0]["strategy"] == "KPA"


def test_a_bad_trace_is_a_usage_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = tmp_path / "bad.csv"
    trace.write_text("t,rps\n0,abc\n")
    code, _, text = run(capsys, "--trace", str(trace))
    assert code == 2 and "row 2" in text
