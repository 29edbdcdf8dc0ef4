"""`rag` command line: a thin shell over the Python API (rag.RAG)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rag import RAG, Filters, RagError, Settings

app = typer.Typer(help="Ingest documents, search them, and get answers that cite their sources.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Ledger database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]
CollOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]


def _open(home: Path | None) -> RAG:
    return RAG.open(home) if home else RAG.open(settings=Settings())


def _short(source: str) -> str:
    try:
        return os.path.relpath(source)
    except ValueError:
        return source


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
    workers: Annotated[int, typer.Option(help="Embedding actors (engine ray).")] = 2,
    home: HomeOpt = None,
) -> None:
    """Load, chunk, embed and index files. Unchanged files are skipped."""
    from apps.progress import RichProgress

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine {engine!r}: use local or ray")
    if address and engine != "ray":
        raise typer.BadParameter("--address needs --engine ray")
    options = {"address": address, "workers": workers} if engine == "ray" else {}
    rag = _open(home)
    with RichProgress(console) as bar:
        report = rag.ingest(paths, collection=collection, glob=glob, prune=prune, force=force, progress=bar,
                            engine=engine, **options)
    table = Table(title=f"Ingest run {report.run_id} into '{collection}'")
    for col in ("file", "outcome", "chunks", "reason"):
        table.add_column(col)
    style = {"ok": "green", "skipped": "dim", "failed": "red", "removed": "yellow"}
    for f in report.files:
        if f.outcome == "skipped" and len(report.files) > 30:
            continue
        table.add_row(_short(f.source), f"[{style[f.outcome]}]{f.outcome}", str(f.chunks), f.reason or "")
    console.print(table)
    s = report.summary()
    rate = report.tokens_embedded / report.stage_seconds["embed"] if report.stage_seconds["embed"] else 0
    console.print(f"ok {s['ok']}  skipped {s['skipped']}  failed {s['failed']}  removed {s['removed']}  "
                  f"chunks +{report.chunks_added}  {report.seconds:.1f}s  "
                  f"(embed {rate:,.0f} tokens/s{', index rebuilt' if report.index_rebuilt else ''})")


@app.command()
def search(
    query: str,
    collection: CollOpt = "default",
    k: Annotated[int, typer.Option("-k", help="Number of passages.")] = 5,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or bm25 (default: the settings', hybrid).")] = None,
    fusion: Annotated[str | None, typer.Option(help="convex or rrf (default: the settings', convex).")] = None,
    source: Annotated[str | None, typer.Option(help="Only sources matching this glob.")] = None,
    rerank: Annotated[bool, typer.Option(help="Rerank the fused top N with the cross-encoder.")] = False,
    home: HomeOpt = None,
) -> None:
    """Hybrid search: ranked passages with their sources and each retriever's rank."""
    rag = _open(home)
    filters = Filters(source_glob=source) if source else None
    hits = rag.search(query, collection=collection, k=k, mode=mode, fusion=fusion, filters=filters,
                      rerank=rerank or None)
    if not hits:
        console.print("[yellow]No passages matched.")
        return
    table = Table(title=f"{mode or rag.settings.retrieval.mode} search in '{collection}': {query}", show_lines=True)
    for col in ("#", "score", "source", "page", "ranks", "passage"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        ranks = " ".join(f"{n}:{r}" for n, r in sorted(h.ranks.items()))
        where = " > ".join(h.heading_path)
        snippet = " ".join(h.text.split())[:300]
        table.add_row(str(i), f"{h.score:.4f}", _short(h.source) + (f"\n[dim]{where}" if where else ""),
                      str(h.page or ""), ranks, snippet)
    console.print(table)


@app.command()
def ask(
    question: str,
    collection: CollOpt = "default",
    k: Annotated[int, typer.Option("-k", help="Passages retrieved as sources.")] = 5,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", "-p", help="Provider to use (repeat to set the fallback order).")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print the answer as it is generated.")] = True,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse a stored answer.")] = True,
    rerank: Annotated[bool, typer.Option(help="Rerank sources with the cross-encoder.")] = False,
    home: HomeOpt = None,
) -> None:
    """Answer from the collection's documents; every claim cites a numbered source, and each citation is checked."""
    rag = _open(home)
    result = rag.ask(question, collection=collection, k=k, providers=provider, stream=stream, use_cache=cache,
                     rerank=rerank or None)
    if stream:
        for piece in result:
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        answer = result.answer
    else:
        answer = result
        console.print(answer.text, markup=False, highlight=False)
    _print_answer_details(answer)


