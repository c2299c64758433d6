"""`brix nvml-mock init|show|inject`: typed settings and what each action does."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from brix.commands import UsageError
from nvml_mock import builders, faults
from nvml_mock.config import load_config
from nvml_mock.live import update_config
from nvml_mock.model import ConfigError
from nvml_mock.show import render


@dataclass(frozen=True)
class InitSettings:
    config: Path
    gpus: int = 8
    model: str = "A100"
    nvlink: str | None = None
    node: str = "mock-node"
    npus: int = 0
    force: bool = False


@dataclass(frozen=True)
class InjectSettings:
    """One atomic change to the config file: GPU faults (gpu set) or Ascend faults (npu set)."""

    config: Path
    gpu: int | None = None
    xid: int | None = None
    dram_ue: int | None = None
    remapping_pending: bool = False
    link_width: int | None = None
    heal: bool = False
    npu: int | None = None
    npu_device: int = 0
    fault_code: int | None = None


def run_init(settings: InitSettings) -> str:
    if settings.config.exists() and not settings.force:
        raise UsageError(f"{settings.config} already exists; pass --force to overwrite it, or choose another --config")
    if not settings.config.parent.is_dir():
        raise UsageError(f"directory {settings.config.parent} does not exist; create it first")
    try:
        raw = builders.node_config(gpus=settings.gpus, model=settings.model, nvlink=settings.nvlink,
                                   node_name=settings.node, npus=settings.npus)
        config = builders.write_config(settings.config, raw)
    except (ValueError, ConfigError) as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(_write_hint(settings.config, exc)) from exc
    return f"wrote {settings.config}: {len(config.gpus)} x {settings.model} on node {config.node_name}" + (
        f", {settings.npus} Ascend card(s)" if settings.npus else "")


def run_show(config_path: Path) -> str:
    try:
        return render(load_config(config_path))
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def run_inject(settings: InjectSettings, now: float | None = None) -> str:
    gpu_actions = [settings.xid is not None, settings.dram_ue is not None, settings.remapping_pending,
                   settings.link_width is not None]
    if settings.gpu is None and settings.npu is None:
        raise UsageError("say which device to change: --gpu N (NVML card) or --npu N (Ascend card)")
    if settings.gpu is not None and settings.npu is not None:
        raise UsageError("--gpu and --npu cannot be combined; run inject once per device")
    if settings.gpu is not None:
        if settings.fault_code is not None:
            raise UsageError("--fault-code is for Ascend devices; use it with --npu N")
        if settings.heal == any(gpu_actions):
            raise UsageError("give --heal alone, or at least one of --xid, --dram-ue, --remapping-pending, "
                             "--link-width")
    elif settings.heal == (settings.fault_code is not None) or any(gpu_actions):
        raise UsageError("with --npu give exactly one of --fault-code CODE or --heal")
    stamp = time.time() if now is None else now

    def change(raw: dict) -> list[str]:
        done: list[str] = []
        if settings.npu is not None:
            card, dev = settings.npu, settings.npu_device
            if settings.heal:
                faults.heal_npu(raw, card, dev)
                return [f"npu {card}.{dev}: healed (no fault codes)"]
            assert settings.fault_code is not None
            codes = faults.inject_npu_fault(raw, card, dev, settings.fault_code)
            return [f"npu {card}.{dev}: fault codes now " + " ".join(f"0x{c:08X}" for c in codes)]
        gpu = settings.gpu
        assert gpu is not None
        if settings.heal:
            removed = faults.heal_gpu(raw, gpu)
            return [f"gpu {gpu}: healed ({removed} pending XID event(s) cleared)"]
        if settings.dram_ue is not None:
            done.append(f"gpu {gpu}: dram_ue now {faults.add_dram_ue(raw, gpu, settings.dram_ue)}")
        if settings.remapping_pending:
            faults.set_remapping_pending(raw, gpu)
            done.append(f"gpu {gpu}: remapping_pending = true")
        if settings.link_width is not None:
            faults.set_link_width(raw, gpu, settings.link_width)
            done.append(f"gpu {gpu}: link_width_current = {settings.link_width}")
        if settings.xid is not None:
            seq = faults.inject_xid(raw, gpu, settings.xid, stamp)
            done.append(f"gpu {gpu}: XID {settings.xid} queued as event #{seq}")
        return done

    try:
        done, _ = update_config(settings.config, change)
    except OSError as exc:
        raise UsageError(_write_hint(settings.config, exc)) from exc
    except ValueError as exc:
        raise UsageError(f"{settings.config}: {exc}") from exc
    except ConfigError as exc:
        raise UsageError(f"{exc} (the file was not changed)") from exc
    return "\n".join(done)


def _write_hint(path: Path, exc: OSError) -> str:
    return (f"cannot write {path} or {path.name}.lock beside it ({exc.strerror or exc}); the directory must be "
            "writable — a Kubernetes ConfigMap volume is not: copy the file to an emptyDir first")
