"""`rag mcp`: the MCP server over stdio, for local clients (Claude Desktop, IDE agents).

The client starts it as a subprocess and speaks JSON-RPC on stdin/stdout, so nothing else may be
printed to stdout (logs go to stderr). The local user reads every collection; `ingest` stays off
unless `--allow-write` is given, and then reads files only under the `--allow-dir` folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]


def mcp_cmd(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection a tool uses when the client "
                                                                       "names none.")] = "default",
    allow_write: Annotated[bool, typer.Option("--allow-write", help="Enable the ingest tool.")] = False,
    allow_dir: Annotated[list[Path] | None, typer.Option("--allow-dir", help="A folder ingest may read files "
                                                         "from (repeat); needs --allow-write.")] = None,
    home: HomeOpt = None,
) -> None:
    """Serve collections to an MCP client over stdio: search, ask, list and (with --allow-write) ingest."""
    try:
        from rag_platform.apps.mcp.server import LOCAL_READER, LOCAL_WRITER, ServerOptions, build_server
    except ImportError:
        typer.echo("error: the MCP server needs its extra: pip install 'rag-platform[mcp]'", err=True)
        raise typer.Exit(2) from None
    from rag import RAG, Settings

    dirs = [d.expanduser().resolve() for d in allow_dir or []]
    if dirs and not allow_write:
        raise typer.BadParameter("--allow-dir needs --allow-write (ingest is off without it)")
    for d in dirs:
        if not d.is_dir():
            raise typer.BadParameter(f"--allow-dir {str(d)!r} is not a folder")
    rag = RAG.open(home) if home else RAG.open(settings=Settings())
    key = LOCAL_WRITER if allow_write else LOCAL_READER
    refusal = None if allow_write else ("ingest is off for this MCP server: the user starts it with "
                                        "`rag mcp --allow-write --allow-dir FOLDER` to allow it")
    options = ServerOptions(default_collection=collection, roots=tuple(dirs), write_refusal=refusal)
    build_server(rag, lambda ctx: key, options).run("stdio")
