"""`brix up`: the local mock-GPU cluster on loopback (flags only; the work is in brix.up)."""

from __future__ import annotations

import argparse

from brix.commands import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default=".brix/up", help="folder for generated configs, sockets and logs")
    parser.add_argument("--base-port", type=int, default=18000, help="first loopback TCP port to use")
    parser.add_argument("--nodes", type=int, default=2, help="number of simulated GPU nodes")
    parser.add_argument("--gpus-per-node", type=int, default=4, help="simulated GPUs per node")
    parser.add_argument("--engines", type=int, default=3, help="engine-mock replicas behind the gateway")
    parser.add_argument("--model", default="llama-2-7b", help="model name the engines serve")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="seconds to keep running after the demo; 0 keeps running until Ctrl-C")
    parser.add_argument("--no-demo", action="store_true", help="start the cluster but send no demo traffic")
    parser.add_argument("--standalone", action="store_true",
                        help="run without Kubernetes: mock kubelets and every component as plain processes"
                             " (what `brix up` falls back to, saying why, when the control plane is not built)")


def _run(args: argparse.Namespace) -> int:
    from brix import up
    from brix.up_plan import UpSettings

    return up.run(UpSettings.from_args(args))


COMMANDS = [
    Command("up", "run the local mock-GPU cluster: every Brix component on loopback, with demo traffic",
            _add_arguments, _run),
]
