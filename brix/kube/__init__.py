"""The local Kubernetes control plane (upstream binaries built by hack/kube/) and its helpers."""
