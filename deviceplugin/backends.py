"""Open the accelerator library (real or mock) and wrap it in its Backend (backend.py holds the
contract; nvml_backend.py and ascend_backend.py the two implementations)."""

from __future__ import annotations

from deviceplugin.backend import Backend, BackendError


def open_backend(kind: str, mock_config: str | None) -> Backend:
    """Initialise the accelerator library (real or mock) and wrap it in a Backend. A malformed mock
    config raises MockConfigError, a missing library BackendError."""
    try:
        if kind == "ascend":
            from deviceplugin.ascend_backend import AscendBackend, open_dcmi

            return AscendBackend(open_dcmi(mock_config))
        from deviceplugin.nvml_backend import NvmlBackend, open_nvml

        return NvmlBackend(open_nvml(mock_config))
    except ImportError as exc:
        raise BackendError(f"cannot import the accelerator library: {exc}") from exc
