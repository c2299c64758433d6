"""Structured logging: one line per event, `key=value` (or JSON with --log-format json).

Use `log = logging.getLogger(__name__)` and pass fields with `extra={"fields": {...}}`, or
the helper `kv(log, "message", key=value, ...)`. Secrets never go into fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"fields", "message"}


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={_quote(record.getMessage())}"]
        for key, value in _fields(record).items():
            parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", None) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            fields.setdefault(key, value)
    return fields


def kv(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured line: kv(log, "gpu unhealthy", gpu=uuid, xid=79)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


def setup(level: str = "info", fmt: str = "kv") -> None:
    """Configure the root logger once, for a `brix` process (never for a library import)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "kubernetes.client.rest", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_logging_flags(parser: Any) -> None:
    """The shared --log-level/--log-format flags every long-running command offers."""
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log verbosity")
    parser.add_argument("--log-format", default="kv", choices=["kv", "json"],
                        help="log line format: key=value text or one JSON object per line")
