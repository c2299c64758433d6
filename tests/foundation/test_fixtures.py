"""The root fixtures themselves: free_port and brix_process."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from brix import procs


def test_free_port_can_be_bound_on_loopback(free_port: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port))


def test_brix_process_waits_for_healthz_and_serves(brix_process, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    proc = brix_process("engine", "engine-mock", "--port", str(free_port), "--model", "probe",
                        ready_url=f"{url}/health")
    assert proc.alive()
    with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as resp:
        assert b'"probe"' in resp.read()


def test_brix_process_reports_an_early_exit_with_its_log(brix_process, free_port: int) -> None:
    with pytest.raises(procs.ProcessFailed, match="--speed must be > 0"):
        brix_process("engine", "engine-mock", "--port", str(free_port), "--speed", "0",
                     ready_url=f"http://127.0.0.1:{free_port}/health")
