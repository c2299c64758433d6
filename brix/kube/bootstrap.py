"""Objects the local control plane needs before anything runs on it: the node agent's RBAC.

One node agent plays the kubelet of many nodes, so it cannot use the Node authorizer (which lets
`system:node:<name>` touch only its own node); it gets this ClusterRole instead — the verbs the
agent calls, nothing more (brix/node_agent/agent.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brix.kube import pki

NODE_AGENT_ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": "brix:node-agent"},
    "rules": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "patch"]},
    ],
}
NODE_AGENT_BINDING: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
    "metadata": {"name": "brix:node-agent"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "brix:node-agent"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": pki.NODE_AGENT.groups[0]}],
}


def apply(admin_kubeconfig: Path) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(admin_kubeconfig))
    rbac = client.RbacAuthorizationV1Api(api)
    for create, replace, body in (
        (rbac.create_cluster_role, rbac.replace_cluster_role, NODE_AGENT_ROLE),
        (rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding, NODE_AGENT_BINDING),
    ):
        try:
            create(body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            replace(body["metadata"]["name"], body)
    api.close()
