"""Brix: the CLI, the local mock-GPU cluster (`brix up`) and small shared helpers."""

__version__ = "0.1.0"
