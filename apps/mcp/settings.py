"""Settings of the MCP endpoint in `rag serve` (read before the `mcp` SDK is imported, so `enabled=false` costs nothing)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class McpSettings(BaseSettings):
    """Settings of the MCP endpoint in `rag serve` (env `RAG_MCP__*`)."""

    model_config = SettingsConfigDict(env_prefix="RAG_MCP__", extra="ignore")

    enabled: bool = Field(True, description="Serve MCP over streamable HTTP at `path`.")
    path: str = Field("/mcp", description="Where the MCP endpoint is mounted.")
    allowed_dirs: list[Path] = Field(default_factory=list, description="Server folders the `ingest` tool may "
                                     "read files from (keys with the write role); none by default: only texts.")
    default_collection: str = Field("default", description="The collection a tool uses when none is given.")
