from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nvml_mock import builders
from nvml_mock.model import NodeConfig


@pytest.fixture
def write_node(tmp_path: Path) -> Callable[..., tuple[Path, NodeConfig]]:
    """write_node(gpus=4, ...) -> (path, parsed config), using the test builders."""

    def write(name: str = "node.toml", **kwargs: Any) -> tuple[Path, NodeConfig]:
        kwargs.setdefault("gpus", 4)
        path = tmp_path / name
        return path, builders.write_config(path, builders.node_config(**kwargs))

    return write
