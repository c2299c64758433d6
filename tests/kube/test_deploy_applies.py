"""deploy/ against a real API server: every object of the top-level kustomization is accepted
(server-side dry run: CRD schemas, RBAC, workloads validated by kube-apiserver itself), and the
local overlay's components run as pods with deploy/'s ServiceAccounts (never as admin)."""

from __future__ import annotations

import pytest

from brix.kube import manifests
from tests.kube import KubeNamespace

pytestmark = pytest.mark.kube


def test_every_object_of_deploy_is_accepted_by_kube_apiserver(kube: KubeNamespace) -> None:
    crds = manifests.DEPLOY / "crds"
    if crds.is_dir():  # the kinds must exist before objects of those kinds can be validated
        kube.cluster.kubectl("apply", "--server-side", "-k", str(crds))
    result = kube.cluster.kubectl("apply", "--dry-run=server", "-k", str(manifests.DEPLOY), check=False)
    assert result.returncode == 0, result.stderr
    rendered = manifests.render(manifests.DEPLOY)
    assert result.stdout.count("(server dry run)") == len(rendered)


def test_local_components_run_with_their_own_service_accounts(kube: KubeNamespace) -> None:
    extender = kube.cluster.get_json("-n", "brix-system", "pods", "-l", "app.kubernetes.io/name=brix-scheduler-ext")
    plugins = kube.cluster.get_json("-n", "kube-system", "pods", "-l", "app.kubernetes.io/name=brix-device-plugin-mock")
    assert [p["spec"]["serviceAccountName"] for p in extender["items"]] == ["brix-scheduler-ext"]
    assert len(plugins["items"]) == len(kube.cluster.node_names)
    for p in extender["items"] + plugins["items"]:
        assert p["status"]["phase"] == "Running"
    # the extender's kubeconfig is a token of its ServiceAccount: the API says who it is
    folder = kube.cluster.settings.workdir / "node-agent" / "pods"
    config = next(folder.glob(f"brix-system_{extender['items'][0]['metadata']['name']}_*/serviceaccount.kubeconfig"))
    who = manifests.kubectl(config, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert who == "system:serviceaccount:brix-system:brix-scheduler-ext"
    denied = manifests.kubectl(config, "auth", "can-i", "delete", "nodes", check=False)
    assert denied.stdout.strip() == "no"
