"""`--backend ascend` with the DCMI mock: Ascend910-N ids, fault-code health, ASCEND_VISIBLE_DEVICES."""

from __future__ import annotations

from tests.deviceplugin.conftest import inject, plugin_args
from tests.deviceplugin.kubelet import health_of, next_update, wait_health


async def test_ascend_devices_health_and_allocate(brix_process, kubelet, kubelet_dir, mock_config):
    config = mock_config(gpus=0, nvlink="none", npus=4, npu_faults={(3, 0): [0x80E01801]})
    brix_process("dp", *plugin_args(kubelet_dir, config, "--backend", "ascend", "--pass-device-specs"),
                 ready_socket=str(kubelet_dir / "brix-ascend910.sock"))
    request = await kubelet.wait_registrations(1)
    assert request.resource_name == "huawei.com/Ascend910"
    client = kubelet.dial(request.endpoint)
    try:
        watch = client.watch()
        first = await next_update(watch)
        assert health_of(first) == {"Ascend910-0": "Healthy", "Ascend910-1": "Healthy", "Ascend910-2": "Healthy",
                                    "Ascend910-3": "Unhealthy"}
        response = await client.allocate(["Ascend910-1", "Ascend910-2"])
        container = response.container_responses[0]
        assert container.envs["ASCEND_VISIBLE_DEVICES"] == "1,2"
        assert "NVIDIA_VISIBLE_DEVICES" not in container.envs
        assert {"/dev/davinci1", "/dev/davinci2", "/dev/davinci_manager"} <= {d.container_path for d in container.devices}
        inject(config, "--npu", "0", "--fault-code", "0x80E01801")
        await wait_health(watch, "Ascend910-0", "Unhealthy", timeout=5)
        inject(config, "--npu", "0", "--heal")
        await wait_health(watch, "Ascend910-0", "Healthy", timeout=10)
    finally:
        await client.close()
