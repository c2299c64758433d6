"""Run a `brix` subcommand as a pod's container: `python -m brix.node_agent.podexec POD_IP -- ARGS`.

A pod has its own network namespace in a cluster; here every pod shares the host's, but has its
own loopback address (127.0.0.0/8 is all loopback). So that a container binding `0.0.0.0:8000`
(as every manifest does) or `127.0.0.1:8000` behaves as in its own namespace, binds to the
wildcard or 127.0.0.1 are redirected to the pod's IP before the subcommand starts. Outgoing
connections are untouched. This is the node agent's stand-in for a network namespace, not a
change to Brix: the same subcommand runs unchanged on a real node.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

_REDIRECTED = {"", "0.0.0.0", "127.0.0.1", "localhost", "::", "::1"}


def isolate_binds(pod_ip: str) -> None:
    original = socket.socket.bind

    def bind(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) \
                and address[0] in _REDIRECTED:
            if self.family == socket.AF_INET6:
                raise OSError(97, f"pod {pod_ip} has no IPv6 address")  # EAFNOSUPPORT: callers fall back to v4
            address = (pod_ip, *address[1:])
        original(self, address)

    socket.socket.bind = bind  # type: ignore[method-assign, assignment]  # the stand-in for a network namespace


def die_with_parent() -> None:
    """The node agent is this pod's container runtime too: if it dies (even by SIGKILL), stop, so no
    pod process outlives the cluster (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the agent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m brix.node_agent.podexec POD_IP -- BRIX_ARGS...", file=sys.stderr)
        return 2
    die_with_parent()
    isolate_binds(argv[0])
    from brix.cli import main as brix_main

    return brix_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
