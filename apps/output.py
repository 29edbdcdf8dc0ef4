"""What the `rag` command prints: readable tables on a terminal and in logs, JSON for scripts.

Output that is not a terminal (CI logs, `| tee`) gets a wide page unless `COLUMNS`
says otherwise, and no column is cut with an ellipsis: a path folds onto the next
line instead, so two files never look the same. Paths are shown as the user
wrote them: relative to the folder they passed, else to the working directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rag_platform.ingest.ocr import ocr_note

if TYPE_CHECKING:
    from rag import Answer, IngestReport

PIPE_WIDTH = 160  # columns when stdout is not a terminal and COLUMNS is not set


def make_console(*, stderr: bool = False) -> Console:
    """A Console that honours COLUMNS and is wide (not 80 columns) when it writes to a file or pipe."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    columns = os.environ.get("COLUMNS", "")
    if not columns.isdigit() and not stream.isatty():
        width = PIPE_WIDTH
    return Console(stderr=stderr, width=width)


class Paths:
    """Shows a stored (absolute) source path the way the user refers to it.

    Example:
        >>> Paths(["../data"]).show(str(Path("../data/a/b.pdf").resolve()))
        '../data/a/b.pdf'
    """

    def __init__(self, given: Iterable[str | Path] = ()) -> None:
        self.roots = [(Path(p), Path(p).resolve()) for p in given]
        self.cwd = Path.cwd().resolve()

    def show(self, source: str) -> str:
        path = Path(source)
        if not path.is_absolute():
            return source
        for typed, root in self.roots:
            if path == root:
                return str(typed)
            if path.is_relative_to(root):
                return str(typed / path.relative_to(root))
        if path.is_relative_to(self.cwd):
            return str(path.relative_to(self.cwd))
        return source


