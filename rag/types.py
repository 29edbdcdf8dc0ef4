"""Plain data passed between the steps. No I/O here.

The flow is `ParsedDocument` (a loader's output) -> `ChunkDraft` (the
chunker's output) -> ledger rows -> `Hit` (a retrieval result) ->
`Message`s (the prompt) -> `Completion` (a provider's answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class Segment:
    """A structural span of a document's text: one page, one section, one slide.

    `start`/`end` are character offsets into `ParsedDocument.text`. Chunks
    never cross a segment boundary, so every chunk has one page and one
    heading path.
    """

    start: int
    end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    kind: str = "text"  # "row": one table row, chunked alone and never merged (ingest.tables)


@dataclass(frozen=True)
class ParsedDocument:
    """A loaded document: its full text and the structure inside it."""

    source: str
    media_type: str
    text: str
    segments: tuple[Segment, ...]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it has a ledger id."""

    ordinal: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceText:
    """Text that arrives already loaded (a JSONL corpus, a LangChain Document)."""

    source: str
    text: str
    title: str | None = None
    media_type: str = "text/plain"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with everything a citation or a debugging user needs.

    `ranks`/`scores` hold each retriever's own 1-based rank and raw score
    (`{"dense": ..., "bm25": ...}`); a retriever that did not return the chunk
    is absent from the dict.
    """

    chunk_id: int
    score: float
    text: str
    document_id: int
    source: str
    title: str | None
    page: int | None
    heading_path: tuple[str, ...]
    char_start: int
    char_end: int
    media_type: str
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class DocumentInfo:
    """One document of a collection as the ledger records it (`RAG.documents`): plain data, no session."""

    id: int
    source_uri: str
    title: str | None
    media_type: str
    size_bytes: int
    status: str
    """`ok` or `failed` (then `error` says why)."""
    error: str | None
    chunk_count: int
    content_hash: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CollectionInfo:
    """One collection with its document and chunk counts (`RAG.collections`)."""

    name: str
    documents: int
    failed: int
    chunks: int
    revision: int
    embedder_id: str | None


@dataclass(frozen=True)
class CollectionRecord:
    """One collection's row without counts: cheap to list (the OpenAI-compatible `/v1/models`)."""

    name: str
    revision: int
    embedder_id: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class ChunkInfo:
    """One stored chunk: what a citation reader or a judge needs, without a search."""

    id: int
    document_id: int
    ordinal: int
    text: str
    page: int | None
    heading_path: tuple[str, ...]
    char_start: int
    char_end: int


@dataclass(frozen=True)
class QueryRecord:
    """One answered question as the query log keeps it (`id` and `created_at` are set by the ledger)."""

    collection: str
    question: str
    provider: str | None
    model: str | None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    cost_usd: float = 0.0
    cached: bool = False
    groundedness: float | None = None
    abstained: bool = False
    attempts: tuple[str, ...] = ()
    id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    """An HTTP API key's row: the SHA-256 of the key, never the key itself."""

    id: int
    name: str
    prefix: str
    key_hash: str
    role: str
    collections: tuple[str, ...]
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


EVAL_RUN_FIELDS = ("kind", "status", "dataset", "collection", "arms", "dataset_hash", "split_hash",
                   "index_manifest_hash", "code_version", "provenance", "split", "summary", "report_path",
                   "finished_at")
"""What `Ledger.create_eval_run` / `update_eval_run` may set."""


@dataclass(frozen=True)
class EvalRunInfo:
    """One evaluation run and what produced it (see `rag_platform.eval.harness`)."""

    id: int
    kind: str
    status: str
    dataset: str
    collection: str | None
    arms: list[str]
    dataset_hash: str | None
    split_hash: str | None
    index_manifest_hash: str | None
    code_version: str | None
    provenance: dict[str, Any]
    split: dict[str, Any]
    summary: dict[str, Any]
    report_path: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class EvalResultInfo:
    """One question through one arm of an evaluation run."""

    id: int
    run_id: int
    question_id: str
    arm: str
    answer: str
    metrics: dict[str, Any]
    detail: dict[str, Any]


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat message. A user message built by `rag.prompt.pack` also carries its question and its numbered
    sources' text (source n is `sources[n - 1]`), so an answerer that reads sources rather than prose (the
    extractive one) takes them from here instead of parsing `content` back."""

    role: Role
    content: str
    question: str | None = None
    sources: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """A finished generation and what it cost."""

    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None


@dataclass(frozen=True)
class Delta:
    """One streamed piece of text."""

    text: str


StreamEvent = Delta | Completion


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 512
    temperature: float = 0.0
    timeout_s: float = 60.0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """One try of one provider in the fallback chain, as the answer records it."""

    provider: str
    ok: bool
    seconds: float
    error: str | None = None
    status: int | None = None
    skipped: bool = False
