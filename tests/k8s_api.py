"""kmock-based Kubernetes API fixture (being written: see issue 2)."""
