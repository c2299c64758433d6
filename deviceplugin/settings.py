"""Typed settings of `brix device-plugin` (built from flags in cli.py, used by manager.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deviceplugin.healthpolicy import HealthChecks
from deviceplugin.responses import AllocateOptions


@dataclass(frozen=True)
class PluginSettings:
    resource: str = "nvidia.com/gpu"
    """Extended resource name advertised to kubelet."""
    kubelet_dir: Path = Path("/var/lib/kubelet/device-plugins")
    """Folder holding kubelet.sock; the plugin's own socket is created here too."""
    socket_name: str = "brix-gpu.sock"
    """File name of the plugin's socket inside kubelet_dir (the Register endpoint)."""
    backend: str = "nvml"
    mock_config: str | None = None
    """Mock TOML (nvml_mock); None = real NVML / DCMI."""
    device_id_strategy: str = "uuid"
    allocation_policy: str = "topology"
    allocate: AllocateOptions = field(default_factory=AllocateOptions)
    checks: HealthChecks = field(default_factory=HealthChecks)
    quiet_period: float = 30.0
    """Seconds without any fault before an Unhealthy device is Healthy again (inf = never)."""
    poll_interval: float = 0.5
    """Seconds between polled health checks (ECC, remapping, retired pages, PCIe width)."""
    kubelet_poll: float = 0.5
    """Seconds between checks of kubelet.sock for a kubelet restart."""
    max_backoff: float = 5.0
    """Cap of the retry delay while kubelet.sock is missing or Register fails."""
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9402
    """/metrics, /healthz, /readyz port; 0 = no HTTP server."""

    @property
    def socket_path(self) -> Path:
        return self.kubelet_dir / self.socket_name

    @property
    def kubelet_socket(self) -> Path:
        return self.kubelet_dir / "kubelet.sock"
