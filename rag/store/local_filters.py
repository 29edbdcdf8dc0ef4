"""Metadata filters of the embedded store as one SQL query over indexed ledger columns.

SQLite does the work: GLOB for the source pattern, IN for media types and document
ids, json_each / json_extract for tags and metadata, julianday() for dates (the
metadata's `modified` when it parses, else the ledger's `updated_at`), and the
chunk ids come from the same query through the chunks.document_id index. Other
databases, and metadata values that are lists or objects, fall back to checking
the documents SQL narrowed down in Python with `Filters.match_document`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, column, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from rag.filters import Filters, _aware
from rag.store.ledger import Chunk, Document


def glob_for_sqlite(pattern: str) -> str:
    """fnmatch syntax to SQLite GLOB: the same `*`, `?` and `[...]`, except negation is `[^...]`."""
    return pattern.replace("[!", "[^")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _conditions(filters: Filters, sqlite: bool) -> tuple[list[ColumnElement[bool]], bool]:
    """SQL conditions on documents, and whether a Python check must follow."""
    conds: list[ColumnElement[bool]] = []
    if filters.document_ids:
        conds.append(Document.id.in_(filters.document_ids))
    if filters.media_types:
        conds.append(Document.media_type.in_(filters.media_types))
    if not sqlite:
        return conds, True
    if filters.source_glob:
        conds.append(Document.source_uri.op("GLOB")(glob_for_sqlite(filters.source_glob)))
    if filters.tags:
        tags = func.json_each(Document.metadata_, "$.tags").table_valued("value")
        conds.append(exists(select(literal(1)).select_from(tags).where(column("value").in_(filters.tags))))
    python = False
    for key, value in filters.metadata:
        if not _scalar(value):
            python = True
            continue
        path = '$."' + str(key).replace('"', '\\"') + '"'
        got = func.json_extract(Document.metadata_, path)
        conds.append(got.is_(None) if value is None else got == value)
    when = func.coalesce(func.julianday(func.json_extract(Document.metadata_, "$.modified")),
                         func.julianday(Document.updated_at))
    for bound, after in ((filters.modified_after, True), (filters.modified_before, False)):
        if bound is not None:
            limit = func.julianday(_aware(bound).isoformat())  # type: ignore[union-attr]
            conds.append(or_(when.is_(None), when >= limit if after else when <= limit))
    return conds, python


def allowed_chunk_ids(s: Session, collection_id: int, filters: Filters) -> np.ndarray:
    """Ids of the chunks whose documents pass `filters`, ascending."""
    sqlite = s.get_bind().dialect.name == "sqlite"
    conds, python = _conditions(filters, sqlite)
    where = and_(Document.collection_id == collection_id, Document.status == "ok", *conds)
    if not python:
        result = s.connection().execute(select(Chunk.id).join(Document, Chunk.document_id == Document.id)
                                        .where(where).order_by(Chunk.id))
        # Straight off the driver's cursor: integer ids need no conversion, and the per-row
        # processing of a Result costs more than the query itself at 10k ids.
        return np.fromiter((r[0] for r in result.cursor.fetchall()), dtype=np.int64)
    docs = [d for d, src, mt, meta, upd in s.execute(select(
        Document.id, Document.source_uri, Document.media_type, Document.metadata_, Document.updated_at).where(where))
        # SQLAlchemy types a 5-column row as Row[*tuple[Any, ...]], which mypy unpacks as `object`.
        if filters.match_document(src, mt, meta or {}, upd)]  # type: ignore[arg-type]
    out: list[int] = []
    for i in range(0, len(docs), 500):
        out.extend(s.scalars(select(Chunk.id).where(Chunk.document_id.in_(docs[i:i + 500]))))
    return np.array(sorted(out), dtype=np.int64)
