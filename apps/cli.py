"""`rag` command line: a thin shell over the Python API (rag.RAG)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rag import RAG, Filters, RagError, Settings
from rag_platform.apps.output import (
    Paths,
    answer_json,
    document_json,
    hit_json,
    make_console,
    print_answer_details,
    print_collections,
    print_documents,
    print_hits,
    print_json,
    print_report,
    report_json,
)

app = typer.Typer(help="Ingest documents, search them, and get answers that cite their sources.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Ledger database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = make_console()
err = make_console(stderr=True)

HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]
CollOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts) instead of tables.")]
KOpt = Annotated[int, typer.Option("-k", min=1, max=1000, help="Number of passages.")]


def _open(home: Path | None, *, create: bool = True) -> RAG:
    """The RAG of `home` (else the settings' home); read-only commands pass create=False."""
    return RAG.open(home, create=create) if home else RAG.open(settings=Settings(), create=create)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    collection: CollOpt = "default",
    glob: Annotated[str | None, typer.Option(help="Only files matching this pattern, e.g. '*.pdf'.")] = None,
    prune: Annotated[bool, typer.Option(help="Remove documents whose files are gone.")] = False,
    force: Annotated[bool, typer.Option(help="Re-process files even when unchanged.")] = False,
    engine: Annotated[str, typer.Option(help="local (this process) or ray (Ray Data: load, chunk, embed).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (engine ray); default: start Ray "
                                                     "locally.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Embedding actors (engine ray).")] = 2,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load, chunk, embed and index files. Unchanged files are skipped."""
    console = make_console()  # per call: COLUMNS and the output stream are read now
    from rag_platform.apps.progress import RichProgress

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine {engine!r}: use local or ray")
    if address and engine != "ray":
        raise typer.BadParameter("--address needs --engine ray")
    options = {"address": address, "workers": workers} if engine == "ray" else {}
    rag = _open(home)
    shown = Paths(paths)
    with RichProgress(make_console(stderr=True) if as_json else console) as bar:
        report = rag.ingest(paths, collection=collection, glob=glob, prune=prune, force=force, progress=bar,
                            engine=engine, **options)
    if as_json:
        print_json(report_json(report, shown))
    else:
        print_report(console, report, shown, collection)


@app.command()
def search(
    query: str,
    collection: CollOpt = "default",
    k: KOpt = 5,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or bm25 (default: the settings', hybrid).")] = None,
    fusion: Annotated[str | None, typer.Option(help="convex or rrf (default: the settings', convex).")] = None,
    source: Annotated[str | None, typer.Option(help="Only sources matching this glob.")] = None,
    rerank: Annotated[bool, typer.Option(help="Rerank the fused top N with the cross-encoder.")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search: ranked passages with their sources and each retriever's rank."""
    console = make_console()  # per call: COLUMNS and the output stream are read now
    rag = _open(home, create=False)
    filters = Filters(source_glob=source) if source else None
    hits = rag.search(query, collection=collection, k=k, mode=mode, fusion=fusion, filters=filters,
                      rerank=rerank or None)
    shown = Paths()
    if as_json:
        print_json({"query": query, "collection": collection, "mode": mode or rag.settings.retrieval.mode,
                    "hits": [hit_json(h, shown) for h in hits]})
    elif not hits:
        console.print("[yellow]No passages matched.")
    else:
        print_hits(console, hits, shown, f"{mode or rag.settings.retrieval.mode} search in '{collection}': {query}")


@app.command()
def ask(
    question: str,
    collection: CollOpt = "default",
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="Passages retrieved as sources.")] = 5,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", "-p", help="Provider to use (repeat to set the fallback order).")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print the answer as it is generated.")] = True,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse a stored answer.")] = True,
    rerank: Annotated[bool, typer.Option(help="Rerank sources with the cross-encoder.")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer from the collection's documents; every claim cites a numbered source, and each citation is checked."""
    console = make_console()  # per call: COLUMNS and the output stream are read now
    rag = _open(home, create=False)
    stream = stream and not as_json
    result = rag.ask(question, collection=collection, k=k, providers=provider, stream=stream, use_cache=cache,
                     rerank=rerank or None)
    if stream:
        for piece in result:
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        answer = result.answer
    else:
        answer = result
        if as_json:
            print_json(answer_json(answer, Paths()))
            return
        console.print(answer.text, markup=False, highlight=False)
    print_answer_details(console, answer, Paths())


@app.command()
def collections(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List collections with document and chunk counts (reads the ledger only)."""
    console = make_console()  # per call: COLUMNS and the output stream are read now
    rows = _open(home, create=False).collections()
    if as_json:
        print_json({"collections": rows})
    else:
        print_collections(console, rows)


@app.command()
def docs(collection: Annotated[str, typer.Argument()], home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List the documents of a collection, with status and errors (reads the ledger only)."""
    console = make_console()  # per call: COLUMNS and the output stream are read now
    rows = _open(home, create=False).documents(collection)
    if as_json:
        print_json({"collection": collection, "documents": [document_json(d, Paths()) for d in rows]})
    else:
        print_documents(console, rows, Paths(), collection)


@app.command()
def reindex(collection: Annotated[str, typer.Argument()], home: HomeOpt = None) -> None:
    """Rebuild a collection's index from the ledger."""
    manifest = _open(home, create=False).reindex(collection)
    console.print(f"rebuilt '{collection}': {manifest['chunks']} chunks at ledger revision {manifest['ledger_revision']}")


@app.command("delete")
def delete_collection(collection: Annotated[str, typer.Argument()], home: HomeOpt = None,
                      yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a collection, its documents and its index."""
    if not yes and not typer.confirm(f"Delete collection '{collection}'?"):
        raise typer.Exit(1)
    _open(home, create=False).delete_collection(collection)
    console.print(f"deleted '{collection}'")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head", home: HomeOpt = None) -> None:
    """Apply migrations (also done automatically on first use)."""
    from rag.store.db import current_revision, make_engine, upgrade

    settings = Settings(**({"home": home} if home else {}))
    engine = make_engine(settings.database_url)
    upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current(home: HomeOpt = None) -> None:
    """Show the database's migration revision."""
    from rag.api import require_home
    from rag.store.db import current_revision, head_revision, make_engine

    settings = Settings(**({"home": home} if home else {}))
    require_home(settings)  # reading the revision creates nothing
    console.print(f"current {current_revision(make_engine(settings.database_url))}  head {head_revision()}")


from rag_platform.apps.cli_api import keys_app, serve  # the HTTP API's commands

app.add_typer(keys_app, name="keys")
app.command()(serve)

from rag_platform.apps.cli_app import app_cmd  # the Streamlit app
from rag_platform.apps.cli_eval import eval_app, finetune_cmd  # noqa: E402 - evaluation commands
from rag_platform.apps.cli_mcp import mcp_cmd  # noqa: E402 - the MCP server over stdio
from rag_platform.apps.cli_sync import sync_cmd, watch_cmd  # noqa: E402 - rag sync, rag watch

app.command("sync")(sync_cmd)
app.command("watch")(watch_cmd)
app.add_typer(eval_app, name="eval")



@app.command("compact")
def compact(collection: Annotated[str, typer.Argument()], home: HomeOpt = None) -> None:
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


app.command("finetune")(finetune_cmd)
app.command("app")(app_cmd)
app.command("mcp")(mcp_cmd)


def main() -> None:
    """Entry point that turns our errors into one clear line and exit code 2.

    The command owns its process, so it (not the library) tells Hugging Face libraries to stay offline
    unless `RAG_OFFLINE=false`; the library passes `local_files_only` to each loader either way.
    """
    if os.environ.get("RAG_OFFLINE", "true").strip().lower() not in ("0", "false", "no", "off"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        app()
    except RagError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
