"""gateway: see README.md."""
