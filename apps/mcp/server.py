"""The MCP server over one `RAG`: tools `search`, `ask`, `list_collections`, `list_documents`, `ingest`,
and `rag://COLLECTION/DOCUMENT_ID[/CHUNK_ID]` resources, on the official `mcp` SDK (`MCPServer`).

The same server runs over stdio (`rag mcp`, the local user) and over streamable HTTP inside
`rag serve` (`apps.mcp.http`, each call authenticated by its API key). Who may do what is asked of
`resolve(ctx)`, which returns the caller's `KeyInfo`: the REST API's keys and scopes, unchanged.
A refusal or a bad argument comes back as an MCP tool error whose text is the CLI's message.

Example:
    >>> server = build_server(rag, resolve=lambda ctx: LOCAL_READER)   # doctest: +SKIP
    >>> server.run("stdio")                                              # doctest: +SKIP
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at runtime.

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from rag import RAG, Filters, RagError
from rag.types import SourceText
from rag_platform.apps.answer_view import answer_extension, hit_json
from rag_platform.apps.api.auth import KeyInfo
from rag_platform.apps.api.limits import ApiError

LOCAL_READER = KeyInfo(id=0, name="local", prefix="local", key_hash="", role="read", collections=("*",))
# `rag mcp --allow-write`: may create collections
LOCAL_WRITER = KeyInfo(id=0, name="local", prefix="local", key_hash="", role="admin", collections=("*",))
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
INSTRUCTIONS = (
    "Search and answer questions over the user's document collections. Use `ask` for a cited answer "
    "(its [n] markers point at the numbered sources; `verified` says whether the citation checker found the "
    "cited passage supports the sentence); use `search` for raw passages. Open a passage with its rag:// URI.")


@dataclass(frozen=True)
class ServerOptions:
    """What this server allows beyond reading: the folders `ingest` may read, and why writes are off."""

    default_collection: str = "default"
    roots: tuple[Path, ...] = ()
    write_refusal: str | None = None
    """When set, `ingest` is refused with this message whatever the caller's key (stdio without --allow-write)."""
    on_answer: Callable[[Any], None] = field(default=lambda answer: None)


class SearchFilters(BaseModel):
    """Narrow the search to some documents; every given condition must hold."""

    source_glob: str | None = Field(None, description="Only sources matching this glob, e.g. '*.pdf' or 'docs/*'.")
    media_types: list[str] = Field(default_factory=list, description="e.g. ['application/pdf', 'text/markdown'].")
    tags: list[str] = Field(default_factory=list, description="Documents carrying all of these tags.")
    document_ids: list[int] = Field(default_factory=list, description="Only these document ids.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Metadata fields that must equal these values.")

    def to_filters(self) -> Filters:
        return Filters(source_glob=self.source_glob, media_types=tuple(self.media_types), tags=tuple(self.tags),
                       document_ids=tuple(self.document_ids), metadata=tuple(self.metadata.items()))


class TextDocument(BaseModel):
    """A document sent as text (no file on the server needed)."""

    name: str = Field(min_length=1, max_length=300, description="A name that identifies it, e.g. 'notes/q3.md'; "
                      "sending the same name again replaces it when its text changed.")
    text: str = Field(min_length=1, max_length=5_000_000)
    title: str | None = None


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """Our errors, and the key checks' refusals, as MCP tool errors carrying the same one-line message."""
    try:
        yield
    except RagError as e:
        raise ToolError(str(e)) from None
    except ApiError as e:
        raise ToolError(e.message) from None


