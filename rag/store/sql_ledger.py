"""The `Ledger` over SQLAlchemy: one implementation for SQLite and PostgreSQL (they share the schema).

Both built-in stores expose one of these as `store.ledger`, on their own sessions; `open_sql_ledger`
opens one from the settings alone (no embedder, no index) for commands that only list or manage
records. Every method is one short transaction and returns plain records (`rag.types`), never ORM
rows, so nothing above `rag.store` needs a session. Evaluation runs and API keys are in
`rag.store.sql_records`.

Example:
    >>> ledger = open_sql_ledger(Settings(home=".rag"))
    >>> [d.source_uri for d in ledger.documents("handbook") if d.status == "failed"]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from rag.config import Settings
from rag.errors import CollectionNotFoundError
from rag.report import IngestReport
from rag.store.base import check_collection_name
from rag.store.db import open_engine, session_factory
from rag.store.ledger import AnswerCache, Chunk, Collection, Document, IngestFile, IngestRun, QueryLog
from rag.store.sql_records import SqlRecords
from rag.types import ChunkInfo, CollectionInfo, CollectionRecord, DocumentInfo, QueryRecord

_CHUNK_COLS = (Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.text, Chunk.page, Chunk.heading_path,
               Chunk.char_start, Chunk.char_end)


def missing_collection(settings: Settings, name: str, names: Sequence[str]) -> CollectionNotFoundError:
    """The error for an unknown collection: where we looked, what exists, and how to look elsewhere."""
    where = f"data home {settings.home.resolve()}" if not settings.db_url else "this database"
    return CollectionNotFoundError(name, f"no collection named {name!r} in {where} (existing: "
                                   f"{', '.join(names) or 'none'}); point at another data home with --home DIR "
                                   f"or RAG_HOME")


def _document(d: Document) -> DocumentInfo:
    return DocumentInfo(id=d.id, source_uri=d.source_uri, title=d.title, media_type=d.media_type,
                        size_bytes=d.size_bytes, status=d.status, error=d.error, chunk_count=d.chunk_count,
                        content_hash=d.content_hash, metadata=dict(d.metadata_ or {}), created_at=d.created_at,
                        updated_at=d.updated_at)


def _chunk(row: Any) -> ChunkInfo:
    cid, doc_id, ordinal, text, page, path, start, end = row
    return ChunkInfo(id=cid, document_id=doc_id, ordinal=ordinal, text=text, page=page,
                     heading_path=tuple(path or ()), char_start=start, char_end=end)


def _query(r: QueryLog) -> QueryRecord:
    return QueryRecord(collection=r.collection, question=r.question, provider=r.provider, model=r.model,
                       tokens_in=r.tokens_in, tokens_out=r.tokens_out, latency_s=r.latency_s, ttft_s=r.ttft_s,
                       cost_usd=r.cost_usd, cached=r.cached, groundedness=r.groundedness, abstained=r.abstained,
                       attempts=tuple(r.attempts or ()), id=r.id, created_at=r.created_at)


class SqlLedger(SqlRecords):
    """`rag.protocols.Ledger` on a SQLAlchemy session factory (the store's own, or one of its own)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)
        self.settings = settings

    def _collection_id(self, s: Session, name: str) -> int:
        check_collection_name(name)
        cid = s.scalar(select(Collection.id).where(Collection.name == name))
        if cid is None:
            names = list(s.scalars(select(Collection.name).order_by(Collection.name)))
            raise missing_collection(self.settings, name, names)
        return int(cid)

    # -- collections and documents ------------------------------------------------------------------
    def collections(self) -> list[CollectionRecord]:
        with self.sessions() as s:
            rows = s.execute(select(Collection.name, Collection.revision, Collection.embedder_id,
                                    Collection.created_at).order_by(Collection.name)).all()
        return [CollectionRecord(name, int(rev or 0), emb, created) for name, rev, emb, created in rows]

    def collection_stats(self) -> list[CollectionInfo]:
        out = []
        with self.sessions() as s:
            for c in s.execute(select(Collection).order_by(Collection.name)).scalars().all():
                docs = dict(s.execute(select(Document.status, func.count()).where(
                    Document.collection_id == c.id).group_by(Document.status)).all())
                chunks = s.scalar(select(func.count()).select_from(Chunk).where(Chunk.collection_id == c.id))
                out.append(CollectionInfo(c.name, int(docs.get("ok", 0)), int(docs.get("failed", 0)),
                                          int(chunks or 0), c.revision, c.embedder_id))
        return out

    def documents(self, collection: str) -> list[DocumentInfo]:
        with self.sessions() as s:
            cid = self._collection_id(s, collection)
            rows = s.scalars(select(Document).where(Document.collection_id == cid).order_by(Document.source_uri))
            return [_document(d) for d in rows]

    def document(self, collection: str, document_id: int) -> DocumentInfo | None:
        with self.sessions() as s:
            cid = self._collection_id(s, collection)
            d = s.scalar(select(Document).where(Document.id == document_id, Document.collection_id == cid))
            return _document(d) if d is not None else None

    def document_states(self, collection: str) -> dict[str, tuple[str, str]]:
        with self.sessions() as s:
            cid = self._collection_id(s, collection)
            rows = s.execute(select(Document.source_uri, Document.content_hash, Document.status)
                             .where(Document.collection_id == cid))
            return {src: (h, status) for src, h, status in rows}

    def move_documents(self, collection: str, moves: Sequence[tuple[str, str]]) -> None:
        """Also bumps the collection's revision: a source glob selects other documents after a move, so what
        was kept for the old revision (a store's resolved filters) must not answer for the new one."""
        with self.sessions.begin() as s:
            cid = self._collection_id(s, collection)
            for old, new in moves:
                s.execute(update(Document).where(Document.collection_id == cid, Document.source_uri == old)
                          .values(source_uri=new, source_rev=new[::-1], updated_at=Document.updated_at))  # not a change
            s.execute(delete(AnswerCache).where(AnswerCache.collection_id == cid))
            if moves:
                s.execute(update(Collection).where(Collection.id == cid).values(revision=Collection.revision + 1))

    def document_chunks(self, collection: str, document_id: int) -> list[ChunkInfo]:
        with self.sessions() as s:
            cid = self._collection_id(s, collection)
            rows = s.execute(select(*_CHUNK_COLS).where(Chunk.document_id == document_id, Chunk.collection_id == cid)
                             .order_by(Chunk.ordinal)).all()
        return [_chunk(r) for r in rows]

    def chunks(self, ids: Sequence[int]) -> list[ChunkInfo]:
        wanted = [int(i) for i in ids]
        out: list[ChunkInfo] = []
        with self.sessions() as s:
            for i in range(0, len(wanted), 500):
                out.extend(_chunk(r) for r in s.execute(select(*_CHUNK_COLS).where(Chunk.id.in_(wanted[i:i + 500]))))
        return out

    # -- ingest runs ---------------------------------------------------------------------------------
    def start_ingest_run(self, collection: str, engine: str) -> int:
        with self.sessions.begin() as s:
            run = IngestRun(collection_id=self._collection_id(s, collection), engine=engine, status="running")
            s.add(run)
            s.flush()
            return int(run.id)

    def finish_ingest_run(self, run_id: int, report: IngestReport, status: str, error: str | None) -> None:
        with self.sessions.begin() as s:
            run = s.get(IngestRun, run_id)
            if run is None:
                return
            run.status, run.error = status, error
            run.files_ok, run.files_skipped = report.count("ok"), report.count("skipped")
            run.files_failed, run.files_removed = report.count("failed"), report.count("removed")
            run.chunks_added = report.chunks_added
            run.finished_at = datetime.now(UTC)
            if report.files:
                s.execute(insert(IngestFile), [
                    {"run_id": run_id, "source_uri": f.source, "outcome": f.outcome,
                     "reason": f.reason or (f"note: {f.note}" if f.note else None),
                     "chunks": f.chunks, "seconds": f.seconds} for f in report.files])

    # -- answers: cache and query log ----------------------------------------------------------------
    def cached_answer(self, key: str) -> dict[str, Any] | None:
        with self.sessions.begin() as s:
            row = s.get(AnswerCache, key)
            if row is None:
                return None
            s.execute(update(AnswerCache).where(AnswerCache.key == key).values(hits=AnswerCache.hits + 1))
            return dict(row.answer)

    def store_answer(self, key: str, collection: str, answer: dict[str, Any]) -> None:
        with self.sessions.begin() as s:
            cid = self._collection_id(s, collection)
            if s.get(AnswerCache, key) is None:
                s.add(AnswerCache(key=key, collection_id=cid, answer=answer, hits=0))

    def log_query(self, record: QueryRecord) -> None:
        with self.sessions.begin() as s:
            s.add(QueryLog(collection=record.collection, question=record.question, provider=record.provider,
                           model=record.model, tokens_in=record.tokens_in, tokens_out=record.tokens_out,
                           latency_s=record.latency_s, ttft_s=record.ttft_s, cost_usd=record.cost_usd,
                           cached=record.cached, groundedness=record.groundedness, abstained=record.abstained,
                           attempts=list(record.attempts)))

    def recent_queries(self, limit: int = 20) -> list[QueryRecord]:
        with self.sessions() as s:
            return [_query(r) for r in s.scalars(select(QueryLog).order_by(QueryLog.id.desc()).limit(limit))]


def open_sql_ledger(settings: Settings) -> SqlLedger:
    """The ledger of `settings.database_url` on its own engine (migrated to head, like a store's)."""
    url = settings.database_url
    if url.split(":", 1)[0].split("+", 1)[0].lower() in ("postgresql", "postgres"):
        from rag.store.postgres import pg_url

        url = pg_url(url)
    return SqlLedger(settings, session_factory(open_engine(url)))
