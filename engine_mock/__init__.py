"""engine_mock: see README.md."""
