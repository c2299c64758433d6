"""The plugin as a real process, talking v1beta1 over unix sockets with the test kubelet."""

from __future__ import annotations

import grpc
import pytest

from tests.deviceplugin.conftest import plugin_args
from tests.deviceplugin.kubelet import health_of, next_update


async def test_registers_and_lists_every_gpu_healthy(brix_process, kubelet, kubelet_dir, mock_config):
    config = mock_config(gpus=4)
    brix_process("dp", *plugin_args(kubelet_dir, config), ready_socket=str(kubelet_dir / "brix-gpu.sock"))
    request = await kubelet.wait_registrations(1)
    assert (request.version, request.endpoint, request.resource_name) == ("v1beta1", "brix-gpu.sock", "nvidia.com/gpu")
    assert request.options.get_preferred_allocation_available is True
    client = kubelet.dial(request.endpoint)
    try:
        options = await client.options()
        assert options.get_preferred_allocation_available and not options.pre_start_required
        first = await next_update(client.watch())
        assert len(first.devices) == 4
        assert set(health_of(first).values()) == {"Healthy"}
        assert all(d.ID.startswith("GPU-") for d in first.devices)
        numa = {d.ID: [n.ID for n in d.topology.nodes] for d in first.devices}
        assert sorted(v[0] for v in numa.values()) == [0, 0, 1, 1]
    finally:
        await client.close()


async def test_allocate_returns_visible_devices_and_refuses_unknown_ids(brix_process, kubelet, kubelet_dir,
                                                                        mock_config):
    config = mock_config(gpus=2)
    brix_process("dp", *plugin_args(kubelet_dir, config, "--pass-device-specs",
                                    "--device-list-strategy", "envvar,cdi-cri"),
                 ready_socket=str(kubelet_dir / "brix-gpu.sock"))
    request = await kubelet.wait_registrations(1)
    client = kubelet.dial(request.endpoint)
    try:
        ids = [d.ID for d in (await next_update(client.watch())).devices]
        response = await client.allocate([ids[1]], [ids[0], ids[1]])
        first, second = response.container_responses
        assert first.envs["NVIDIA_VISIBLE_DEVICES"] == ids[1]
        assert second.envs["NVIDIA_VISIBLE_DEVICES"] == f"{ids[0]},{ids[1]}"
        assert [c.name for c in second.cdi_devices] == [f"nvidia.com/gpu={ids[0]}", f"nvidia.com/gpu={ids[1]}"]
        paths = [d.container_path for d in first.devices]
        assert "/dev/nvidiactl" in paths and "/dev/nvidia1" in paths
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.allocate([ids[0], "GPU-not-here"])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "GPU-not-here" in err.value.details()
        await client.pre_start(ids)  # PreStartContainer is served even though not required
    finally:
        await client.close()


async def test_index_ids_and_preferred_allocation_follow_nvlink_pairs(brix_process, kubelet, kubelet_dir,
                                                                      mock_config):
    config = mock_config(gpus=4)
    brix_process("dp", *plugin_args(kubelet_dir, config, "--device-id-strategy", "index"),
                 ready_socket=str(kubelet_dir / "brix-gpu.sock"))
    request = await kubelet.wait_registrations(1)
    client = kubelet.dial(request.endpoint)
    try:
        ids = [d.ID for d in (await next_update(client.watch())).devices]
        assert ids == ["0", "1", "2", "3"]
        # 1 and 2 are both free but not NVLinked; 2's NVLink peer is 3.
        assert sorted(await client.preferred(["1", "2", "3"], ["2"], 2)) == ["2", "3"]
        assert sorted(await client.preferred(["0", "1", "2", "3"], [], 2)) == ["0", "1"]
        assert await client.preferred(["0"], [], 2) == []
        response = await client.allocate(["3"])
        assert response.container_responses[0].envs["NVIDIA_VISIBLE_DEVICES"] == "3"
    finally:
        await client.close()
