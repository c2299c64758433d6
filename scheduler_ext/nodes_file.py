"""Standalone mode: v1 Node objects (and optionally bound Pods) from a YAML file, re-read on change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from brix.logs import kv

log = logging.getLogger(__name__)


class NodesFileError(ValueError):
    """The --nodes file is unreadable or holds something other than Nodes and Pods."""


def load(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(nodes, pods) from a `kind: List` / `NodeList` or a multi-document YAML file.

    Pods with spec.nodeName count as already using their GPUs (handy for fixtures).
    """
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = [d for d in yaml.load_all(path.read_text(), Loader=loader) if d is not None]
    except OSError as exc:
        raise NodesFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise NodesFileError(f"{path}: not valid YAML: {exc}") from None
    items: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") in ("List", "NodeList", "PodList"):
            items.extend(doc.get("items") or [])
        else:
            items.append(doc)
    nodes, pods = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise NodesFileError(f"{path}: item {i} is not an object")
        kind = item.get("kind", "Node")
        name = (item.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise NodesFileError(f"{path}: item {i} ({kind}) has no metadata.name")
        if kind == "Node":
            nodes.append(item)
        elif kind == "Pod":
            pods.append(item)
        else:
            raise NodesFileError(f"{path}: item {i} ({name}) is a {kind}; only Node and Pod objects are read")
    if not nodes:
        raise NodesFileError(f"{path}: holds no Node objects")
    return nodes, pods


def signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is replaced or rewritten (inode, size, mtime); None if missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


async def watch(path: Path, on_change: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None],
                interval: float = 0.25) -> None:
    """Re-read the file whenever it changes (a device plugin lowered allocatable, a node was added)
    and hand the new (nodes, pods) to on_change. A bad rewrite is logged and the last good
    content stays in force, so a half-edited file never empties the cache."""
    last = signature(path)
    while True:
        await asyncio.sleep(interval)
        current = signature(path)
        if current == last or current is None:
            continue
        last = current
        try:
            nodes, pods = load(path)
        except NodesFileError as exc:
            kv(log, "nodes file not reloaded, keeping the last good content", logging.WARNING, error=str(exc))
            continue
        on_change(nodes, pods)
        kv(log, "nodes file reloaded", file=str(path), nodes=len(nodes), pods=len(pods))
