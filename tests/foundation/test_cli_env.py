"""Environment variables as a pod sees them: scoped per subcommand, and immune to the service-link
variables Kubernetes injects (a Service named `brix` puts BRIX_PORT=tcp://... into every pod)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from brix import cli, procs


def service_links(service: str, ip: str = "10.96.0.10", port: int = 8888) -> dict[str, str]:
    """What the kubelet injects for a Service (enableServiceLinks defaults to true)."""
    prefix = service.upper().replace("-", "_")
    return {
        f"{prefix}_SERVICE_HOST": ip,
        f"{prefix}_SERVICE_PORT": str(port),
        f"{prefix}_SERVICE_PORT_HTTP": str(port),
        f"{prefix}_PORT": f"tcp://{ip}:{port}",
        f"{prefix}_PORT_{port}_TCP": f"tcp://{ip}:{port}",
        f"{prefix}_PORT_{port}_TCP_PROTO": "tcp",
        f"{prefix}_PORT_{port}_TCP_PORT": str(port),
        f"{prefix}_PORT_{port}_TCP_ADDR": ip,
    }


def run_brix(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brix", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_every_flag_of_every_subcommand_has_its_own_variable() -> None:
    parser, _ = cli.build_parser()
    owner: dict[str, str] = {}
    for command, child in cli._subparsers(parser).items():
        for action in child._actions:
            if not action.option_strings or action.dest == "help":
                continue
            name = cli.env_var_for(command, action.dest)
            prefix = "BRIX_" + command.upper().replace("-", "_") + "_"
            assert name.startswith(prefix), f"brix {command} {action.option_strings[0]} reads {name}"
            where = f"brix {command} {action.option_strings[0]}"
            assert name not in owner, f"{name} is read by both {owner[name]} and {where}"
            owner[name] = where
    # the flags that used to collide under a flat BRIX_<FLAG> now have distinct variables
    assert owner["BRIX_ENGINE_MOCK_MODEL"] == "brix engine-mock --model"
    assert owner["BRIX_NVML_MOCK_MODEL"] == "brix nvml-mock --model"
    assert owner["BRIX_GATEWAY_CONFIG"] == "brix gateway --config"
    assert owner["BRIX_NVML_MOCK_CONFIG"] == "brix nvml-mock --config"


def test_help_names_the_scoped_variable() -> None:
    text = " ".join(run_brix("gateway", "--help", env={}).stdout.split())
    assert "[env BRIX_GATEWAY_PORT]" in text
    assert "[env BRIX_PORT]" not in text


def test_variables_of_other_subcommands_and_flat_names_are_not_read(tmp_path: Path) -> None:
    env = {"BRIX_MODEL": "not-a-gpu", "BRIX_ENGINE_MOCK_MODEL": "llama-2-7b", "BRIX_NVML_MOCK_MODEL": "H100",
           "BRIX_NVML_MOCK_GPUS": "2", "BRIX_CONFIG": "/nonexistent.yaml"}
    config = tmp_path / "node.toml"
    result = run_brix("nvml-mock", "init", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    shown = run_brix("nvml-mock", "show", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("H100") == 2 and "A100" not in shown.stdout


def test_a_bad_scoped_value_names_its_variable() -> None:
    result = run_brix("engine-mock", env={"BRIX_ENGINE_MOCK_PORT": "eighty"})
    assert result.returncode == 2
    assert "BRIX_ENGINE_MOCK_PORT='eighty' is invalid for --port" in result.stderr


def test_service_link_variables_do_not_break_a_component(brix_process) -> None:  # type: ignore[no-untyped-def]
    """Services named `brix` and `brix-engine-mock` in the namespace: the engine still starts, on
    the port its flag names; the link that looks like our own variable is ignored with a note."""
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**service_links("brix"), **service_links("brix-engine-mock", "10.96.0.11", 8000),
           "BRIX_ENGINE_MOCK_MODEL": "from-env"}
    assert env["BRIX_PORT"] == "tcp://10.96.0.10:8888"
    proc = brix_process("engine-mock", "engine-mock", "--port", str(port), env=env, ready_url=url + "/health")
    with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
        models = [m["id"] for m in json.load(resp)["data"]]
    assert models == ["from-env"]
    log = proc.log_tail(50)
    assert "ignoring BRIX_ENGINE_MOCK_PORT='tcp://10.96.0.11:8000'" in log
    assert "enableServiceLinks: false" in log


def test_a_service_link_shaped_value_is_only_skipped_for_port_variables() -> None:
    assert cli.is_service_link("BRIX_GATEWAY_PORT", "tcp://10.96.0.10:8888")
    assert cli.is_service_link("BRIX_GATEWAY_PORT", "udp://[fd00::1]:53")
    assert not cli.is_service_link("BRIX_GATEWAY_PORT", "8888")
    assert not cli.is_service_link("BRIX_GATEWAY_REDIS", "tcp://10.0.0.1:6379")
