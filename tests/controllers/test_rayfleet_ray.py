"""The head settings the fleet controllers generate are ones Ray accepts: a fleet in the emulator, the
operator creates its RayCluster, and its head's rayStartParams become `ray start --head` exactly as
KubeRay builds the command (controllers/rayfleet/raycluster.py `ray_start_argv`); that Ray head runs
on 127.0.0.1 and a driver runs a task on it.

Only what must be local here is overridden: the node's address and the ports (a free GCS port
outside Ray's worker range 10002-19999, and free ones for the metrics, client and agent servers,
which on a pod have the pod to themselves), the dashboard bound to 127.0.0.1 instead of the pod-wide
0.0.0.0 (and not started: the `ray` extra has no dashboard dependencies), a short temp dir (Ray's
unix sockets must fit in 107 bytes). Needs `pip install 'brix[ray]'` (the test extra has it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kubernetes.client
import pytest

from brix import procs
from controllers.rayfleet.raycluster import HEAD_DEFAULTS, ray_start_argv
from tests.controllers.conftest import eventually, operator_settings, running_operator
from tests.controllers.fake_kuberay import FakeKubeRay
from tests.controllers.fleets import FleetReader, fleet_body
from tests.k8s_api import K8sApi

pytestmark = pytest.mark.slow
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
WORKER_PORTS = range(10002, 20000)


def ray_cli() -> Path:
    """The `ray` command of this venv; skips (fails in CI) when the ray extra is not installed."""
    found = Path(sys.executable).parent / "ray"
    try:
        import ray  # noqa: F401
    except ImportError:
        found = Path("/nonexistent")
    if not found.exists():
        if os.environ.get("CI"):
            pytest.fail("ray is missing: `make test` installs it (the `ray` extra is in the test extra)")
        pytest.skip("ray is not installed; pip install 'brix[ray]' to run this test")
    return found


def free_port_outside_worker_range() -> int:
    while True:
        port = procs.free_port()
        if port not in WORKER_PORTS:
            return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the Ray head never listened on {port}:\n{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """The head was started in its own session: end that process group (ray start and what it
    started), gently first."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue


async def test_the_generated_head_settings_start_a_real_ray_head(k8s_api: K8sApi, tmp_path: Path) -> None:
    ray = ray_cli()
    fleets = FleetReader(k8s_api.api_client, "default")
    body = fleet_body(replicas=1)
    body["spec"]["template"]["spec"]["headGroupSpec"]["rayStartParams"] = {"num-cpus": "1"}
    with FakeKubeRay(kubernetes.client.ApiClient(k8s_api.configuration), "default", delay=0.1):
        async with running_operator(k8s_api, operator_settings()):
            fleets.create(body)
            clusters = await eventually(fleets.clusters, "the RayCluster", 20)
    params = dict(clusters[0]["spec"]["headGroupSpec"]["rayStartParams"])
    assert HEAD_DEFAULTS.items() <= params.items() and params["num-cpus"] == "1"

    gcs = free_port_outside_worker_range()
    temp = Path(tempfile.mkdtemp(prefix="brix-ray-", dir="/tmp"))
    local = {"node-ip-address": "127.0.0.1", "port": str(gcs), "dashboard-host": "127.0.0.1",
             "include-dashboard": "false", "metrics-export-port": str(free_port_outside_worker_range()),
             "ray-client-server-port": str(free_port_outside_worker_range()),
             "dashboard-agent-listen-port": str(free_port_outside_worker_range()),
             "temp-dir": str(temp), "disable-usage-stats": "true"}
    argv = ray_start_argv({**params, **local}, head=True)
    assert argv[:3] == ["ray", "start", "--head"] and "--block" in argv and "--num-cpus=1" in argv
    env = {**os.environ, **RAY_ENV}
    log = tmp_path / "ray-head.log"
    with log.open("wb") as out:
        head = subprocess.Popen([str(ray), *argv[1:]], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        wait_for_port(gcs, head, log)
        driver = ("import ray\n"
                  f"ray.init(address='127.0.0.1:{gcs}', log_to_driver=False)\n"
                  "@ray.remote\n"
                  "def double(x):\n"
                  "    return 2 * x\n"
                  "print('RESULT', ray.get([double.remote(i) for i in range(4)]))\n"
                  "ray.shutdown()\n")
        done = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=180)
        assert "RESULT [0, 2, 4, 6]" in done.stdout, f"{done.stdout}\n{done.stderr[-3000:]}\n{log.read_text()[-2000:]}"
    finally:
        stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)
