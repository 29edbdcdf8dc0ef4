"""Metadata filters of the embedded store as one SQL query that returns document ids.

SQLite does the work: tags through the indexed `document_tags` table, IN for media
types and document ids (indexed), GLOB for the source pattern, json_extract for
metadata, julianday() for dates (the metadata's `modified` when it parses, else the
ledger's `updated_at`). The answer is documents, not chunks: several times fewer ids,
no join with chunks, and each segment maps them to rows through its document-id
column (`rag.store.segment.AllowedIds`). Other databases, and metadata values that
are lists or objects, fall back to checking the documents SQL narrowed down in
Python with `Filters.match_document`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from rag.filters import Filters, _aware
from rag.store.ledger import Document, DocumentTag


def glob_for_sqlite(pattern: str) -> str:
    """fnmatch syntax to SQLite GLOB: the same `*`, `?` and `[...]`, except negation is `[^...]`."""
    return pattern.replace("[!", "[^")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _conditions(filters: Filters, sqlite: bool) -> tuple[list[ColumnElement[bool]], bool]:
    """SQL conditions on documents other than tags, and whether a Python check must follow."""
    conds: list[ColumnElement[bool]] = []
    if filters.document_ids:
        conds.append(Document.id.in_(filters.document_ids))
    if filters.media_types:
        conds.append(Document.media_type.in_(filters.media_types))
    if not sqlite:
        return conds, bool(filters.source_glob or filters.metadata or filters.modified_after
                           or filters.modified_before)
    if filters.source_glob:
        conds.append(Document.source_uri.op("GLOB")(glob_for_sqlite(filters.source_glob)))
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


def _query(collection_id: int, filters: Filters, conds: list[ColumnElement[bool]]) -> Select[Any]:
    """Ids of the documents passing `conds` and the tag condition (a document may come twice)."""
    tagged = (select(DocumentTag.document_id).where(DocumentTag.collection_id == collection_id,
                                                    DocumentTag.tag.in_(filters.tags)) if filters.tags else None)
    if tagged is not None and not conds:  # only ok documents have tag rows: no need to visit documents
        return tagged
    where = and_(Document.collection_id == collection_id, Document.status == "ok", *conds)
    if tagged is not None:
        where = and_(where, Document.id.in_(tagged))
    return select(Document.id).where(where)


def allowed_document_ids(s: Session, collection_id: int, filters: Filters) -> np.ndarray:
    """Ids of the ok documents of the collection that pass `filters`, ascending."""
    sqlite = s.get_bind().dialect.name == "sqlite"
    conds, python = _conditions(filters, sqlite)
    if not python:
        q = _query(collection_id, filters, conds).subquery()
        if sqlite:  # one string out of SQLite instead of a Python object per row (5x less at 10k ids)
            text = s.scalar(select(func.group_concat(q.c[0], ",")))
            ids = np.fromstring(text, dtype=np.int64, sep=",") if text else np.zeros(0, np.int64)
        else:
            ids = np.array(s.scalars(select(q.c[0])).all(), dtype=np.int64)
        # one tag comes off its index already in order: skip the sort (~1.5 ms at 12k ids) when it is
        return ids if np.all(ids[1:] > ids[:-1]) else np.unique(ids)
    rows = s.execute(select(Document.id, Document.source_uri, Document.media_type, Document.metadata_,
                            Document.updated_at).where(Document.id.in_(_query(collection_id, filters, conds))))
    return np.unique(np.array([r[0] for r in rows if filters.match_document(r[1], r[2], r[3] or {}, r[4])],
                              dtype=np.int64))
