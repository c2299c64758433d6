"""brix.files.read_yaml: every component reads user YAML/JSON through it, with errors that name
the file and its role."""

from __future__ import annotations

from pathlib import Path

import pytest

from brix.files import FileError, read_yaml


def test_reads_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("keys:\n  - name: ci\n")
    (tmp_path / "b.json").write_text('{"rps": 3}')
    assert read_yaml(tmp_path / "a.yaml", "API keys file") == {"keys": [{"name": "ci"}]}
    assert read_yaml(tmp_path / "b.json", "--workload") == {"rps": 3}


def test_errors_name_the_role_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileError, match=r"gateway config file .*missing.yaml: cannot read: No such file"):
        read_yaml(tmp_path / "missing.yaml", "gateway config file")
    (tmp_path / "bad.yaml").write_text("keys: [unclosed")
    with pytest.raises(FileError, match=r"--state .*bad.yaml: not valid YAML or JSON"):
        read_yaml(tmp_path / "bad.yaml", "--state")
