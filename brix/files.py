"""Reading a user's YAML or JSON file with errors that say which file and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class FileError(ValueError):
    """The file cannot be read or does not parse; the message names the file and its role."""


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse a YAML (or JSON, a subset of YAML) file; `what` names its role, e.g. "API keys file"."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise FileError(f"{what} {p}: cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FileError(f"{what} {p}: not valid YAML or JSON: {exc}") from None