def _print_answer_details(answer: Any) -> None:
    cited = {}
    for c in answer.citations:
        prev = cited.get(c.n)
        cited[c.n] = (prev is None or prev) and c.supported
    table = Table(title="Sources", show_lines=False)
    for col in ("n", "document", "page", "section", "cited", "supported"):
        table.add_column(col, overflow="fold")
    for n, h in enumerate(answer.sources, 1):
        ok = cited.get(n)
        mark = "[green]yes" if ok else ("[red]no" if ok is False else "")
        table.add_row(str(n), _short(h.source), str(h.page or ""), " > ".join(h.heading_path),
                      "yes" if n in cited else "", mark)
    console.print(table)
    if answer.invalid_citations:
        console.print(f"[yellow]dropped citations to missing sources: {answer.invalid_citations}")
    failed = [a for a in answer.attempts if not a.ok]
    tried = "; ".join(f"{a.provider}: {a.error}" for a in failed)
    ttft = f"  first token {answer.ttft_s:.2f}s" if answer.ttft_s is not None else ""
    console.print(f"answered by [bold]{answer.provider}[/bold] ({answer.model})  "
                  f"groundedness {answer.groundedness:.2f}  {answer.latency_s:.2f}s{ttft}  "
                  f"tokens {answer.tokens_in}/{answer.tokens_out}  ${answer.cost_usd:.4f}"
                  f"{'  (cached)' if answer.cached else ''}" + (f"\n[dim]failed before: {tried}" if failed else ""))


@app.command()
def collections(home: HomeOpt = None) -> None:
    """List collections with document and chunk counts."""
    rows = _open(home).collections()
    table = Table(title="Collections")
    for col in ("name", "documents", "failed", "chunks", "revision", "embedder"):
        table.add_column(col)
    for c in rows:
        table.add_row(c.name, str(c.documents), str(c.failed), str(c.chunks), str(c.revision), c.embedder_id or "")
    console.print(table)


@app.command()
def docs(collection: Annotated[str, typer.Argument()], home: HomeOpt = None) -> None:
    """List the documents of a collection, with status and errors."""
    table = Table(title=f"Documents in '{collection}'")
    for col in ("id", "source", "type", "status", "chunks", "updated", "error"):
        table.add_column(col, overflow="fold")
    for d in _open(home).documents(collection):
        table.add_row(str(d.id), _short(d.source_uri), d.media_type, d.status, str(d.chunk_count),
                      d.updated_at.strftime("%Y-%m-%d %H:%M"), d.error or "")
    console.print(table)


@app.command()
def reindex(collection: Annotated[str, typer.Argument()], home: HomeOpt = None) -> None:
    """Rebuild a collection's index from the ledger."""
    manifest = _open(home).reindex(collection)
    console.print(f"rebuilt '{collection}': {manifest['chunks']} chunks at ledger revision {manifest['ledger_revision']}")


@app.command("delete")
def delete_collection(collection: Annotated[str, typer.Argument()], home: HomeOpt = None,
                      yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a collection, its documents and its index."""
    if not yes and not typer.confirm(f"Delete collection '{collection}'?"):
        raise typer.Exit(1)
    _open(home).delete_collection(collection)
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
    from rag.store.db import current_revision, head_revision, make_engine

    settings = Settings(**({"home": home} if home else {}))
    console.print(f"current {current_revision(make_engine(settings.database_url))}  head {head_revision()}")


from apps.cli_api import keys_app, serve  # the HTTP API's commands

app.add_typer(keys_app, name="keys")
app.command()(serve)

from apps.cli_app import app_cmd  # the Streamlit app
from apps.cli_eval import eval_app, finetune_cmd  # noqa: E402 - evaluation commands

app.add_typer(eval_app, name="eval")

from apps.cli_index import compact_cmd  # noqa: E402 - index maintenance

app.command("compact")(compact_cmd)
app.command("finetune")(finetune_cmd)
app.command("app")(app_cmd)


def main() -> None:
    """Entry point that turns our errors into one clear line and exit code 2."""
    try:
        app()
    except RagError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
