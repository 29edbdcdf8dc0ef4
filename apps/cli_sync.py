"""`rag sync` and `rag watch`: keep a collection mirroring folders (ingest.sync, ingest.watch)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rag import RAG, Settings

console = Console()

HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]
CollOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
GlobOpt = Annotated[str | None, typer.Option(help="Only files matching this pattern, e.g. '*.pdf'.")]


def _open(home: Path | None) -> RAG:
    return RAG.open(home) if home else RAG.open(settings=Settings())


def _short(source: str) -> str:
    try:
        return os.path.relpath(source)
    except ValueError:
        return source


def _print_changes(report: Any, limit: int = 40) -> None:
    rows = ([("added", s, "") for s in report.added] + [("replaced", s, "") for s in report.replaced]
            + [("removed", s, "") for s in report.removed]
            + [("moved", new, f"from {_short(old)}") for old, new in report.moved]
            + [("failed", s, reason) for s, reason in report.failed])
    style = {"added": "green", "replaced": "cyan", "removed": "yellow", "moved": "magenta", "failed": "red"}
    shown = rows if len(rows) <= limit else [r for r in rows if r[0] == "failed"][:limit] or rows[:limit]
    for what, source, note in shown:
        console.print(f"  [{style[what]}]{what:8}[/] {_short(source)}" + (f"  [dim]{note}" if note else ""),
                      highlight=False)
    if len(shown) < len(rows):
        console.print(f"  [dim]... and {len(rows) - len(shown)} more (`rag docs` lists every document)")


def sync_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    collection: CollOpt = "default",
    glob: GlobOpt = None,
    home: HomeOpt = None,
) -> None:
    """One pass: add new files, replace changed ones, remove deleted ones, recognise moved ones (by content)."""
    from rag_platform.ingest.sync import sync_paths

    report = sync_paths(_open(home), paths, collection=collection, glob=glob)
    table = Table(title=f"Sync of '{collection}'")
    for col in ("added", "replaced", "removed", "moved", "unchanged", "failed"):
        table.add_column(col)
    table.add_row(*(str(v) for v in report.summary().values()))
    console.print(table)
    _print_changes(report)
    console.print(report.line(), highlight=False)


def watch_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    collection: CollOpt = "default",
    glob: GlobOpt = None,
    settle: Annotated[float, typer.Option(help="Seconds a file must stay unchanged before it is read.")] = 1.0,
    home: HomeOpt = None,
) -> None:
    """Keep the collection in sync as files change, until Ctrl-C or SIGTERM."""
    from rag_platform.ingest.watch import watch_folders

    rag = _open(home)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        console.print(f"[yellow]{signal.Signals(signum).name}: stopping after the current pass")
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    names = ", ".join(_short(str(p)) for p in paths)
    with console.status(f"watching {names} for '{collection}': first pass") as status:

        def on_sync(report: Any) -> None:
            if report.changed or report.failed:
                _print_changes(report)
                console.print(f"{time.strftime('%H:%M:%S')} {report.line()}", highlight=False)
            status.update(f"watching {names} for '{collection}' · last sync {time.strftime('%H:%M:%S')}: "
                          f"{report.line()} · Ctrl-C to stop")

        try:
            passes = watch_folders(rag, paths, collection=collection, glob=glob, stop=stop, on_sync=on_sync,
                                   settle_s=settle)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
    console.print(f"stopped after {passes} sync passes")
