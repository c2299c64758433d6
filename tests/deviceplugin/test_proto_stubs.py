"""The committed stubs are what hack/gen_proto.py makes from api.proto, and they carry the spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deviceplugin.api import api_pb2

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_the_proto(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "hack" / "gen_proto.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("api_pb2.py", "api_pb2_grpc.py"):
        fresh = (tmp_path / name).read_text()
        committed = (ROOT / "deviceplugin" / "api" / name).read_text()
        assert fresh == committed, f"deviceplugin/api/{name} is stale: run `make proto` and commit the result"


def test_wire_names_and_field_numbers_follow_the_v1beta1_spec():
    file = api_pb2.DESCRIPTOR
    assert file.package == "v1beta1"
    assert set(file.services_by_name) == {"Registration", "DevicePlugin"}
    assert [m.name for m in file.services_by_name["DevicePlugin"].methods] == [
        "GetDevicePluginOptions", "ListAndWatch", "GetPreferredAllocation", "Allocate", "PreStartContainer"]

    def fields(message: str) -> dict[str, int]:
        return {f.name: f.number for f in file.message_types_by_name[message].fields}

    assert fields("RegisterRequest") == {"version": 1, "endpoint": 2, "resource_name": 3, "options": 4}
    assert fields("DevicePluginOptions") == {"pre_start_required": 1, "get_preferred_allocation_available": 2}
    assert fields("Device") == {"ID": 1, "health": 2, "topology": 3}
    assert fields("NUMANode") == {"ID": 1}
    assert fields("ContainerPreferredAllocationRequest") == {
        "available_deviceIDs": 1, "must_include_deviceIDs": 2, "allocation_size": 3}
    assert fields("ContainerPreferredAllocationResponse") == {"deviceIDs": 1}
    assert fields("ContainerAllocateRequest") == {"devices_ids": 1}
    assert fields("PreStartContainerRequest") == {"devices_ids": 1}
    assert fields("ContainerAllocateResponse") == {"envs": 1, "mounts": 2, "devices": 3, "annotations": 4,
                                                   "cdi_devices": 5}
    assert fields("Mount") == {"container_path": 1, "host_path": 2, "read_only": 3}
    assert fields("DeviceSpec") == {"container_path": 1, "host_path": 2, "permissions": 3}
    assert fields("CDIDevice") == {"name": 1}
