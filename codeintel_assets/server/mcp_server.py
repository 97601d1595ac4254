"""The tools over MCP, with the official SDK's low-level ``Server``.

The tools' own JSON schemas and descriptions are listed as they are (no second
declaration); a call runs the core tool in a worker thread and answers with the JSON
both as text and as structured content. A user error (unknown symbol, bad argument,
nothing published...) is a tool result with ``isError`` and the one-line message, so
the assistant can read it and try again; the server stays up.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.service.handles import HandleCache
from codeintel_assets.core.service.tools import call_tool, list_tools

INSTRUCTIONS = (
    "Code intelligence over published indexes of the user's repositories: `search` first, "
    "then `read`, `definition`, `references`, `callers`, `callees`, `outline`, `module`. "
    "Every answer names the build version and `stale_files`, the indexed files changed on disk "
    "since the build; call `status` for details."
)


def build_mcp_server(cache: HandleCache) -> Server[Any]:
    """Return an MCP server whose tools are the core tools over ``cache``."""

    async def on_list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name,
                    description=tool.description,
                    input_schema=tool.schema,
                    annotations=types.ToolAnnotations(
                        read_only_hint=True, destructive_hint=False, idempotent_hint=True
                    ),
                )
                for tool in list_tools()
            ]
        )

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            answer = await anyio.to_thread.run_sync(
                call_tool, cache, params.name, params.arguments or {}
            )
        except CodeintelError as exc:
            return types.CallToolResult(
                content=[types.TextContent(text=f"error: {exc}")], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(answer, default=str))],
            structured_content=answer,
        )

    return Server(
        "codeintel",
        version="0.1.0",
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def run_stdio(cache: HandleCache) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes them."""
    server = build_mcp_server(cache)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)
