"""A filter's documents out of the ledger: the fields' indexed queries (`rag.store.local_filters`) run and combined.

What costs here is reading ids out of SQLite (about 80 ns an id at 250k), so the plan reads as
few as it can:
  * tags, media types and scalar metadata values (on SQLite) come from `rag.store.field_bits`: a
    few compressed bitmap blocks per value, whatever its size; the other fields follow below,
    checked by primary key for those documents when they are few;
  * one field: its index lookup, read as one string (`group_concat`) rather than a row per id;
  * several: each field's size is probed with a count capped at `LOOKUP_MAX`; when the smallest
    stays under it, its documents are read and every field is checked for just those by primary
    key, so a tight field next to broad ones costs what the tight one selects;
  * broad fields only: a date range whose outside is smaller is read as its outside (the answer
    then lists the documents left out, `Resolved.excluded`); the rest are read and intersected in
    numpy (SQLite's INTERSECT copied every id into temporary b-trees: 3-4x the cost of reading them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.orm import Session

from rag.filters import Filters
from rag.store.allowed import intersect_sorted, member_mask, sorted_unique
from rag.store.field_bits import field_ids, media_field, meta_field, tag_field
from rag.store.ledger import Document
from rag.store.local_filters import complement_queries, documents_query, field_queries, id_list, nan_filter

IN_LIST_MAX = 4096  # ids per IN list (SQLite allows 32766 bound values since 3.32)
LOOKUP_MAX = 4096  # a field giving at most this many documents drives: the others are asked about them only
OUTSIDE_MAX = 32768  # a broad date range is read as its outside when that holds fewer documents than this


@dataclass(frozen=True)
class Resolved:
    """Sorted, distinct document ids: the ones that pass, or with `excluded` the only ok ones that do not."""

    ids: np.ndarray
    excluded: bool = False


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
    """The conditions `field_bits` answers (each a list of OR'ed fields: the tags, the media types, one scalar
    metadata value), and the filter left for SQL."""
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


def resolve(s: Session, collection_id: int, filters: Filters) -> Resolved:
    """The ok documents of the collection that pass `filters` (see the module's docstring for the plan)."""
    if nan_filter(filters):
        return Resolved(np.zeros(0, np.int64))
    if s.get_bind().dialect.name != "sqlite":
        return _resolve_sql(s, collection_id, filters)
    groups, rest = split_bits(filters)
    if not groups:
        return _resolve_sql(s, collection_id, filters)
    ids = field_ids(s, collection_id, groups[0])
    for group in groups[1:]:
        ids = intersect_sorted(ids, field_ids(s, collection_id, group)) if len(ids) else ids
    if rest.empty or not len(ids):
        return Resolved(ids)
    if len(ids) <= LOOKUP_MAX:  # few documents: the other fields are checked for them by primary key
        checks, python = field_queries(collection_id, rest, True, among=ids.tolist())
        for check in checks:
            ids = intersect_sorted(ids, fetch_ids(s, check))
        return _checked(s, rest, ids, python)
    got = _resolve_sql(s, collection_id, rest)
    return Resolved(ids[~member_mask(ids, got.ids)] if got.excluded else intersect_sorted(ids, got.ids))


def _resolve_sql(s: Session, collection_id: int, filters: Filters) -> Resolved:
    """`resolve` with every field read through its SQL index."""
    sqlite = s.get_bind().dialect.name == "sqlite"
    parts, python = field_queries(collection_id, filters, sqlite)
    outside = {} if python else complement_queries(collection_id, filters)
    if len(parts) == 1 and not outside:
        return _checked(s, filters, fetch_ids(s, parts[0]), python)
    sizes = probe(s, parts, LOOKUP_MAX + 1)
    order = sorted(range(len(parts)), key=sizes.__getitem__)
    if sizes[order[0]] <= LOOKUP_MAX:  # a tight field drives
        ids = fetch_ids(s, parts[order[0]])
        if len(parts) > 1 and len(ids):
            for check in field_queries(collection_id, filters, sqlite, among=ids.tolist())[0]:
                ids = intersect_sorted(ids, fetch_ids(s, check))
        return _checked(s, filters, ids, python)
    left_out: list[np.ndarray] = []
    for n, query in outside.items():
        size = probe(s, [query], OUTSIDE_MAX)[0]
        if size < OUTSIDE_MAX and size < probe(s, [parts[n]], size + 1)[0]:
            left_out.append(fetch_ids(s, query))
            order.remove(n)
    gone = sorted_unique(np.concatenate(left_out)) if left_out else np.zeros(0, np.int64)
    if not order:
        return Resolved(gone, excluded=True)
    ids = fetch_ids(s, parts[order[0]])
    for n in order[1:]:
        ids = intersect_sorted(ids, fetch_ids(s, parts[n])) if len(ids) else ids
    if len(gone):
        ids = ids[~member_mask(ids, gone)]
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
    """Ids of the ok documents of the collection that pass `filters`, ascending (an exclusion spelled out)."""
    got = resolve(s, collection_id, filters)
    if not got.excluded:
        return got.ids
    every = fetch_ids(s, documents_query(collection_id))
    return np.asarray(every[~member_mask(every, got.ids)], np.int64)
