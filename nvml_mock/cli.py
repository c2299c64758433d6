"""`brix nvml-mock`: write, show and change the mock GPU/NPU config (flags only)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from brix.commands import Command, UsageError

ACTIONS = ("init", "show", "inject")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS,
                        help="init: write a starter config; show: print the cards; inject: add or heal faults")
    parser.add_argument("--config", default=None, help="the mock config TOML file (required)")
    init = parser.add_argument_group("init")
    init.add_argument("--gpus", type=int, default=8, help="number of GPU cards")
    init.add_argument("--model", default="A100",
                      help="GPU model: A100, A100-SXM4-40GB, H100, H200, L40S, A10, T4, V100-SXM2-32GB")
    init.add_argument("--nvlink", choices=("all", "pairs", "none"), default=None,
                      help="NVLink layout; unset: all for NVLink models, none for PCIe ones")
    init.add_argument("--node", default=socket.gethostname(), help="node name (in a pod set BRIX_NVML_MOCK_NODE from spec.nodeName); stable GPU uuids derive from it")
    init.add_argument("--npus", type=int, default=0, help="number of Ascend cards to add")
    init.add_argument("--force", action="store_true", help="overwrite an existing config")
    inject = parser.add_argument_group("inject (GPU)")
    inject.add_argument("--gpu", type=int, default=None, help="index of the GPU card to change")
    inject.add_argument("--xid", type=int, default=None, help="deliver this XID (e.g. 79) as a new event")
    inject.add_argument("--dram-ue", type=int, default=None, help="add K uncorrectable DRAM ECC errors")
    inject.add_argument("--remapping-pending", action="store_true", help="mark a row remapping as pending")
    inject.add_argument("--link-width", type=int, default=None, help="set the current PCIe link width")
    inject.add_argument("--heal", action="store_true",
                        help="clear every fault of the card (--gpu) or NPU (--npu); see nvml_mock/README.md")
    npu = parser.add_argument_group("inject (Ascend)")
    npu.add_argument("--npu", type=int, default=None, help="Ascend card id to change")
    npu.add_argument("--npu-device", type=int, default=0, help="device (chip) id within the Ascend card")
    npu.add_argument("--fault-code", default=None, help="add this DCMI fault code, e.g. 0x80E01801")


def _run(args: argparse.Namespace) -> int:
    from nvml_mock import tool

    if not args.config:
        raise UsageError("--config FILE is required (or set BRIX_NVML_MOCK_CONFIG)")
    config = Path(args.config)
    if args.action == "init":
        print(tool.run_init(tool.InitSettings(config=config, gpus=args.gpus, model=args.model, nvlink=args.nvlink,
                                              node=args.node, npus=args.npus, force=args.force)))
        return 0
    if not config.is_file():
        raise UsageError(f"{config} does not exist; create it with `brix nvml-mock init --config {config}`")
    if args.action == "show":
        print(tool.run_show(config), end="")
        return 0
    fault_code = None
    if args.fault_code is not None:
        try:
            fault_code = int(args.fault_code, 0)
        except ValueError:
            raise UsageError(f"--fault-code {args.fault_code!r} is not a number; write it like 0x80E01801") from None
    print(tool.run_inject(tool.InjectSettings(
        config=config, gpu=args.gpu, xid=args.xid, dram_ue=args.dram_ue, remapping_pending=args.remapping_pending,
        link_width=args.link_width, heal=args.heal, npu=args.npu, npu_device=args.npu_device,
        fault_code=fault_code)))
    return 0


COMMANDS: list[Command] = [
    Command(
        name="nvml-mock",
        help="write, show and inject faults into the NVML/Ascend mock config",
        add_arguments=_add_arguments,
        run=_run,
        description=(
            "Manage the TOML file that nvml_mock serves as NVML (pynvml API) and Ascend DCMI.\n"
            "  brix nvml-mock init   --config node.toml --gpus 8 --model A100 [--nvlink all|pairs|none]\n"
            "  brix nvml-mock show   --config node.toml\n"
            "  brix nvml-mock inject --config node.toml --gpu 3 --xid 79   (or --dram-ue K, --remapping-pending,\n"
            "                        --link-width W, --heal; Ascend: --npu 0 --fault-code 0x80E01801 | --heal)\n"
            "A running device plugin sees each change within ~50 ms: the file is replaced atomically and the\n"
            "mock re-reads it when it changes."
        ),
    )
]
