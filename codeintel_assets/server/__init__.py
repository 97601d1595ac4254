"""Adapters that serve the core tools (``core.service.tools``): HTTP JSON API + search page
(``http_api``) and MCP over stdio or streamable HTTP (``mcp_server``)."""
