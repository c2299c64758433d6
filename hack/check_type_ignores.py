"""`make lint`: every `# type: ignore` in the packages names its error code and says why on the same
line (`# type: ignore[code]  # reason`). Files git tracks are checked (what CI sees); modules on
mypy's not-clean-yet list (pyproject.toml, the override with `ignore_errors = true`) are skipped
until they come off it."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<code>\[[^\]]*\])?(?P<rest>.*)$")
REASON = re.compile(r"^\s*#\s*\S")


def not_clean_yet(config: dict) -> list[str]:
    for override in config["tool"]["mypy"].get("overrides", []):
        if override.get("ignore_errors"):
            modules = override["module"]
            return [modules] if isinstance(modules, str) else list(modules)
    return []


def problems() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mypy = config["tool"]["mypy"]
    skipped = not_clean_yet(config)
    patterns = mypy.get("exclude", [])
    exclude = re.compile("|".join([patterns] if isinstance(patterns, str) else patterns) or r"^\b$")
    tracked = subprocess.run(["git", "ls-files", "--", *(f"{p}/*.py" for p in mypy["files"])], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    found = []
    for rel in sorted(tracked):
        path = ROOT / rel
        if path.exists():
            module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            if exclude.search(rel) or any(fnmatch.fnmatchcase(module, pattern) for pattern in skipped):
                continue
            found.extend(_check(rel, path.read_text()))
    return found


def _check(rel: str, text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        m = IGNORE.search(line)
        if m is None:
            continue
        if not m.group("code"):
            found.append(f"{rel}:{number}: type: ignore without an error code")
        elif not REASON.match(m.group("rest")):
            found.append(f"{rel}:{number}: type: ignore{m.group('code')} without a reason after it")
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    if found:
        print(f"{len(found)} type: ignore comment(s) need an error code and a reason: "
              "`# type: ignore[code]  # why`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
