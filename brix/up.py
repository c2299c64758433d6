"""The local mock-GPU cluster (being assembled as components land)."""
