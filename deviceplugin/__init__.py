"""deviceplugin: see README.md."""
