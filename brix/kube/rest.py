"""A small asyncio client for the Kubernetes REST API (aiohttp), for the node agent: it plays
kubelets for up to thousands of nodes, so it needs one connection pool and cheap JSON patches
rather than the generated (blocking) client.

Reads a kubeconfig's current context: server, certificate-authority(-data), and a client
certificate or a bearer token.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        reason = body
        try:
            reason = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            pass
        super().__init__(f"{method} {path}: HTTP {status}: {reason}")
        self.status = status


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl_context: ssl.SSLContext
    token: str | None = None
    ca_file: str | None = None
    """The cluster's CA as a file (from certificate-authority or -data), for kubeconfigs handed on."""


def _materialize(entry: dict[str, Any], key: str, base: Path) -> str | None:
    """A file path for `key` or `key-data` (base64, written to a private temporary file)."""
    if entry.get(key):
        path = Path(entry[key])
        return str(path if path.is_absolute() else base / path)
    data = entry.get(f"{key}-data")
    if not data:
        return None
    handle = tempfile.NamedTemporaryFile(prefix="brix-kubeconfig-", delete=False)  # noqa: SIM115
    handle.write(base64.b64decode(data))
    handle.close()
    return handle.name


def load_credentials(kubeconfig: Path) -> Credentials:
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    except (OSError, KeyError, StopIteration, TypeError, yaml.YAMLError) as exc:
        raise ValueError(f"kubeconfig {kubeconfig}: cannot read its current context ({exc!r})") from exc
    base = kubeconfig.parent
    ca_file = _materialize(cluster, "certificate-authority", base)
    context_ssl = ssl.create_default_context(cafile=ca_file)
    cert, key = _materialize(user, "client-certificate", base), _materialize(user, "client-key", base)
    if cert and key:
        context_ssl.load_cert_chain(cert, key)
    return Credentials(cluster["server"].rstrip("/"), context_ssl, user.get("token"), ca_file)


class KubeRest:
    def __init__(self, credentials: Credentials, *, connections: int = 64) -> None:
        self.credentials = credentials
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, **kwargs: Any) -> KubeRest:
        return cls(load_credentials(path), **kwargs)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Accept": "application/json", "User-Agent": "brix-node-agent"}
            if self.credentials.token:
                headers["Authorization"] = f"Bearer {self.credentials.token}"
            self._session = aiohttp.ClientSession(
                headers=headers, connector=aiohttp.TCPConnector(ssl=self.credentials.ssl_context,
                                                                limit=self._connections))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                      params: dict[str, str] | None = None, ok_missing: bool = False) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        async with self.session.request(method, self.credentials.server + path, data=data, headers=headers,
                                        params=params, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            text = await resp.text()
            if resp.status == 404 and ok_missing:
                return None
            if resp.status >= 400:
                raise ApiError(resp.status, method, path, text)
            return json.loads(text) if text else None

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> Any:
        return await self.request("DELETE", path, body, **kw)

    async def merge_patch(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json", **kw)

    async def strategic_patch(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.request("PATCH", path, body, content_type="application/strategic-merge-patch+json", **kw)

    async def watch(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Yields watch events ({type, object}) until the server ends the stream. An ERROR event
        (for example 410 Gone, resourceVersion too old) is yielded for the caller to re-list."""
        query = {**params, "watch": "1", "allowWatchBookmarks": "true"}
        async with self.session.get(self.credentials.server + path, params=query,
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, "WATCH", path, await resp.text())
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
