"""NVIDIA k8s-device-plugin's flag names work with the same meaning, so its DaemonSet arguments
can be kept when Brix's plugin is swapped in."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brix import cli
from brix.commands import UsageError
from deviceplugin.cli import build_settings


def parse(*argv: str):  # type: ignore[no-untyped-def]
    parser, _ = cli.build_parser()
    return parser.parse_args(["device-plugin", *argv])


def test_nvidia_config_file_fills_the_flags_left_at_their_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("""version: v1
flags:
  migStrategy: none
  failOnInitError: false
  nvidiaDriverRoot: /run/nvidia/driver
  plugin:
    passDeviceSpecs: true
    deviceListStrategy: [envvar, volume-mounts]
    deviceIDStrategy: index
""")
    args = parse("--config-file", str(config), "--kubelet-dir", str(tmp_path))
    settings = build_settings(args)
    assert settings.device_id_strategy == "index"
    assert settings.allocate.device_list_strategies == ("envvar", "volume-mounts")
    assert settings.allocate.pass_device_specs is True
    assert settings.allocate.dev_root == "/run/nvidia/driver/dev"
    assert args.fail_on_init_error is False
    # a flag given on the command line (other than its default) wins over the file
    args = parse("--config-file", str(config), "--kubelet-dir", str(tmp_path), "--device-list-strategy",
                 "cdi-annotations", "--dev-root", "/host/dev")
    settings = build_settings(args)
    assert settings.allocate.device_list_strategies == ("cdi-annotations",)
    assert settings.allocate.dev_root == "/host/dev"
    assert parse("--pass-device-specs=false").pass_device_specs is False
    assert parse("--pass-device-specs").pass_device_specs is True


@pytest.mark.parametrize(("text", "message"), [
    ("flags: {}\n", "expected NVIDIA's config format with 'version: v1'"),
    ("version: v1\nflags: {failOnInitError: maybe}\n", "flags.failOnInitError must be true or false"),
    ("version: v1\nflags: {migStrategy: mixed}\n", "MIG devices are not supported yet"),
    ("version: v1\nflags: {plugin: {deviceIDStrategy: serial}}\n", "use uuid or index"),
])
def test_a_bad_config_file_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(UsageError, match=message):
        build_settings(parse("--config-file", str(config), "--kubelet-dir", str(tmp_path)))


def test_fail_on_init_error_false_waits_instead_of_exiting(tmp_path: Path) -> None:
    # this machine has no NVIDIA driver: NVML cannot initialise
    argv = [sys.executable, "-m", "brix", "device-plugin", "--kubelet-dir", str(tmp_path), "--metrics-port", "0",
            "--nvidia-driver-root", str(tmp_path)]
    failed = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert f"--nvidia-driver-root {tmp_path}: no libnvidia-ml.so.1" in failed.stderr
    proc = subprocess.Popen([*argv, "--fail-on-init-error=false"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "waiting without serving" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, "the plugin exited instead of waiting"
            line = proc.stderr.readline()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
