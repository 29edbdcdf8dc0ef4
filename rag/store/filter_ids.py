"""A filter's documents out of the ledger: the fields' indexed queries (`rag.store.local_filters`) run and combined.

What costs here is reading ids out of SQLite (about 80 ns an id at 250k), so the plan reads as
few as it can:
  * tags, media types and scalar metadata values (on SQLite) come from `rag.store.field_bits`: a
    few compressed bitmap blocks per value, whatever its size; a date range too, from its whole
    months there and its two partial months through the dates index; the other fields (source
    glob, document ids, list values) follow below, checked by primary key for those documents
    when they are few;
  * one field: its index lookup, read as one string (`group_concat`) rather than a row per id;
  * several: each field's size is probed with a count capped at `LOOKUP_MAX`; when the smallest
    stays under it, its documents are read and every field is checked for just those by primary
    key, so a tight field next to broad ones costs what the tight one selects;
  * broad fields only: each is read and they are intersected in numpy (SQLite's INTERSECT
    copied every id into temporary b-trees: 3-4x the cost of reading them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session

from rag.filters import Filters
from rag.store.allowed import intersect_sorted, sorted_unique
from rag.store.doc_fields import as_utc
from rag.store.field_bits import field_ids, media_field, meta_field, month_ids, month_start, next_month, tag_field
from rag.store.ledger import Document
from rag.store.local_filters import dates_query, field_queries, id_list, nan_filter

IN_LIST_MAX = 4096  # ids per IN list (SQLite allows 32766 bound values since 3.32)
LOOKUP_MAX = 4096  # a field giving at most this many documents drives: the others are asked about them only


@dataclass(frozen=True)
class Resolved:
    """Sorted, distinct document ids: the ones that pass."""

    ids: np.ndarray


def fetch_ids(s: Session, query: Select[Any]) -> np.ndarray:
    """A one-column id query's ids, distinct and ascending, handed over as one string rather than a row per id."""
    q = query.subquery()
    dialect = s.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):  # 5-20x less than a Python object per row at 100k ids
        joined = func.group_concat(q.c[0], ",") if dialect == "sqlite" else func.string_agg(cast(q.c[0], Text), ",")
        text = s.scalar(select(joined))
        ids = np.fromstring(text, dtype=np.int64, sep=",") if text else np.zeros(0, np.int64)
    else:
        ids = np.fromiter(s.scalars(select(q.c[0])), dtype=np.int64)
    return sorted_unique(ids)


def probe(s: Session, queries: list[Select[Any]], cap: int) -> list[int]:
    """How many rows each query gives, counting no further than `cap` (cost bounded by `cap`, not the field's
    size), in one statement."""
    counts = [select(func.count()).select_from(q.limit(cap).subquery()).scalar_subquery() for q in queries]
    return [int(n or 0) for n in s.execute(select(*counts)).one()]


def split_bits(filters: Filters) -> tuple[list[list[str]], Filters]:
    """The conditions `field_bits` answers by value (each a list of OR'ed fields: the tags, the media types, one
    scalar metadata value), and the filter left over (dates included: `date_ids` takes those)."""
    groups: list[list[str]] = []
    if filters.tags:
        groups.append([tag_field(t) for t in filters.tags])
    if filters.media_types:
        groups.append([media_field(m) for m in filters.media_types])
    rest_meta = []
    for key, value in filters.metadata:
        f = meta_field(key, value)
        if f is None:
            rest_meta.append((key, value))
        else:
            groups.append([f])
    return groups, replace(filters, tags=(), media_types=(), metadata=tuple(rest_meta))


