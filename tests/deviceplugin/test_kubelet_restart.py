"""Kubelet restarts and a kubelet that is not there yet: the plugin serves and registers again."""

from __future__ import annotations

import asyncio
import time

from tests.deviceplugin.conftest import inject, plugin_args
from tests.deviceplugin.kubelet import TestKubelet, health_of, next_update, wait_health


async def test_reregisters_within_5s_after_kubelet_restart_keeping_health(brix_process, kubelet, kubelet_dir,
                                                                          mock_config):
    config = mock_config(gpus=2)
    brix_process("dp", *plugin_args(kubelet_dir, config, "--health-quiet-period", "inf"),
                 ready_socket=str(kubelet_dir / "brix-gpu.sock"))
    request = await kubelet.wait_registrations(1)
    client = kubelet.dial(request.endpoint)
    stream = client.watch()
    ids = [d.ID for d in (await next_update(stream)).devices]
    inject(config, "--gpu", "1", "--dram-ue", "2")
    await wait_health(stream, ids[1], "Unhealthy")
    await client.close()

    started = await kubelet.restart()
    await kubelet.wait_registrations(2, timeout=10)
    took = kubelet.registrations[1][0] - started
    assert took < 5.0, f"re-registered {took:.2f}s after kubelet came back"
    client = kubelet.dial(request.endpoint)
    try:
        after = await next_update(client.watch())
        assert health_of(after) == {ids[0]: "Healthy", ids[1]: "Unhealthy"}
    finally:
        await client.close()


async def test_missing_kubelet_socket_is_retried_then_registers(brix_process, kubelet_dir, mock_config):
    config = mock_config(gpus=1)
    proc = brix_process("dp", *plugin_args(kubelet_dir, config), wait=False)
    deadline = time.monotonic() + 20
    while "kubelet socket not found" not in proc.log_path.read_text(errors="replace"):
        assert proc.alive(), proc.log_tail()
        assert time.monotonic() < deadline, proc.log_tail()
        await asyncio.sleep(0.1)
    assert str(kubelet_dir / "kubelet.sock") in proc.log_tail()
    kubelet = TestKubelet(kubelet_dir)
    await kubelet.start()
    try:
        request = await kubelet.wait_registrations(1, timeout=15)
        assert request.resource_name == "nvidia.com/gpu"
    finally:
        await kubelet.stop()


async def test_stale_plugin_socket_is_replaced(brix_process, kubelet, kubelet_dir, mock_config):
    stale = kubelet_dir / "brix-gpu.sock"
    stale.write_text("left behind by a crashed plugin")
    config = mock_config(gpus=1)
    brix_process("dp", *plugin_args(kubelet_dir, config), ready_socket=str(stale))
    request = await kubelet.wait_registrations(1)
    client = kubelet.dial(request.endpoint)
    try:
        assert len((await next_update(client.watch())).devices) == 1
    finally:
        await client.close()


async def test_rejected_registration_is_retried(brix_process, kubelet, kubelet_dir, mock_config):
    kubelet.reject_with = "resource nvidia.com/gpu is already registered"
    config = mock_config(gpus=1)
    proc = brix_process("dp", *plugin_args(kubelet_dir, config), wait=False)
    deadline = time.monotonic() + 20
    while "registration at kubelet failed" not in proc.log_path.read_text(errors="replace"):
        assert proc.alive() and time.monotonic() < deadline, proc.log_tail()
        await asyncio.sleep(0.1)
    assert "already registered" in proc.log_tail()
    kubelet.reject_with = ""
    request = await kubelet.wait_registrations(1, timeout=15)
    assert request.endpoint == "brix-gpu.sock"