def build_server(rag: RAG, resolve: Callable[[Context], KeyInfo], options: ServerOptions | None = None) -> MCPServer:
    """An `MCPServer` whose tools and resources act on `rag` as the caller that `resolve(ctx)` returns."""
    opts = options or ServerOptions()
    server: MCPServer = MCPServer("rag", instructions=INSTRUCTIONS, log_level="WARNING")
    Collection = Annotated[str | None, Field(description=f"Collection name (default {opts.default_collection!r}); "
                                                         "list_collections shows them.")]

    def reader(ctx: Context, collection: str | None) -> str:
        coll = collection or opts.default_collection
        resolve(ctx).require(coll, "read")
        return coll

    @server.tool(annotations=READ_ONLY, description="Hybrid (dense + BM25) search in a collection. Returns ranked passages with their "
                 "source, page, section, scores and a rag:// URI to open the whole passage.")
    def search(query: Annotated[str, Field(min_length=1, max_length=4000, description="What to look for.")],
               ctx: Context, collection: Collection = None,
               k: Annotated[int, Field(ge=1, le=50, description="Number of passages.")] = 5,
               mode: Annotated[Literal["hybrid", "dense", "bm25"] | None, Field(
                   description="Retrievers: hybrid (default: dense + BM25 fused), dense (meaning) or bm25 (words).")] = None,
               filters: Annotated[SearchFilters | None, Field(description="Only passages of documents matching all "
                                                                          "of these.")] = None) -> dict[str, Any]:
        with _as_tool_errors():
            coll = reader(ctx, collection)
            hits = rag.search(query, collection=coll, k=k, mode=mode,
                              filters=filters.to_filters() if filters else None)
            return {"collection": coll, "query": query,
                    "hits": [{"rank": i, **hit_json(h, coll)} for i, h in enumerate(hits, 1)]}

    @server.tool(annotations=READ_ONLY, description="Answer a question from a collection's documents. The answer cites numbered sources "
                 "as [n]; `sources[n-1]` is [n], with `verified` true when the citation checker found the passage "
                 "supports the cited sentence. The answer says so when the sources do not hold it.")
    def ask(question: Annotated[str, Field(min_length=1, max_length=4000, description="A standalone question.")],
            ctx: Context, collection: Collection = None,
            k: Annotated[int | None, Field(ge=1, le=50, description="Passages retrieved as sources.")] = None,
            providers: Annotated[list[str] | None, Field(description="Provider names in fallback order "
                                                                     "(default: the configured chain).")] = None,
            ) -> dict[str, Any]:
        with _as_tool_errors():
            coll = reader(ctx, collection)
            answer = rag.ask(question, collection=coll, k=k, providers=providers)
            opts.on_answer(answer)
            return {"answer": answer.text, **answer_extension(answer, coll, question)}

    @server.tool(annotations=READ_ONLY, description="The collections this caller may read, with document and chunk counts.")
    def list_collections(ctx: Context) -> dict[str, Any]:
        with _as_tool_errors():
            key = resolve(ctx)
            return {"collections": [{"name": c.name, "documents": c.documents, "failed": c.failed,
                                     "chunks": c.chunks, "revision": c.revision}
                                    for c in rag.collections() if key.can(c.name, "read")]}

    @server.tool(annotations=READ_ONLY, description="The documents of a collection: id, source, title, type, status (ok or failed, with "
                 "the reason) and chunk count. Open one as rag://COLLECTION/DOCUMENT_ID.")
    def list_documents(ctx: Context, collection: Collection = None) -> dict[str, Any]:
        with _as_tool_errors():
            coll = reader(ctx, collection)
            return {"collection": coll, "documents": [
                {"id": d.id, "uri": f"rag://{coll}/{d.id}", "source": d.source_uri, "title": d.title,
                 "media_type": d.media_type, "status": d.status, "error": d.error, "chunks": d.chunk_count,
                 "updated_at": d.updated_at.isoformat() if d.updated_at else None} for d in rag.documents(coll)]}

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False), description="Add documents to a collection (needs write permission): files or folders on the "
                 "server, only under the folders the server allows, and/or documents sent as text. Unchanged "
                 "documents are skipped. Returns the per-file report.")
    def ingest(ctx: Context, collection: Collection = None,
               paths: Annotated[list[str], Field(description="Files or folders on the server (absolute, or relative "
                                                             "to the first allowed folder).")] = [],  # noqa: B006
               documents: Annotated[list[TextDocument], Field(description="Documents sent as text.")] = [],  # noqa: B006
               ) -> dict[str, Any]:
        with _as_tool_errors():
            coll = collection or opts.default_collection
            if opts.write_refusal:
                raise ToolError(opts.write_refusal)
            key = resolve(ctx)
            key.require(coll, "write")
            if not paths and not documents:
                raise ToolError("nothing to ingest: give `paths` (server files) or `documents` (texts)")
            if coll not in rag.store.collection_names() and not key.can(coll, "admin"):
                raise ToolError(f"no collection named {coll!r}; an admin key creates it (POST /v1/collections)")
            files: list[dict[str, Any]] = []
            summary: dict[str, int] = {}
            chunks = 0
            reports = []
            if paths:
                reports.append(rag.ingest(_allowed(paths, opts.roots), collection=coll))
            if documents:
                texts = [SourceText(source=f"mcp:{d.name}", text=d.text, title=d.title or d.name,
                                    media_type="text/markdown" if d.name.endswith(".md") else "text/plain")
                         for d in documents]
                reports.append(rag.ingest_texts(texts, collection=coll))
            for report in reports:
                files += [{"source": f.source, "outcome": f.outcome, "chunks": f.chunks, "reason": f.reason}
                          for f in report.files]
                for k, v in report.summary().items():
                    summary[k] = summary.get(k, 0) + v
                chunks += report.chunks_added
            return {"collection": coll, "summary": summary, "chunks_added": chunks, "files": files}

    @server.resource("rag://{collection}/{document_id}/{chunk_id}", name="chunk", mime_type="text/plain",
                     description="One passage (chunk) with its source, page and section: what [n] cites.")
    def chunk(collection: str, document_id: str, chunk_id: str, ctx: Context) -> str:
        from rag_platform.apps.mcp.resources import read_chunk

        with _as_resource_errors():
            resolve(ctx).require(collection, "read")
            return read_chunk(rag, collection, _int(document_id, "document id"), _int(chunk_id, "chunk id"))

    @server.resource("rag://{collection}/{document_id}", name="document", mime_type="application/json",
                     description="A document: its source, status and the rag:// URIs of its passages in order.")
    def document(collection: str, document_id: str, ctx: Context) -> str:
        from rag_platform.apps.mcp.resources import read_document

        with _as_resource_errors():
            resolve(ctx).require(collection, "read")
            return read_document(rag, collection, _int(document_id, "document id"))

    return server


