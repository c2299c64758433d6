"""`brix nvml-mock init|show|inject` as a user runs them (exit codes, messages, file effects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from brix.cli import main
from nvml_mock.config import load_config


def _brix(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["nvml-mock", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_then_show_lists_every_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.toml"
    code, out, _ = _brix(capsys, "init", "--config", str(path), "--gpus", "8", "--model", "H100",
                         "--nvlink", "pairs", "--node", "gpu-node-1")
    assert code == 0 and "8 x H100" in out
    config = load_config(path)
    code, out, _ = _brix(capsys, "show", "--config", str(path))
    assert code == 0
    lines = out.splitlines()
    assert "IDX" in lines[1] and "UUID" in lines[1] and "FAULTS" in lines[1]
    assert len([line for line in lines if "NVIDIA H100 80GB HBM3" in line]) == 8
    for card in config.gpus:
        assert card.uuid in out and card.pci_bus_id in out
    assert "healthy" in lines[2]


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.toml"
    assert _brix(capsys, "init", "--config", str(path))[0] == 0
    code, _, err = _brix(capsys, "init", "--config", str(path), "--gpus", "2")
    assert code == 2 and "--force" in err
    assert _brix(capsys, "init", "--config", str(path), "--gpus", "2", "--force")[0] == 0
    assert len(load_config(path).gpus) == 2


def test_inject_faults_show_up_in_show_and_heal_clears_them(write_node: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = write_node(gpus=4)
    assert _brix(capsys, "inject", "--config", str(path), "--gpu", "1", "--dram-ue", "2", "--xid", "79")[0] == 0
    assert _brix(capsys, "inject", "--config", str(path), "--gpu", "2", "--remapping-pending")[0] == 0
    assert _brix(capsys, "inject", "--config", str(path), "--gpu", "3", "--link-width", "8")[0] == 0
    _, out, _ = _brix(capsys, "show", "--config", str(path))
    rows = out.splitlines()[2:6]
    assert rows[0].endswith("healthy")
    assert "dram_ue=2" in rows[1] and "xid79#1" in rows[1]
    assert "remapping_pending" in rows[2]
    assert "link_width=8/16" in rows[3] and "x8/x16" in rows[3]
    for gpu in ("1", "2", "3"):
        code, out, _ = _brix(capsys, "inject", "--config", str(path), "--gpu", gpu, "--heal")
        assert code == 0 and "healed" in out
    config = load_config(path)
    assert all(card.faults() == [] for card in config.gpus) and config.xid_events == ()


@pytest.mark.parametrize(("args", "message"), [
    (["inject", "--gpu", "9", "--xid", "79"], "GPU 9 does not exist"),
    (["inject", "--gpu", "0"], "give --heal alone, or at least one of"),
    (["inject", "--gpu", "0", "--heal", "--xid", "79"], "give --heal alone"),
    (["inject", "--xid", "79"], "--gpu N"),
    (["inject", "--gpu", "0", "--link-width", "32"], "link_width_max=16 (the file was not changed)"),
    (["inject", "--npu", "0", "--fault-code", "zz"], "write it like 0x80E01801"),
    (["inject", "--npu", "5", "--fault-code", "0x1"], "NPU card 5 device 0 does not exist"),
])
def test_bad_inject_exits_2_with_how_to_fix(write_node: Any, capsys: pytest.CaptureFixture[str],
                                            args: list[str], message: str) -> None:
    path, _ = write_node(gpus=2, npus=1)
    before = path.read_text()
    code, _, err = _brix(capsys, *args, "--config", str(path))
    assert code == 2
    assert message in err
    assert path.read_text() == before


def test_missing_or_broken_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _brix(capsys, "show", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "brix nvml-mock init" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[gpus-0]\ndram_ue = \"x\"\n")
    code, _, err = _brix(capsys, "show", "--config", str(bad))
    assert code == 2 and f"{bad}: gpus-0.dram_ue: expected an integer" in err
    code, _, err = _brix(capsys, "show")
    assert code == 2 and "--config FILE is required" in err


def test_unwritable_config_is_a_clear_error(write_node: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = write_node(gpus=1)
    (path.parent / (path.name + ".lock")).mkdir()  # the lock file cannot be created (works as root too)
    code, _, err = _brix(capsys, "inject", "--config", str(path), "--gpu", "0", "--xid", "79")
    assert code == 2 and "must be writable" in err and str(path) in err
