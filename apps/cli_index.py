"""`rag compact`: merge a collection's index segments into one (the embedded store)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from apps.cli import HomeOpt, _open, console


def compact_cmd(collection: Annotated[str, typer.Argument()], home: HomeOpt = None) -> None:
    """Merge all index segments of a collection into one and drop deleted rows; searches go on meanwhile."""
    rag = _open(home)
    compact = getattr(rag.store, "compact", None)
    if compact is None:
        console.print(f"'{collection}': this store keeps its indexes current itself; nothing to compact")
        return
    before = len(rag.store.index(collection).manifest["segments"])
    t0 = time.perf_counter()
    manifest = compact(collection)
    console.print(f"compacted '{collection}': {before} segments -> {len(manifest['segments'])}, "
                  f"{manifest['chunks']} chunks at ledger revision {manifest['ledger_revision']} "
                  f"in {time.perf_counter() - t0:.1f}s")
