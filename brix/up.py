"""`brix up`: the local mock-GPU cluster, every Brix component on loopback.

The plan (which process listens where) is a pure function of the settings; `run` starts the
processes in dependency order, waits for each to be ready, prints where everything is, sends
demo traffic through the real protocols, and stops everything by PID on exit.
"""

from __future__ import annotations

import signal
import sys
import time

from brix import procs
from brix.up_plan import UpSettings, make_plan, say


def run(settings: UpSettings) -> int:
    if not settings.standalone:
        from brix.kube import binaries

        try:
            binaries.find()
        except binaries.MissingBinaries as exc:
            say(f"falling back to --standalone: {exc}")
        else:
            return run_kube(settings)
    return run_standalone(settings)


def run_kube(settings: UpSettings) -> int:
    from brix import up_kube

    settings.workdir.mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return up_kube.run(settings)
    except KeyboardInterrupt:
        return 0
    except (procs.ProcessFailed, TimeoutError, RuntimeError) as exc:
        print(f"[brix up] error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        say("stopped")


def run_standalone(settings: UpSettings) -> int:
    from brix import up_components, up_demo

    plan = make_plan(settings)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    cluster = up_components.Cluster(plan)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the cluster the same way Ctrl-C does

    signal.signal(signal.SIGTERM, on_signal)
    say(f"workdir {settings.workdir} (configs, sockets, logs in {plan.logs})")
    try:
        up_components.start_all(cluster, settings)
        up_components.print_endpoints(plan)
        if settings.demo:
            up_demo.run(cluster, settings)
        if settings.duration > 0:
            say(f"running for {settings.duration:g}s more")
            deadline = time.monotonic() + settings.duration
        else:
            say("running; press Ctrl-C to stop")
            deadline = float("inf")
        while time.monotonic() < deadline:
            cluster.check_alive()
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return 0
    except KeyboardInterrupt:
        return 0
    except procs.ProcessFailed as exc:
        print(f"[brix up] error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        say("stopping every process by PID")
        cluster.stop()
        say("stopped")
