"""`brix device-plugin` and `brix diagnose` (flags only; heavy imports happen inside run)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags

if TYPE_CHECKING:
    import logging

    from deviceplugin.settings import PluginSettings

DEFAULT_RESOURCES = {"nvml": "nvidia.com/gpu", "ascend": "huawei.com/Ascend910"}


def _seconds(raw: str) -> float:
    text = raw.strip().lower().removesuffix("s")
    value = float(text)
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a non-negative number of seconds")
    return value


def _bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{raw!r} is not a boolean; use true or false")


# NVIDIA k8s-device-plugin's library locations under --nvidia-driver-root
NVML_LIBRARY_DIRS = ("usr/lib64", "usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu", "usr/lib", "lib64", "lib")


def add_plugin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resource", default=None,
                   help="extended resource name to advertise; unset: nvidia.com/gpu, or "
                        "huawei.com/Ascend910 with --backend ascend")
    p.add_argument("--kubelet-dir", default="/var/lib/kubelet/device-plugins",
                   help="kubelet device-plugin folder holding kubelet.sock; the plugin socket goes here too")
    p.add_argument("--socket-name", default=None,
                   help="file name of the plugin socket in --kubelet-dir; unset: brix-<resource suffix>.sock")
    p.add_argument("--backend", default="nvml", choices=["nvml", "ascend"],
                   help="accelerator library: NVML (pynvml) for NVIDIA GPUs, DCMI for Ascend NPUs")
    p.add_argument("--mock-config", default=None,
                   help="nvml_mock TOML file: serve simulated devices instead of the real driver; unset: real driver")
    p.add_argument("--device-id-strategy", default="uuid", choices=["uuid", "index"],
                   help="device ids sent to kubelet: GPU UUIDs or NVML indices (Ascend ids are always Ascend910-N)")
    p.add_argument("--allocation-policy", default="topology", choices=["topology", "index"],
                   help="GetPreferredAllocation policy: NVLink count then PCIe distance, or lowest index")
    p.add_argument("--device-list-strategy", default="envvar",
                   help="comma list of how Allocate passes devices: envvar (NVIDIA_/ASCEND_VISIBLE_DEVICES), "
                        "volume-mounts, cdi-annotations, cdi-cri")
    p.add_argument("--pass-device-specs", type=_bool, nargs="?", const=True, default=False, metavar="BOOL",
                   help="also return DeviceSpecs for /dev/nvidiaN (or /dev/davinciN) and the control devices")
    p.add_argument("--cdi-kind", default="nvidia.com/gpu",
                   help="CDI kind for cdi-annotations / cdi-cri names (<kind>=<device id>)")
    p.add_argument("--dev-root", default="/dev", help="host folder of the device nodes used in DeviceSpecs")
    p.add_argument("--health-quiet-period", type=_seconds, default=30.0,
                   help="seconds with no fault before an Unhealthy device is Healthy again; inf = never recover")
    p.add_argument("--health-poll-interval", type=_seconds, default=0.5,
                   help="seconds between polled checks (ECC, retired pages, row remapping, PCIe link width)")
    p.add_argument("--disable-healthchecks", default=None,
                   help="like NVIDIA's DP_DISABLE_HEALTHCHECKS (read when this flag is unset): all, xids, "
                        "XIDs to ignore, or ecc,retired_pages,remapped_rows,pcie_link")
    p.add_argument("--enable-healthchecks", default=None,
                   help="like DP_ENABLE_HEALTHCHECKS (read when unset): XIDs that always count")
    p.add_argument("--kubelet-poll-interval", type=_seconds, default=0.5,
                   help="seconds between checks of kubelet.sock for a kubelet restart")
    nvidia = p.add_argument_group("NVIDIA k8s-device-plugin flags (same meaning, so its DaemonSet arguments work)")
    nvidia.add_argument("--fail-on-init-error", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                        help="exit 1 when the GPU library cannot be initialised; false: log it and wait until "
                             "stopped (a node without GPUs stays quiet)")
    nvidia.add_argument("--nvidia-driver-root", default="/",
                        help="root of the NVIDIA driver installation: libnvidia-ml.so.1 is loaded from under it "
                             "and device nodes are <root>/dev (unless --dev-root is given)")
    nvidia.add_argument("--config-file", default=None,
                        help="NVIDIA's plugin config (YAML, version v1): flags.failOnInitError, "
                             "flags.nvidiaDriverRoot, flags.migStrategy and flags.plugin.{passDeviceSpecs, "
                             "deviceListStrategy, deviceIDStrategy}; a flag left at its default takes its value")
    nvidia.add_argument("--mig-strategy", default="none", choices=["none", "single", "mixed"],
                        help="MIG devices are not supported yet: only none")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address of /metrics, /healthz and /readyz")
    p.add_argument("--metrics-port", type=int, default=9402, help="port of /metrics, /healthz, /readyz; 0 = off")
    add_logging_flags(p)


# NVIDIA config file key -> (our flag's dest, converter)
_CONFIG_KEYS: dict[tuple[str, ...], tuple[str, Callable[[Any], object]]] = {
    ("flags", "failOnInitError"): ("fail_on_init_error", bool),
    ("flags", "nvidiaDriverRoot"): ("nvidia_driver_root", str),
    ("flags", "migStrategy"): ("mig_strategy", str),
    ("flags", "plugin", "passDeviceSpecs"): ("pass_device_specs", bool),
    ("flags", "plugin", "deviceListStrategy"): ("device_list_strategy",
                                               lambda v: ",".join(v) if isinstance(v, list) else str(v)),
    ("flags", "plugin", "deviceIDStrategy"): ("device_id_strategy", str),
}


def apply_config_file(args: argparse.Namespace) -> None:
    """Fill flags left at their defaults from NVIDIA's config file (--config-file)."""
    if not args.config_file:
        return
    import yaml

    defaults = argparse.ArgumentParser()
    add_plugin_arguments(defaults)
    try:
        with open(args.config_file) as f:
            doc = yaml.safe_load(f) or {}
    except OSError as exc:
        raise UsageError(f"--config-file {args.config_file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config-file {args.config_file}: not YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != "v1":
        raise UsageError(f"--config-file {args.config_file}: expected NVIDIA's config format with 'version: v1'")
    for path, (dest, convert) in _CONFIG_KEYS.items():
        value: object = doc
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None or getattr(args, dest) != defaults.get_default(dest):
            continue
        if convert is bool and not isinstance(value, bool):
            raise UsageError(f"--config-file {args.config_file}: {'.'.join(path)} must be true or false, "
                             f"got {value!r}")
        setattr(args, dest, convert(value))


def build_settings(args: argparse.Namespace) -> PluginSettings:
    from pathlib import Path

    from deviceplugin.healthpolicy import PolicyError, parse_checks
    from deviceplugin.responses import DEVICE_LIST_STRATEGIES, AllocateOptions
    from deviceplugin.settings import PluginSettings

    apply_config_file(args)
    if args.mig_strategy != "none":
        raise UsageError(f"--mig-strategy {args.mig_strategy}: MIG devices are not supported yet; use none")
    if args.device_id_strategy not in ("uuid", "index"):
        raise UsageError(f"device ID strategy {args.device_id_strategy!r}: use uuid or index")
    if args.nvidia_driver_root != "/" and args.dev_root == "/dev":
        args.dev_root = str(Path(args.nvidia_driver_root) / "dev")
    resource = args.resource or DEFAULT_RESOURCES[args.backend]
    if "/" not in resource or len(resource) > 63:
        raise UsageError(f"--resource {resource!r} must look like vendor.com/name and be at most 63 characters")
    socket_name = args.socket_name or f"brix-{resource.split('/', 1)[1].lower()}.sock"
    if "/" in socket_name or socket_name == "kubelet.sock":
        raise UsageError(f"--socket-name {socket_name!r} must be a plain file name other than kubelet.sock")
    longest = max(len(str(Path(args.kubelet_dir) / socket_name)), len(str(Path(args.kubelet_dir) / "kubelet.sock")))
    if longest > 107:
        raise UsageError(f"--kubelet-dir {args.kubelet_dir!r} is too long: unix socket paths must stay under 108 "
                         f"bytes ({longest} here); use a shorter folder")
    strategies = tuple(s.strip() for s in args.device_list_strategy.split(",") if s.strip())
    bad = [s for s in strategies if s not in DEVICE_LIST_STRATEGIES]
    if bad or not strategies:
        raise UsageError(f"--device-list-strategy {args.device_list_strategy!r}: unknown {', '.join(bad) or 'empty'};"
                         f" use a comma list of {', '.join(DEVICE_LIST_STRATEGIES)}")
    disable = args.disable_healthchecks if args.disable_healthchecks is not None \
        else os.environ.get("DP_DISABLE_HEALTHCHECKS")
    enable = args.enable_healthchecks if args.enable_healthchecks is not None \
        else os.environ.get("DP_ENABLE_HEALTHCHECKS")
    try:
        checks = parse_checks(disable, enable)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    if args.mock_config and not os.path.isfile(args.mock_config):
        raise UsageError(f"--mock-config {args.mock_config}: no such file")
    if args.health_poll_interval <= 0 or args.kubelet_poll_interval <= 0:
        raise UsageError("--health-poll-interval and --kubelet-poll-interval must be > 0")
    return PluginSettings(
        resource=resource, kubelet_dir=Path(args.kubelet_dir), socket_name=socket_name, backend=args.backend,
        mock_config=args.mock_config, device_id_strategy=args.device_id_strategy,
        allocation_policy=args.allocation_policy,
        allocate=AllocateOptions(backend=args.backend, device_list_strategies=strategies,
                                 pass_device_specs=args.pass_device_specs, cdi_kind=args.cdi_kind,
                                 dev_root=args.dev_root),
        checks=checks, quiet_period=args.health_quiet_period, poll_interval=args.health_poll_interval,
        kubelet_poll=args.kubelet_poll_interval, metrics_host=args.metrics_host, metrics_port=args.metrics_port,
    )


def run_plugin(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from brix.logs import kv, setup
    from deviceplugin import manager
    from deviceplugin.backend import BackendError, MockConfigError
    from deviceplugin.backends import open_backend

    setup(args.log_level, args.log_format)
    settings = build_settings(args)
    log = logging.getLogger("deviceplugin")
    try:
        if settings.backend == "nvml" and not settings.mock_config and args.nvidia_driver_root != "/":
            _preload_nvml(args.nvidia_driver_root)
        backend = open_backend(settings.backend, settings.mock_config)
    except MockConfigError as exc:
        raise UsageError(f"--mock-config: {exc}") from None
    except BackendError as exc:
        hint = ""
        if settings.backend == "nvml" and not settings.mock_config:
            from deviceplugin.nvml_backend import in_container_hint

            hint = in_container_hint()
        kv(log, "cannot start the device plugin", logging.ERROR, backend=settings.backend, error=f"{exc}{hint}")
        if args.fail_on_init_error:
            return 1
        return _wait_until_stopped(log)
    return asyncio.run(manager.run(settings, backend))


def _preload_nvml(driver_root: str) -> None:
    """Load libnvidia-ml.so.1 from under --nvidia-driver-root, so that pynvml's own
    CDLL("libnvidia-ml.so.1") finds the library already loaded."""
    import ctypes
    from pathlib import Path

    from deviceplugin.backend import BackendError

    for folder in NVML_LIBRARY_DIRS:
        candidate = Path(driver_root) / folder / "libnvidia-ml.so.1"
        if candidate.exists():
            try:
                ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                raise BackendError(f"cannot load {candidate}: {exc}") from exc
            return
    raise BackendError(f"--nvidia-driver-root {driver_root}: no libnvidia-ml.so.1 under "
                       f"{', '.join(NVML_LIBRARY_DIRS)}")


def _wait_until_stopped(log: logging.Logger) -> int:
    """--fail-on-init-error=false: stay up without serving (as NVIDIA's plugin blocks), exit 0 on SIGTERM."""
    import logging
    import signal
    import threading

    from brix.logs import kv

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    kv(log, "fail-on-init-error is false: waiting without serving until stopped", logging.WARNING)
    stop.wait()
    return 0


def add_diagnose_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mock-config", default=None, help="nvml_mock TOML file: diagnose simulated GPUs")
    p.add_argument("--expect-count", type=int, default=None,
                   help="expected number of GPUs (gpu_card_count check); also read from GPU_CARD_COUNT")
    p.add_argument("--xid-wait", type=_seconds, default=0.2,
                   help="seconds to collect pending XID events for the gpu_xid_events check")


def run_diagnose(args: argparse.Namespace) -> int:
    import json
    import sys

    from deviceplugin.diagnose import diagnose

    expect = args.expect_count
    if expect is None and os.environ.get("GPU_CARD_COUNT"):
        try:
            expect = int(os.environ["GPU_CARD_COUNT"])
        except ValueError:
            raise UsageError(f"GPU_CARD_COUNT={os.environ['GPU_CARD_COUNT']!r} is not a number") from None
    if args.mock_config and not os.path.isfile(args.mock_config):
        raise UsageError(f"--mock-config {args.mock_config}: no such file")
    report, code = diagnose(args.mock_config, expect, args.xid_wait)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return code


COMMANDS: list[Command] = [
    Command(
        name="device-plugin",
        help="kubelet device plugin (v1beta1) for NVIDIA GPUs or Ascend NPUs, with health checks that recover",
        add_arguments=add_plugin_arguments,
        run=run_plugin,
        description=(
            "Serve the kubelet device plugin API v1beta1 on <kubelet-dir>/<socket-name>, register at\n"
            "<kubelet-dir>/kubelet.sock, report GPU health (XID events, ECC, retired pages, row remapping,\n"
            "PCIe width) on ListAndWatch, and re-register when kubelet restarts. See deviceplugin/README.md."
        ),
    ),
    Command(
        name="diagnose",
        help="check the node's GPUs once and print JSON keyed by GPU UUID (exit 0 healthy, 1 unhealthy, 2 cannot run)",
        add_arguments=add_diagnose_arguments,
        run=run_diagnose,
    ),
]
