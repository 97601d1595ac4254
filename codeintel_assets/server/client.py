"""A small client of ``indexctl serve`` for ``indexctl search --server`` (stdlib only, so
the CLI starts fast: no torch, FAISS or DuckDB in the process)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from codeintel_assets.core.errors import CodeintelError

TIMEOUT_S = 30


class RemoteHit:
    """A search result from the server, read like ``core.search.SearchResult``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


def call_remote(server: str, tool: str, arguments: dict[str, Any], token: str | None) -> dict:
    """POST ``arguments`` to ``<server>/api/<tool>``; return the answer.

    Raises ``CodeintelError`` with the server's message, or when it cannot be reached.
    """
    url = f"{server.rstrip('/')}/api/{tool}"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({k: v for k, v in arguments.items() if v is not None}).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code} {exc.reason}"
        raise CodeintelError(f"server {server}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CodeintelError(f"cannot reach the server at {server}: {reason}") from None


def search_remote(server: str, arguments: dict[str, Any], token: str | None) -> dict[str, Any]:
    """Run ``search`` on the server; return ``{"hits": [RemoteHit], "notes": [...], ...}``."""
    answer = call_remote(server, "search", arguments, token)
    return {**answer, "hits": [RemoteHit(hit) for hit in answer["results"]]}
