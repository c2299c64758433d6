"""scheduler_ext: see README.md."""