def date_ids(s: Session, collection_id: int, after: datetime | None, before: datetime | None) -> np.ndarray:
    """Documents dated in [after, before]: the whole months between from `field_bits` (one key range), the
    partial months at either end through the dates index (a month's documents at most)."""
    after = as_utc(after) if after is not None else None
    before = as_utc(before) if before is not None else None
    first = next_month(after) if after is not None else None  # the first whole month (None: none left)
    stop = month_start(before) if before is not None else None  # whole months end before this
    parts = [month_ids(s, collection_id, first, stop)] if after is None or first is not None else []
    edges: list[tuple[datetime | None, datetime | None]] = []
    if after is not None:  # [after, the end of its month]
        hi = first - timedelta(microseconds=1) if first is not None else before
        edges.append((after, min(hi, before) if hi is not None and before is not None else hi))
    if stop is not None:  # [the start of before's month, before]
        edges.append((stop if after is None else max(stop, after), before))
    for lo, hi in dict.fromkeys(edges):
        if lo is None or hi is None or lo <= hi:
            parts.append(fetch_ids(s, dates_query(collection_id, lo, hi)))
    return sorted_unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def resolve(s: Session, collection_id: int, filters: Filters) -> Resolved:
    """The ok documents of the collection that pass `filters` (see the module's docstring for the plan)."""
    if nan_filter(filters):
        return Resolved(np.zeros(0, np.int64))
    if s.get_bind().dialect.name != "sqlite":
        return _resolve_sql(s, collection_id, filters)
    groups, rest = split_bits(filters)
    dated = rest.modified_after is not None or rest.modified_before is not None
    if not groups and not dated:
        return _resolve_sql(s, collection_id, filters)
    ids: np.ndarray | None = None
    for group in groups:
        got = field_ids(s, collection_id, group)
        ids = got if ids is None else intersect_sorted(ids, got)
        if not len(ids):
            return Resolved(ids)
    if dated:
        got = date_ids(s, collection_id, rest.modified_after, rest.modified_before)
        ids = got if ids is None else intersect_sorted(ids, got)
        rest = replace(rest, modified_after=None, modified_before=None)
    assert ids is not None
    if rest.empty or not len(ids):
        return Resolved(ids)
    if len(ids) <= LOOKUP_MAX:  # few documents: the other fields are checked for them by primary key
        checks, python = field_queries(collection_id, rest, True, among=ids.tolist())
        for check in checks:
            ids = intersect_sorted(ids, fetch_ids(s, check))
        return _checked(s, rest, ids, python)
    return Resolved(intersect_sorted(ids, _resolve_sql(s, collection_id, rest).ids))


def _resolve_sql(s: Session, collection_id: int, filters: Filters) -> Resolved:
    """`resolve` with every field read through its SQL index."""
    sqlite = s.get_bind().dialect.name == "sqlite"
    parts, python = field_queries(collection_id, filters, sqlite)
    if len(parts) == 1:
        return _checked(s, filters, fetch_ids(s, parts[0]), python)
    sizes = probe(s, parts, LOOKUP_MAX + 1)
    order = sorted(range(len(parts)), key=sizes.__getitem__)
    if sizes[order[0]] <= LOOKUP_MAX:  # a tight field drives
        ids = fetch_ids(s, parts[order[0]])
        if len(parts) > 1 and len(ids):
            for check in field_queries(collection_id, filters, sqlite, among=ids.tolist())[0]:
                ids = intersect_sorted(ids, fetch_ids(s, check))
        return _checked(s, filters, ids, python)
    ids = fetch_ids(s, parts[order[0]])
    for n in order[1:]:
        ids = intersect_sorted(ids, fetch_ids(s, parts[n])) if len(ids) else ids
    return _checked(s, filters, ids, python)


def _checked(s: Session, filters: Filters, ids: np.ndarray, python: bool) -> Resolved:
    """`ids` after the Python check a list or object metadata value (or an odd glob) needs."""
    if not python or not len(ids):
        return Resolved(ids)
    cols = (Document.id, Document.source_uri, Document.media_type, Document.metadata_, Document.updated_at)
    keep = [r[0] for n in range(0, len(ids), IN_LIST_MAX) for r in s.execute(select(*cols).where(
        Document.id.in_(id_list(ids[n:n + IN_LIST_MAX].tolist())))) if filters.match_document(
        r[1], r[2], r[3] or {}, r[4], document_id=r[0])]
    return Resolved(sorted_unique(np.array(keep, dtype=np.int64)))


def allowed_document_ids(s: Session, collection_id: int, filters: Filters) -> np.ndarray:
    """Ids of the ok documents of the collection that pass `filters`, ascending."""
    return resolve(s, collection_id, filters).ids
