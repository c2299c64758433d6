"""`brix node-agent`: the kubelet of simulated GPU nodes (flags only; the work is in agent.py)."""

from __future__ import annotations

import argparse

from brix.commands import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True,
                        help="credentials of the agent (the local control plane writes node-agent.kubeconfig)")
    parser.add_argument("--nodes", type=int, default=2, help="number of nodes this agent plays")
    parser.add_argument("--name-prefix", default="gpu-node-", help="node names: <prefix><index>")
    parser.add_argument("--first-index", type=int, default=0, help="index of the first node")
    parser.add_argument("--gpus-per-node", type=int, default=4,
                        help="GPUs of each node when no device plugin serves it (static devices)")
    parser.add_argument("--gpu-types", default="A100,H100",
                        help="comma-separated GPU types, alternated across nodes (GFD labels follow)")
    parser.add_argument("--nodes-root", default=".brix/nodes",
                        help="node N's filesystem is <dir>/<node>/: hostPath volumes are folders there")
    parser.add_argument("--device-plugins", action="store_true",
                        help="serve the kubelet Registration socket in <nodes-root>/<node>/var/lib/kubelet/"
                             "device-plugins/ and take each node's GPUs from the device plugin that registers"
                             " there; without it, each node has --gpus-per-node static GPUs")
    parser.add_argument("--workdir", default=".brix/node-agent", help="pod folders: logs, tokens, volumes")
    parser.add_argument("--pod-cidr", default="127.1.0.0/16", help="loopback range pod IPs come from")
    parser.add_argument("--renew-interval", type=float, default=10.0, help="seconds between node Lease renewals")
    parser.add_argument("--no-processes", action="store_true",
                        help="mark containers running without starting processes (scheduling benchmarks)")
    parser.add_argument("--no-pods", action="store_true",
                        help="nodes and Leases only: leave pods bound to the nodes alone (no status, nothing"
                             " runs), as kube-scheduler's scheduler_perf does with nodes that have no kubelet")
    parser.add_argument("--ready-delay", default="", metavar="LOW:HIGH",
                        help="containers without a process turn Ready after a delay drawn uniformly from LOW-HIGH"
                             " seconds (the k-th pod gets the k-th draw of --ready-seed): slow-starting engines"
                             " for benchmarks; empty = Ready at once")
    parser.add_argument("--ready-seed", type=int, default=0, help="seed of the --ready-delay draws")
    parser.add_argument("--health-port", type=int, default=0,
                        help="serve /healthz and /readyz (ready once nodes are registered and pods listed)"
                             " on 127.0.0.1:<port>; 0 = off")
    parser.add_argument("--log-format", choices=("kv", "json"), default="kv", help="log line format")


def _run(args: argparse.Namespace) -> int:
    from brix.node_agent import main

    return main.run(args)


COMMANDS = [
    Command("node-agent", "play the kubelet for simulated GPU nodes of a (local) Kubernetes control plane",
            _add_arguments, _run,
            description="Registers Nodes and renews their Leases, serves device plugins' Registration, "
                        "and runs pods whose container is a `brix` subcommand as local processes on "
                        "their own 127.x pod IP."),
]
