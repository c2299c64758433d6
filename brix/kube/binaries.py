"""Where the upstream control-plane binaries are: built by hack/kube/build.sh (`make kube`) into a
cache folder keyed by the pinned versions. The versions here must equal hack/kube's go.mod pins
(tests/kube/test_binaries.py checks)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class MissingBinaries(RuntimeError):
    """The control plane is not built; the message says how to build it."""


@dataclass(frozen=True)
class KubeBinaries:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name


def cache_folder() -> Path:
    root = os.environ.get("BRIX_KUBE_CACHE") or str(Path.home() / ".cache" / "brix" / "kube")
    return Path(root) / f"{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"


def find() -> KubeBinaries:
    """The built binaries, or MissingBinaries naming what is missing and the command that builds it."""
    folder = cache_folder()
    missing = [b for b in BINARIES if not os.access(folder / b, os.X_OK)]
    if missing:
        raise MissingBinaries(
            f"the Kubernetes control plane (Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION}) is not built:"
            f" {', '.join(missing)} missing in {folder}; run `make kube` in a Brix checkout (needs Go 1.26+;"
            " the first build takes a while)")
    return KubeBinaries(folder)
