"""`rag keys ...` and `rag serve`: the HTTP API's commands, registered on the main `rag` app.

Keys are managed straight in the ledger (no model is loaded), so `rag keys create`
works before the server has ever started; that is how the first admin key is made:
`rag keys create --collection '*' --role admin`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rag import RagError, Settings
from rag.protocols import Ledger

keys_app = typer.Typer(help="API keys for the HTTP API (stored hashed; shown once).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]


def _ledger(home: Path | None, *, create: bool = True) -> Ledger:
    from rag.api import require_home
    from rag.store.base import open_ledger

    settings = Settings(home=home) if home else Settings()
    if not create:
        require_home(settings)  # listing never creates a data home
    return open_ledger(settings)


@keys_app.command("create")
def keys_create(
    collection: Annotated[list[str], typer.Option("--collection", "-c", help="Collection (repeat), or '*'.")],
    role: Annotated[str, typer.Option(help="read (search, ask), write (+ documents) or admin (+ collections, "
                                           "keys).")] = "read",
    name: Annotated[str, typer.Option(help="A label, e.g. the product using it.")] = "",
    home: HomeOpt = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from rag_platform.apps.api.auth import create_key

    try:
        info, raw = create_key(_ledger(home), collections=collection, role=role, name=name)
    except RagError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    console.print(f"key id {info.id} ({info.role} on {', '.join(info.collections)}); store it now, it is not "
                  f"shown again:")
    print(raw)


@keys_app.command("list")
def keys_list(home: HomeOpt = None) -> None:
    """Every key: id, name, prefix, role, collections, created, revoked (never the key)."""
    from rag_platform.apps.api.auth import list_keys

    table = Table()
    for col in ("id", "name", "prefix", "role", "collections", "created", "revoked"):
        table.add_column(col)
    for k in list_keys(_ledger(home, create=False)):
        table.add_row(str(k.id), k.name, k.prefix, k.role, ",".join(k.collections),
                      f"{k.created_at:%Y-%m-%d %H:%M}" if k.created_at else "",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int, home: HomeOpt = None) -> None:
    """Revoke a key; servers stop accepting it within a few seconds."""
    from rag_platform.apps.api.auth import revoke_key

    try:
        info = revoke_key(_ledger(home), key_id)
    except RagError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(1) from None
    console.print(f"revoked key {info.id} ({info.prefix})")


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    home: HomeOpt = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). Needs the `api` extra."""
    import os

    try:
        import uvicorn
    except ImportError:
        err.print("[red]error:[/] the HTTP API needs its extra: pip install 'rag-platform[api]'")
        raise typer.Exit(2) from None
    if home:
        os.environ["RAG_HOME"] = str(home)
    keep_alive = Settings().serving.keep_alive_s
    uvicorn.run("rag_platform.apps.api.app:create_app", factory=True, host=host, port=port, log_level=log_level,
                workers=1, timeout_keep_alive=keep_alive)
