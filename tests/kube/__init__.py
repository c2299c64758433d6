"""The `kube` fixtures: the real upstream control plane on loopback (brix/kube/cluster.py).

- kube_cluster (session): kube-apiserver, etcd, kube-controller-manager, kube-scheduler configured
  from deploy/scheduler_ext/scheduler-config.yaml, `brix node-agent` playing 3 GPU nodes (4 mock
  GPUs each, A100 / H100), and deploy/local applied with kubectl (extender, mock device plugins).
  Started once per test run. Skipped with the reason when the binaries are not built (`make
  kube`), except in CI, where that is a failure.
- kube (function): a fresh namespace in that cluster; `.kubectl(...)`, `.api` (official client,
  admin), `.kubeconfig`, `.namespace`, `.cluster`. Mark tests with @pytest.mark.kube.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brix.kube import binaries
from brix.kube.cluster import ClusterSettings, LocalCluster, start


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        binaries.find()
    except binaries.MissingBinaries as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (make test builds it first)")
        pytest.skip(str(exc))
    cluster = start(ClusterSettings(workdir=tmp_path_factory.mktemp("kube")))
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class KubeNamespace:
    cluster: LocalCluster
    namespace: str
    api: Any

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def kubectl(self, *args: str, **kwargs: Any) -> Any:
        """kubectl with the admin kubeconfig, in this test's namespace."""
        return self.cluster.kubectl("-n", self.namespace, *args, **kwargs)

    def get_json(self, *args: str) -> Any:
        return self.cluster.get_json("-n", self.namespace, *args)

    def wait_for(self, what: str, check: Any, timeout: float = 60.0, interval: float = 0.25) -> Any:
        return self.cluster.wait_for(what, check, timeout, interval)


@pytest.fixture
def kube(kube_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[KubeNamespace]:
    from kubernetes import client, config

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    namespace = f"{name}-{uuid.uuid4().hex[:5]}"
    api = config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    # pods are refused until the controller manager has made the namespace's default ServiceAccount
    kube_cluster.wait_for("the namespace's default ServiceAccount",
                          lambda: core.list_namespaced_service_account(namespace).items, 30, 0.1)
    try:
        yield KubeNamespace(kube_cluster, namespace, api)
    finally:
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        api.close()
