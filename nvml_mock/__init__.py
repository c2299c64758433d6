"""nvml_mock: see README.md."""
