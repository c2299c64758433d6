"""Live view of a mock config file, and atomic rewrites of it (the fault-injection channel).

Readers (`LiveConfig`) stat the file on every `current()` call — a few microseconds — and re-parse
it only when its (inode, size, mtime) changes. Writers (`update_config`) hold an exclusive lock on
`<file>.lock`, apply a change to the raw TOML dict, validate the result with the same parser, and
replace the file atomically (temp file + os.replace), so a reader never sees half a file and two
injectors never lose each other's changes. A rewrite that fails to parse (hand-edited) leaves the
last good config in force and is reported once through `last_error` and a log line.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from brix.logs import kv
from nvml_mock.config import parse_config, parse_toml
from nvml_mock.model import ConfigError, NodeConfig
from nvml_mock.tomlw import dumps

log = logging.getLogger(__name__)
T = TypeVar("T")
RACY_WINDOW_NS = 100_000_000


class LiveConfig:
    """The newest valid NodeConfig of one file; thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._text = ""
        self._racy = False
        self.last_error: ConfigError | None = None
        self.reloads = 0
        self._config = self._load_strict()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load_strict(self) -> NodeConfig:
        signature = self._stat()
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(self.path), "", f"cannot read the file ({exc.strerror}); create one with "
                              "`brix nvml-mock init --config FILE`") from exc
        config = parse_config(parse_toml(text, str(self.path)), str(self.path))
        self._remember(signature, text)
        return config

    def _remember(self, signature: tuple[int, int, int] | None, text: str) -> None:
        self._signature = signature
        self._text = text
        # "Racy" file (as git calls it): written within the timestamp granularity, so a second
        # write could keep the same (inode, size, mtime). Compare contents until it is old enough.
        self._racy = signature is None or time.time_ns() - signature[2] < RACY_WINDOW_NS

    def _changed(self, signature: tuple[int, int, int] | None) -> bool:
        if signature is None:
            return False  # file gone for a moment: keep the last good config
        if signature != self._signature:
            return True
        if not self._racy:
            return False
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return False
        if text != self._text:
            return True
        self._remember(signature, text)
        return False

    def current(self) -> NodeConfig:
        signature = self._stat()
        if not self._changed(signature):
            return self._config
        with self._lock:
            if self._changed(self._stat()):
                try:
                    self._config = self._load_strict()
                    self.reloads += 1
                    self.last_error = None
                except ConfigError as exc:
                    try:  # remember the bad file so that it is not re-parsed on every call
                        bad_text = self.path.read_text(encoding="utf-8")
                    except OSError:
                        bad_text = ""
                    self._remember(self._stat(), bad_text)
                    self.last_error = exc
                    kv(log, "mock config rewrite rejected, keeping the last good one", logging.WARNING,
                       file=str(self.path), error=str(exc))
            return self._config


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_raw(path: str | Path, raw: dict[str, Any]) -> NodeConfig:
    """Validate `raw` and write it to `path` atomically; returns the parsed config."""
    path = Path(path)
    config = parse_config(raw, str(path))
    text = dumps(raw)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return config


def update_config(path: str | Path, change: Callable[[dict[str, Any]], T]) -> tuple[T, NodeConfig]:
    """Read the raw TOML under the file lock, call change(raw) (it mutates raw), validate, replace.

    Returns what change returned and the new config. On ConfigError the file is left as it was.
    """
    path = Path(path)
    with _locked(path):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(path), "", f"cannot read the file ({exc.strerror}); create one with "
                              "`brix nvml-mock init --config FILE`") from exc
        raw = parse_toml(text, str(path))
        parse_config(raw, str(path))  # refuse to build on a broken file
        result = change(raw)
        return result, write_raw(path, raw)
