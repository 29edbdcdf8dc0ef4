"""Metadata filters of the embedded store as SQL that returns document ids, field by field off an index.

Each field is one indexed lookup, and the fields' answers are intersected, so the cost follows
what each field selects, never a scan of every document's JSON:
  * tags: `document_tags` (collection_id, tag);
  * metadata equality: `document_metadata` (collection_id, key, value), values in the
    canonical form of `rag.store.doc_fields.encode_value`;
  * media types: documents (collection_id, status, media_type);
  * source glob: documents (collection_id, status, source_uri): the pattern's literal prefix
    is a range on the index and GLOB (SQLite) or a regex (PostgreSQL) is checked on its entries;
    a pattern with no literal prefix but a literal suffix ("*.pdf") is the same on SQLite's
    (collection_id, status, source_rev), the source backwards, with the pattern reversed;
  * dates: documents (collection_id, status, modified_at, updated_at), `modified_at` being the
    metadata's `modified` when it parses, `updated_at` otherwise (as `Filters.match_document`);
  * document ids: the primary key.
With several fields, the tightest one (probed with a capped count) drives when it is small, and
the others are checked for its documents only by primary key; broad fields are each read once,
as one string per query, and intersected in numpy (`allowed_document_ids`).
The answer is documents, not chunks: several times fewer ids, no join with chunks, and each
segment maps them to rows through its document-id column (`rag.store.allowed.AllowedIds`).
A metadata value that is a list or an object is narrowed in SQL to the documents holding
that key, then checked in Python with `Filters.match_document`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, column, func, or_, select, union_all

from rag.filters import Filters
from rag.store.doc_fields import as_utc, encode_key, encode_value, is_scalar
from rag.store.ledger import Document, DocumentMeta, DocumentTag
from rag.store.pg_filters import glob_to_regex


def glob_for_sqlite(pattern: str) -> str | None:
    """fnmatch syntax as SQLite GLOB, or None where the two read a pattern differently.

    `*`, `?`, `[abc]`, `[a-z]` mean the same; fnmatch's negation `[!...]` is GLOB's `[^...]`, and an
    unclosed `[` is a literal. A class fnmatch reads in its own way (a leading `]` or `^`, a
    reversed range) gives None: the caller checks those documents with fnmatch instead.
    """
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        end = pattern.find("]", i + 1)
        if ch != "[" or end < 0:
            out.append("[[]" if ch == "[" else ch)
            i += 1
            continue
        body = pattern[i + 1:end]
        negate = body.startswith("!")
        body = body[1:] if negate else body
        if not body or body[0] in "]^" or not _plain_ranges(body):
            return None
        out.append("[" + ("^" if negate else "") + body + "]")
        i = end + 1
    return "".join(out)


def _plain_ranges(body: str) -> bool:
    """Every `a-z` in a class body runs upwards (fnmatch drops a reversed one, GLOB does not)."""
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            if body[k] > body[k + 2]:
                return False
            k += 3
        else:
            k += 1
    return True


def reversed_glob(pattern: str) -> str:
    """A glob that matches a string backwards exactly when `pattern` matches it forwards.

    Reads the pattern in `glob_for_sqlite`'s units (a character, `*`, `?`, a class up to the first
    `]`) and reverses their order; a literal `[` becomes the class `[[]`, so no `]` met later in
    the reversed text can close it.
    """
    units, i = [], 0
    while i < len(pattern):
        end = pattern.find("]", i + 1)
        if pattern[i] == "[" and end >= 0:
            units.append(pattern[i:end + 1])
            i = end + 1
        else:
            units.append("[[]" if pattern[i] == "[" else pattern[i])
            i += 1
    return "".join(reversed(units))


def literal_prefix(pattern: str) -> str:
    """The characters every match starts with: the pattern up to its first wildcard."""
    for n, ch in enumerate(pattern):
        if ch in "*?[":
            return pattern[:n]
    return pattern


def _prefix_range(column: Any, prefix: str) -> list[ColumnElement[bool]]:
    """`column` starts with `prefix`, as a range an index serves (code point order: SQLite BINARY, COLLATE "C")."""
    if not prefix:
        return []
    head = prefix.rstrip("\U0010ffff")
    conds = [column >= prefix]
    if head:
        conds.append(column < head[:-1] + chr(ord(head[-1]) + 1))
    return conds


def documents_query(collection_id: int) -> Select[Any]:
    """Every ok document of the collection."""
    return _documents(collection_id)


def _documents(collection_id: int, *conds: ColumnElement[bool]) -> Select[Any]:
    return select(Document.id).where(Document.collection_id == collection_id, Document.status == "ok", *conds)


def _source(collection_id: int, pattern: str, sqlite: bool) -> tuple[Select[Any], bool]:
    """Documents whose source matches `pattern`, and whether fnmatch must check them in Python."""
    glob = glob_for_sqlite(pattern) if sqlite else None
    if sqlite and glob is not None and not literal_prefix(pattern):
        backwards = reversed_glob(pattern)  # "*.md": a range of the reversed sources, "dm.*"
        rev = glob_for_sqlite(backwards)
        if rev is not None and literal_prefix(backwards):
            return _documents(collection_id, *_prefix_range(Document.source_rev, literal_prefix(backwards)),
                              Document.source_rev.op("GLOB")(rev)), False
    if sqlite:
        col: Any = Document.source_uri
        match = [col.op("GLOB")(glob)] if glob is not None else []
    else:
        col = Document.source_uri.collate("C")
        match = [Document.source_uri.regexp_match(glob_to_regex(pattern))]
    return _documents(collection_id, *_prefix_range(col, literal_prefix(pattern)), *match), sqlite and glob is None


def _in_range(col: Any, after: datetime | None, before: datetime | None) -> list[ColumnElement[bool]]:
    return ([col >= as_utc(after)] if after else []) + ([col <= as_utc(before)] if before else [])


def dates_query(collection_id: int, after: datetime | None, before: datetime | None) -> Select[Any]:
    """`modified_at` in range, or no `modified_at` and `updated_at` in range: two disjoint ranges on one index."""
    both = union_all(_documents(collection_id, *_in_range(Document.modified_at, after, before)),
                     _documents(collection_id, Document.modified_at.is_(None),
                                *_in_range(Document.updated_at, after, before))).subquery()
    return select(both.c[0])


def _metadata(collection_id: int, key: str, value: Any) -> tuple[Select[Any], bool]:
    """Documents whose metadata[key] == value, and whether a Python check must follow."""
    k = encode_key(key)
    rows = select(DocumentMeta.document_id).where(DocumentMeta.collection_id == collection_id, DocumentMeta.key == k)
    if value is None:  # None matches a missing key and a null: the documents with no row for the key
        return _documents(collection_id, Document.id.not_in(rows)), False
    if is_scalar(value):
        return rows.where(DocumentMeta.value == encode_value(value)), False
    return rows, True  # a list or an object: the documents holding the key, checked in Python


def _parts(collection_id: int, filters: Filters, sqlite: bool) -> tuple[list[Select[Any]], bool]:
    """One indexed id query per field, and whether a Python check must follow."""
    parts: list[Select[Any]] = []
    python = False
    if filters.tags:
        parts.append(select(DocumentTag.document_id).where(DocumentTag.collection_id == collection_id,
                                                           DocumentTag.tag.in_(filters.tags)))
    for key, value in filters.metadata:
        part, check = _metadata(collection_id, key, value)
        parts.append(part)
        python = python or check
    if filters.media_types:
        parts.append(_documents(collection_id, Document.media_type.in_(filters.media_types)))
    if filters.source_glob:
        part, check = _source(collection_id, filters.source_glob, sqlite)
        parts.append(part)
        python = python or check
    if filters.modified_after or filters.modified_before:
        parts.append(dates_query(collection_id, filters.modified_after, filters.modified_before))
    if filters.document_ids:
        parts.append(_within(collection_id, filters.document_ids, sqlite=sqlite))
    if not parts:
        parts.append(_documents(collection_id))
    return parts, python


def id_list(ids: Sequence[int], sqlite: bool = False) -> Any:
    """Ids for an IN test as one parameter: on SQLite one JSON text read by json_each (no bound value per id,
    2 ms of SQLAlchemy at 600 ids), elsewhere an expanding parameter."""
    values = [int(i) for i in ids]
    if sqlite:
        return select(column("value", Integer)).select_from(func.json_each(json.dumps(values)))
    return bindparam(None, values, expanding=True, type_=Integer)


def _within(collection_id: int, ids: Sequence[int], *conds: ColumnElement[bool], sqlite: bool = False) -> Select[Any]:
    """Documents among `ids` by primary key; `+ 0` and `|| ''` keep SQLite off a collection-wide index scan."""
    return select(Document.id).where(Document.id.in_(id_list(ids, sqlite)),
                                     (Document.collection_id + 0) == collection_id,
                                     Document.status.concat("") == "ok", *conds)


def _checks(collection_id: int, filters: Filters, sqlite: bool, ids: Sequence[int]) -> Select[Any]:
    """Every field of `_parts` asked only of documents `ids`, in one statement: primary-key lookups per id."""
    conds: list[ColumnElement[bool]] = []
    if filters.tags:  # primary key (document_id, tag)
        conds.append(select(DocumentTag.document_id).where(DocumentTag.document_id == Document.id,
                                                           DocumentTag.tag.in_(filters.tags)).exists())
    for key, value in filters.metadata:  # primary key (document_id, key)
        held = select(DocumentMeta.document_id).where(DocumentMeta.document_id == Document.id,
                                                      DocumentMeta.key == encode_key(key))
        if value is None:
            conds.append(~held.exists())
        else:  # a list or an object: the documents holding the key, checked in Python after
            conds.append((held.where(DocumentMeta.value == encode_value(value)) if is_scalar(value) else held).exists())
    if filters.media_types:
        conds.append(Document.media_type.in_(filters.media_types))
    if filters.source_glob:
        glob = glob_for_sqlite(filters.source_glob) if sqlite else None
        if not sqlite:
            conds.append(Document.source_uri.regexp_match(glob_to_regex(filters.source_glob)))
        elif glob is not None:
            conds.append(Document.source_uri.op("GLOB")(glob))
    if filters.modified_after or filters.modified_before:
        after, before = filters.modified_after, filters.modified_before
        conds.append(or_(and_(*_in_range(Document.modified_at, after, before)),
                         and_(Document.modified_at.is_(None), *_in_range(Document.updated_at, after, before))))
    if filters.document_ids:
        conds.append(Document.id.in_(id_list(filters.document_ids, sqlite)))
    return _within(collection_id, ids, *conds, sqlite=sqlite)


def field_queries(collection_id: int, filters: Filters, sqlite: bool = True,
                  among: Sequence[int] | None = None) -> tuple[list[Select[Any]], bool]:
    """One id query per field (each an index lookup), and whether a Python check must follow.

    `among`: ask only about these documents: one query of primary-key lookups per id, no range scanned.
    """
    parts, python = _parts(collection_id, filters, sqlite)
    return (parts if among is None else [_checks(collection_id, filters, sqlite, among)]), python


def nan_filter(filters: Filters) -> bool:
    """A metadata value NaN: it equals nothing, so nothing passes."""
    return any(isinstance(v, float) and math.isnan(v) for _, v in filters.metadata)