def to_json(value: Any) -> Any:
    """Dataclasses, paths, datetimes and numpy scalars as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def print_json(value: Any) -> None:
    """One JSON document on stdout (no colours, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(to_json(value), ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


# -- ingest ------------------------------------------------------------------------------------------
def report_json(report: IngestReport, paths: Paths) -> dict[str, Any]:
    """An IngestReport for scripts: the summary, every file (as the user named it) and the timings."""
    return {"run_id": report.run_id, "collection": report.collection, "summary": report.summary(),
            "files": [{"file": paths.show(f.source), "source": f.source, "outcome": f.outcome, "reason": f.reason,
                       "note": f.note, "chunks": f.chunks, "seconds": round(f.seconds, 4)} for f in report.files],
            "missing": [paths.show(m) for m in report.missing], "chunks_added": report.chunks_added,
            "tokens_embedded": report.tokens_embedded, "index_rebuilt": report.index_rebuilt,
            "seconds": round(report.seconds, 3), "stage_seconds": dict(report.stage_seconds)}


def print_report(console: Console, report: IngestReport, paths: Paths, collection: str) -> None:
    """The per-file table (skipped files left out of long runs), the totals, and the deleted-files hint."""
    table = Table(title=f"Ingest run {report.run_id} into '{collection}'")
    table.add_column("file", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("chunks", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    style = {"ok": "green", "skipped": "dim", "failed": "red", "removed": "yellow"}
    hidden = 0
    for f in report.files:
        if f.outcome == "skipped" and len(report.files) > 30:
            hidden += 1
            continue
        note = f.note  # a library warning raised while parsing this file
        reason = escape(f.reason) if f.reason else (f"[dim]note: {escape(note)}[/dim]" if note else "")
        table.add_row(escape(paths.show(f.source)), f"[{style[f.outcome]}]{f.outcome}", str(f.chunks), reason)
    console.print(table)
    if hidden:
        console.print(f"[dim]{hidden} unchanged files not listed (--json lists every file)")
    s = report.summary()
    rate = report.tokens_embedded / report.stage_seconds["embed"] if report.stage_seconds["embed"] else 0
    console.print(f"ok {s['ok']}  skipped {s['skipped']}  failed {s['failed']}  removed {s['removed']}  "
                  f"chunks +{report.chunks_added}  {report.seconds:.1f}s  "
                  f"(embed {rate:,.0f} tokens/s{', index rebuilt' if report.index_rebuilt else ''})")
    missing = report.missing
    if missing:
        some = ", ".join(paths.show(m) for m in missing[:3]) + (", ..." if len(missing) > 3 else "")
        what = "1 file no longer exists but is" if len(missing) == 1 else f"{len(missing)} files no longer exist but are"
        console.print(f"[yellow]{what} still searchable ({escape(some)}): run the same command with --prune "
                      "to remove them")


# -- search and ask --------------------------------------------------------------------------------------
def hit_json(hit: Any, paths: Paths) -> dict[str, Any]:
    return {**to_json(hit), "file": paths.show(hit.source)}


def print_hits(console: Console, hits: Sequence[Any], paths: Paths, title: str) -> None:
    """One row per hit: rank, score, file (and section), page, each retriever's rank, the passage."""
    table = Table(title=title, show_lines=True)
    table.add_column("#", no_wrap=True)
    table.add_column("score", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("page", no_wrap=True)
    table.add_column("ranks", no_wrap=True)
    table.add_column("passage", overflow="fold")
    for i, h in enumerate(hits, 1):
        ranks = " ".join(f"{n}:{r}" for n, r in sorted(h.ranks.items()))
        where = " > ".join(h.heading_path)
        snippet = " ".join(h.text.split())[:300]
        table.add_row(str(i), f"{h.score:.4f}", escape(paths.show(h.source)) + (f"\n[dim]{escape(where)}" if where else ""),
                      str(h.page) if h.page is not None else "", ranks, escape(snippet))
    console.print(table)


def answer_json(answer: Answer, paths: Paths) -> dict[str, Any]:
    data = to_json(answer.to_json())
    for src in data.get("sources", []):
        src["file"] = paths.show(src["source"])
    data["failed_attempts"] = failed_attempts(answer)
    return dict(data)


def failed_attempts(answer: Any) -> list[str]:
    from rag.llm.fallback import describe_failures

    return describe_failures(list(answer.attempts))


def print_answer_details(console: Console, answer: Any, paths: Paths) -> None:
    """The sources table (cited, supported), dropped citations, who answered, timings, earlier failures."""
    cited: dict[int, bool] = {}
    for c in answer.citations:
        prev = cited.get(c.n)
        cited[c.n] = (prev is None or prev) and c.supported
    table = Table(title="Sources")
    table.add_column("n", no_wrap=True)
    table.add_column("document", overflow="fold")
    table.add_column("page", no_wrap=True)
    table.add_column("section", overflow="fold")
    table.add_column("cited", no_wrap=True)
    table.add_column("supported", no_wrap=True)
    for n, h in enumerate(answer.sources, 1):
        ok = cited.get(n)
        mark = "[green]yes" if ok else ("[red]no" if ok is False else "")
        page = (str(h.page) if h.page is not None else "") + ocr_note(h.metadata, h.page)  # OCR'd text says so
        table.add_row(str(n), escape(paths.show(h.source)), escape(page),
                      escape(" > ".join(h.heading_path)), "yes" if n in cited else "", mark)
    console.print(table)
    if answer.invalid_citations:
        console.print(f"[yellow]dropped citations to missing sources: {answer.invalid_citations}")
    failed = failed_attempts(answer)
    ttft = f"  first token {answer.ttft_s:.2f}s" if answer.ttft_s is not None else ""
    if answer.abstained:  # an abstention has no groundedness to show
        trust = "[yellow]abstained[/yellow]"
    else:
        low = "[yellow]low confidence[/yellow]  " if answer.low_confidence else ""
        trust = f"{low}groundedness {answer.groundedness or 0.0:.2f}"
    console.print(f"answered by [bold]{escape(answer.provider)}[/bold] ({escape(answer.model)})  "
                  f"{trust}  {answer.latency_s:.2f}s{ttft}  "
                  f"tokens {answer.tokens_in}/{answer.tokens_out}  ${answer.cost_usd:.4f}"
                  f"{'  (cached)' if answer.cached else ''}"
                  + (f"\n[dim]failed before: {escape('; '.join(failed))}" if failed else ""))


# -- listings ------------------------------------------------------------------------------------------
def print_collections(console: Console, rows: Sequence[Any]) -> None:
    table = Table(title="Collections")
    for col in ("name", "documents", "failed", "chunks", "revision", "embedder"):
        table.add_column(col, overflow="fold")
    for c in rows:
        table.add_row(escape(c.name), str(c.documents), str(c.failed), str(c.chunks), str(c.revision),
                      escape(c.embedder_id or ""))
    console.print(table)
    if not rows:
        console.print("[dim]no collections yet: rag ingest PATH --collection NAME")


def document_json(d: Any, paths: Paths) -> dict[str, Any]:
    return {"id": d.id, "file": paths.show(d.source_uri), "source": d.source_uri, "title": d.title,
            "media_type": d.media_type, "size_bytes": d.size_bytes, "status": d.status, "chunks": d.chunk_count,
            "error": d.error, "updated_at": d.updated_at.isoformat() if d.updated_at else None}


def print_documents(console: Console, docs: Sequence[Any], paths: Paths, collection: str) -> None:
    table = Table(title=f"Documents in '{collection}'")
    table.add_column("id", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("chunks", justify="right", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("error", overflow="fold")
    for d in docs:
        table.add_row(str(d.id), escape(paths.show(d.source_uri)), d.media_type, d.status, str(d.chunk_count),
                      d.updated_at.strftime("%Y-%m-%d %H:%M"), escape(d.error or ""))
    console.print(table)
