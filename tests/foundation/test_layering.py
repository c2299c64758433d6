"""Components stay independent of each other (DESIGN.md: one package per component), and the
other import rules hold: the contracts in .importlinter, checked by import-linter as `make lint`
does (components independent, with the allowed uses named there; brix's shared helpers import no
component; pure modules import no I/O module; gateway/routing stands alone; no import cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint_imports, "lint-imports is missing: pip install -e '.[dev]' (make venv installs it)"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
