"""Faults injected into the live mock flip health on ListAndWatch, and healing flips it back."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import grpc
import pytest

from tests.deviceplugin.conftest import inject, plugin_args
from tests.deviceplugin.kubelet import health_of, next_update, wait_health


async def _start(brix_process, kubelet, kubelet_dir, config, *extra, env=None, metrics_port=0):
    brix_process("dp", *plugin_args(kubelet_dir, config, *extra, metrics_port=metrics_port), env=env,
                 ready_socket=str(kubelet_dir / "brix-gpu.sock"))
    request = await kubelet.wait_registrations(1)
    client = kubelet.dial(request.endpoint)
    stream = client.watch()
    ids = [d.ID for d in (await next_update(stream)).devices]
    return client, stream, ids


async def test_xid_turns_gpu_unhealthy_and_it_recovers_after_quiet_period(brix_process, kubelet, kubelet_dir,
                                                                         mock_config):
    config = mock_config(gpus=2)
    client, stream, ids = await _start(brix_process, kubelet, kubelet_dir, config)
    try:
        inject(config, "--gpu", "1", "--xid", "79")
        update = await wait_health(stream, ids[1], "Unhealthy", timeout=5)
        assert health_of(update)[ids[0]] == "Healthy"
        unhealthy_at = time.monotonic()
        await wait_health(stream, ids[1], "Healthy", timeout=10)
        assert time.monotonic() - unhealthy_at >= 0.8  # not before the 1 s quiet period
    finally:
        await client.close()


async def test_polled_fault_stays_until_healed_then_recovers(brix_process, kubelet, kubelet_dir, mock_config):
    config = mock_config(gpus=2)
    client, stream, ids = await _start(brix_process, kubelet, kubelet_dir, config)
    try:
        inject(config, "--gpu", "0", "--dram-ue", "1")
        await wait_health(stream, ids[0], "Unhealthy", timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.allocate([ids[0]])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ids[0] in err.value.details() and "unhealthy" in err.value.details()
        # Well past the quiet period the ECC count is still there: no recovery.
        with pytest.raises(TimeoutError):
            await stream.next(2.0)
        inject(config, "--gpu", "0", "--heal")
        await wait_health(stream, ids[0], "Healthy", timeout=10)
        await client.allocate([ids[0]])
    finally:
        await client.close()


@pytest.mark.parametrize("fault", [["--remapping-pending"], ["--link-width", "8"]], ids=["remapping", "pcie"])
async def test_remapping_and_link_width_faults(brix_process, kubelet, kubelet_dir, mock_config, fault):
    config = mock_config(gpus=1)
    client, stream, ids = await _start(brix_process, kubelet, kubelet_dir, config)
    try:
        inject(config, "--gpu", "0", *fault)
        await wait_health(stream, ids[0], "Unhealthy", timeout=5)
    finally:
        await client.close()


async def test_xid_policy_ignored_unknown_and_env_overrides(brix_process, kubelet, kubelet_dir, mock_config):
    """13 is ignored by default but force-enabled here; 79 is ignored through DP_DISABLE_HEALTHCHECKS;
    999 is in no list and counts as critical, as in NVIDIA's plugin; 31 stays ignored."""
    config = mock_config(gpus=4)
    env = {"DP_DISABLE_HEALTHCHECKS": "79", "DP_ENABLE_HEALTHCHECKS": "13"}
    client, stream, ids = await _start(brix_process, kubelet, kubelet_dir, config, "--health-quiet-period", "inf",
                                       env=env)
    try:
        inject(config, "--gpu", "0", "--xid", "79")
        inject(config, "--gpu", "1", "--xid", "31")
        inject(config, "--gpu", "2", "--xid", "999")
        update = await wait_health(stream, ids[2], "Unhealthy", timeout=5)
        inject(config, "--gpu", "3", "--xid", "13")
        update = await wait_health(stream, ids[3], "Unhealthy", timeout=5)
        assert health_of(update) == {ids[0]: "Healthy", ids[1]: "Healthy", ids[2]: "Unhealthy", ids[3]: "Unhealthy"}
    finally:
        await client.close()


async def test_metrics_show_health_allocations_and_registrations(brix_process, kubelet, kubelet_dir, mock_config,
                                                                 free_port):
    config = mock_config(gpus=2)
    client, stream, ids = await _start(brix_process, kubelet, kubelet_dir, config, metrics_port=free_port)
    base = f"http://127.0.0.1:{free_port}"
    try:
        await client.allocate([ids[0]])
        inject(config, "--gpu", "1", "--dram-ue", "3")
        await wait_health(stream, ids[1], "Unhealthy", timeout=5)
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/metrics").read().decode())
        assert f'brix_deviceplugin_device_healthy{{device="{ids[1]}",resource="nvidia.com/gpu"}} 0.0' in text
        assert f'brix_deviceplugin_device_healthy{{device="{ids[0]}",resource="nvidia.com/gpu"}} 1.0' in text
        assert f'brix_deviceplugin_allocations_total{{device="{ids[0]}"}} 1.0' in text
        assert "brix_deviceplugin_registrations_total 1.0" in text
        for path in ("/healthz", "/readyz"):
            status = await asyncio.to_thread(lambda p=path: urllib.request.urlopen(base + p).status)
            assert status == 200
    finally:
        await client.close()
