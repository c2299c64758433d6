"""`brix node-agent`: plays the kubelet for simulated GPU nodes of the local control plane."""
