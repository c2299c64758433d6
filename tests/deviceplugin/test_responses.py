"""Allocate: validation names bad ids; each response feature comes from its own builder (pure)."""

from __future__ import annotations

import pytest

from deviceplugin.devices import Device, DeviceSet, InvalidRequest, validate_request
from deviceplugin.responses import AllocateOptions, build

DEVICES = DeviceSet.of([Device(id=f"GPU-{i}", index=i, minor=i + 10) for i in range(3)]).with_health(
    "GPU-2", False, "critical XID 79")


@pytest.mark.parametrize(("ids", "needle"), [
    (["GPU-0", "GPU-9"], "unknown device id(s) GPU-9"),
    (["GPU-2"], "unhealthy device id(s) GPU-2 for nvidia.com/gpu (GPU-2: critical XID 79)"),
    (["GPU-0", "GPU-0"], "repeated"),
    ([], "empty device list"),
])
def test_validation_errors_name_the_offending_ids(ids, needle):
    with pytest.raises(InvalidRequest) as err:
        validate_request(DEVICES, ids, "nvidia.com/gpu")
    assert needle in str(err.value)


def test_envvar_and_device_specs_use_minor_numbers():
    resp = build(DEVICES.subset(["GPU-1", "GPU-0"]), AllocateOptions(pass_device_specs=True, dev_root="/host/dev"))
    assert resp.envs == {"NVIDIA_VISIBLE_DEVICES": "GPU-1,GPU-0"}
    specs = {d.container_path: d.host_path for d in resp.devices}
    assert specs["/dev/nvidia11"] == "/host/dev/nvidia11" and specs["/dev/nvidia10"] == "/host/dev/nvidia10"
    assert "/dev/nvidiactl" in specs and all(d.permissions == "rw" for d in resp.devices)


def test_volume_mounts_and_cdi_strategies():
    opts = AllocateOptions(device_list_strategies=("volume-mounts", "cdi-annotations", "cdi-cri"),
                           cdi_kind="example.com/gpu")
    resp = build(DEVICES.subset(["GPU-0", "GPU-1"]), opts)
    assert resp.envs["NVIDIA_VISIBLE_DEVICES"] == "/var/run/nvidia-container-devices"
    assert [(m.container_path, m.host_path) for m in resp.mounts] == [
        ("/var/run/nvidia-container-devices/GPU-0", "/dev/null"), ("/var/run/nvidia-container-devices/GPU-1", "/dev/null")]
    assert resp.annotations == {"cdi.k8s.io/brix-device-plugin": "example.com/gpu=GPU-0,example.com/gpu=GPU-1"}
    assert resp.cdi_devices == ["example.com/gpu=GPU-0", "example.com/gpu=GPU-1"]
    assert resp.devices == []  # device specs only when asked for


def test_ascend_gets_ascend_visible_devices_and_davinci_nodes():
    npus = DeviceSet.of([Device(id=f"Ascend910-{i}", index=i, minor=i) for i in range(4)])
    resp = build(npus.subset(["Ascend910-3", "Ascend910-1"]), AllocateOptions(backend="ascend", pass_device_specs=True))
    assert resp.envs == {"ASCEND_VISIBLE_DEVICES": "3,1"}
    assert {"/dev/davinci3", "/dev/davinci1", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"} == {
        d.container_path for d in resp.devices}


def test_device_set_rejects_duplicate_ids():
    with pytest.raises(ValueError, match="duplicate device id 'a'"):
        DeviceSet.of([Device(id="a", index=0), Device(id="a", index=1)])
