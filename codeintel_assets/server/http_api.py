"""The HTTP face of the service (Starlette on uvicorn).

Routes: ``GET /`` the search page; ``GET /healthz``; ``GET /metrics`` (Prometheus text);
``GET /api/tools`` (names, descriptions, input schemas); ``POST /api/<tool>`` with the
arguments as a JSON object; ``/mcp`` the MCP streamable HTTP transport.

Security: loopback by default; any other bind needs a bearer token, which is then
checked on every route but ``/healthz`` and the page itself (the page asks for it);
request bodies are capped at ``MAX_BODY_BYTES``; no CORS headers are sent, so browsers
refuse cross-origin reads; nothing writes.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from codeintel_assets.core import metrics
from codeintel_assets.core.errors import (
    CodeintelError,
    NothingPublishedError,
    UnknownRepositoryError,
)
from codeintel_assets.core.fusion import SEARCH_MODES
from codeintel_assets.core.service.handles import HandleCache
from codeintel_assets.core.service.navigation import UnknownSymbolError
from codeintel_assets.core.service.tools import (
    PathNotIndexedError,
    UnknownModuleError,
    call_tool,
    list_tools,
)
from codeintel_assets.server.mcp_server import build_mcp_server

MAX_BODY_BYTES = 256 * 1024
TOKEN_ENV = "CODEINTEL_TOKEN"
_OPEN_PATHS = frozenset({"/", "/healthz"})
_STATUS = (
    (UnknownRepositoryError, 404),
    (UnknownSymbolError, 404),
    (UnknownModuleError, 404),
    (PathNotIndexedError, 404),
    (NothingPublishedError, 409),
    (CodeintelError, 400),
)
log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Return whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_token_for(host: str, token: str | None) -> None:
    """Raise ``CodeintelError`` when ``host`` is not loopback and no token is set."""
    if not is_loopback(host) and not token:
        raise CodeintelError(
            f"binding to {host} exposes the index beyond this machine: give a bearer token with "
            f"--token or ${TOKEN_ENV}"
        )


class BearerTokenMiddleware:
    """Answer 401 unless the request carries ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(
                    _error("Unauthorized", "missing or wrong bearer token (Authorization header)"),
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def create_app(cache: HandleCache, host: str = "127.0.0.1", token: str | None = None) -> ASGIApp:
    """Return the ASGI app serving ``cache``'s repositories.

    Raises ``CodeintelError`` when ``host`` is not loopback and ``token`` is empty.
    """
    require_token_for(host, token)
    security = (
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
        if is_loopback(host)
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    sessions = StreamableHTTPSessionManager(
        app=build_mcp_server(cache),
        json_response=True,
        stateless=True,
        security_settings=security,
        max_request_body_size=MAX_BODY_BYTES,
    )
    page = resources.files("codeintel_assets.server").joinpath("page.html").read_text("utf-8")
    # The mode choices come from the one list of them, like the CLI's and the tools'.
    page = page.replace(
        "<!--search-modes-->", "".join(f"<option>{m}</option>" for m in SEARCH_MODES)
    )

    async def home(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "repos": sorted(cache.repos)})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.metrics_text(), media_type="text/plain; version=0.0.4")

    async def tools_endpoint(request: Request) -> Response:
        return JSONResponse({"tools": [tool.to_dict() for tool in list_tools()]})

    async def tool_endpoint(request: Request) -> Response:
        name = request.path_params["tool"]
        body = b""
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse(
                    _error("BodyTooLarge", f"request body over {MAX_BODY_BYTES} bytes"),
                    status_code=413,
                )
        try:
            arguments = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse(_error("BadJSON", f"request body is not JSON: {exc}"), 400)
        try:
            answer = await anyio.to_thread.run_sync(call_tool, cache, name, arguments)
        except CodeintelError as exc:
            status = next(code for kind, code in _STATUS if isinstance(exc, kind))
            return JSONResponse(_error(type(exc).__name__, str(exc)), status_code=status)
        except Exception:  # a bug: log it, answer 500, keep serving
            log.exception("tool %s failed", name)
            return JSONResponse(_error("InternalError", f"{name} failed; see the server log"), 500)
        return Response(json.dumps(answer, default=str), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sessions.run():
            yield
        cache.close()

    app: ASGIApp = Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", healthz),
            Route("/metrics", metrics_endpoint),
            Route("/api/tools", tools_endpoint),
            Route("/api/{tool}", tool_endpoint, methods=["POST"]),
            Route("/mcp", StreamableHTTPASGIApp(sessions)),
        ],
        lifespan=lifespan,
    )
    if token:
        app = BearerTokenMiddleware(app, token)
    return app


def serve(cache: HandleCache, host: str, port: int, token: str | None) -> None:
    """Run the HTTP server until interrupted. Raises ``CodeintelError`` as ``create_app``."""
    import uvicorn

    app = create_app(cache, host, token)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