def _int(value: str, what: str) -> int:
    if not value.isdigit():
        raise ResourceError(f"{what} {value!r} is not a number; URIs look like rag://COLLECTION/DOCUMENT_ID/CHUNK_ID")
    return int(value)


@contextmanager
def _as_resource_errors() -> Iterator[None]:
    try:
        yield
    except RagError as e:
        raise ResourceError(str(e)) from None
    except ApiError as e:
        raise ResourceError(e.message) from None


def _allowed(paths: list[str], roots: tuple[Path, ...]) -> list[Path]:
    """The paths, resolved, when each lies under an allowed folder; else a refusal naming the path and the fix."""
    if not roots:
        raise ToolError("ingesting server files is off: no folder is allowed (stdio: `rag mcp --allow-write "
                        "--allow-dir FOLDER`; HTTP: RAG_MCP__ALLOWED_DIRS); send the documents as text instead")
    out = []
    for raw in paths:
        p = Path(raw).expanduser()
        p = (p if p.is_absolute() else roots[0] / p).resolve()
        if not any(p.is_relative_to(r) for r in roots):
            raise ToolError(f"path {raw!r} is outside the folders ingest may read "
                            f"({', '.join(str(r) for r in roots)}); move it there or allow its folder")
        out.append(p)
    return out
