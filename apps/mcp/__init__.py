"""MCP (Model Context Protocol) server: collections as tools and resources for MCP clients.

`apps.mcp.server` builds it; `rag mcp` runs it over stdio (`apps.cli_mcp`); `apps.mcp.http`
mounts it in `rag serve` at /mcp (streamable HTTP, the REST API's keys).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

log = logging.getLogger("rag.mcp")


def mount_mcp(app: Any, *args: Any, settings: Any = None, **kwargs: Any) -> None:
    """`apps.mcp.http.mount_mcp` when the `mcp` extra is installed; otherwise the API serves without /mcp."""
    from rag_platform.apps.mcp.settings import McpSettings

    settings = settings or McpSettings()
    if not settings.enabled:
        return
    if importlib.util.find_spec("mcp") is None:
        log.info("MCP over HTTP is off: pip install 'rag-platform[mcp]'")
        return
    from rag_platform.apps.mcp.http import mount_mcp as mount

    mount(app, *args, settings=settings, **kwargs)
