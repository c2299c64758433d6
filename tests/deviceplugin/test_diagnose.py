"""`brix diagnose`: AIBrix-shaped JSON keyed by GPU UUID, exit 0 / 1 / 2."""

from __future__ import annotations

import json

from tests.deviceplugin.conftest import brix_run, inject

CHECKS = {"gpu_driver_status", "gpu_link_status", "gpu_vram_unrecoverable_errors", "gpu_vram_recoverable_errors",
          "gpu_row_remapping", "gpu_xid_events"}


def _diagnose(*args: str) -> tuple[int, dict]:
    result = brix_run("diagnose", *args)
    return result.returncode, json.loads(result.stdout)


def test_healthy_node_exits_0_with_every_check_per_uuid(mock_config):
    config = mock_config(gpus=2)
    code, report = _diagnose("--mock-config", str(config), "--expect-count", "2")
    assert code == 0
    uuids = [k for k in report if k != "OVERALL"]
    assert len(uuids) == 2 and all(u.startswith("GPU-") for u in uuids)
    for uuid in uuids:
        assert set(report[uuid]) == CHECKS
        for name, result in report[uuid].items():
            assert result["Name"] == name and result["IsHealthy"] is True and result["Message"]
    assert report["OVERALL"]["gpu_card_count"]["IsHealthy"] is True


def test_faults_and_wrong_count_exit_1_and_name_the_failing_check(mock_config):
    config = mock_config(gpus=3)
    inject(config, "--gpu", "0", "--link-width", "4")
    inject(config, "--gpu", "1", "--remapping-pending")
    inject(config, "--gpu", "2", "--xid", "79")
    inject(config, "--gpu", "2", "--dram-ue", "1")
    code, report = _diagnose("--mock-config", str(config), "--expect-count", "4")
    assert code == 1
    uuids = [k for k in report if k != "OVERALL"]
    unhealthy = {u: sorted(n for n, r in report[u].items() if not r["IsHealthy"]) for u in uuids}
    assert unhealthy[uuids[0]] == ["gpu_link_status"]
    assert unhealthy[uuids[1]] == ["gpu_row_remapping"]
    assert unhealthy[uuids[2]] == ["gpu_vram_unrecoverable_errors", "gpu_xid_events"]
    assert "79" in report[uuids[2]]["gpu_xid_events"]["Message"]
    assert report["OVERALL"]["gpu_card_count"] == {
        "Name": "gpu_card_count", "IsHealthy": False, "Message": "3 GPU(s) found, 4 expected"}


def test_ignored_xid_is_reported_but_healthy(mock_config):
    config = mock_config(gpus=1)
    inject(config, "--gpu", "0", "--xid", "13")
    code, report = _diagnose("--mock-config", str(config))
    assert code == 0
    uuid = next(k for k in report if k != "OVERALL")
    assert "ignored: 13" in report[uuid]["gpu_xid_events"]["Message"]


def test_cannot_run_exits_2(mock_config):
    config = mock_config("[gpus]\ncard_count = 1\nnvml_init_error = 9\n", name="noinit.toml")
    code, report = _diagnose("--mock-config", str(config))
    assert code == 2
    assert report["OVERALL"]["gpu_driver_status"]["IsHealthy"] is False
    bad = mock_config("[gpus]\ncard_count = 'x'\n", name="bad.toml")
    code, report = _diagnose("--mock-config", str(bad))
    assert code == 2 and "card_count" in report["OVERALL"]["gpu_driver_status"]["Message"]
