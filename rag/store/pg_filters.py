"""Metadata filters as SQL predicates over `documents d`, for the PostgreSQL searchers.

The embedded store resolves a filter to an id array in Python; on PostgreSQL
the same conditions become a WHERE clause that both retrievers join in, so a
filter never leaves the database and never cuts a top-k after the fact.
Semantics follow `Filters.match_document` (AND across fields, OR inside one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from rag.filters import Filters
from rag.store.doc_fields import NO_MATCH, as_utc, encode_key, encode_value, is_scalar


@dataclass(frozen=True)
class PgFilter:
    """A WHERE fragment over `documents d` plus its bind parameters (names prefixed `f_`)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def glob_to_regex(pattern: str) -> str:
    """An fnmatch glob as an anchored POSIX regex (`*` and `?` also cross '/', as fnmatch does).

    Classes are read as fnmatch reads them: `!` negates, a leading `]` is a member, `^` is a
    literal, a reversed range matches nothing, an unclosed `[` is a literal.
    """
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        j = i + 1
        if ch == "[":
            j += pattern[j:j + 1] == "!"
            j += pattern[j:j + 1] == "]"
            j = pattern.find("]", j)
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and j >= 0:
            body = pattern[i + 1:j]
            negate = body.startswith("!")
            members = _class_members(body[1:] if negate else body)
            out.append(("[^" + members + "]" if members else ".") if negate else
                       ("[" + members + "]" if members else "(?!)"))
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + "$"


def _class_members(body: str) -> str:
    """A bracket expression's inside: ranges that run upwards kept, every special character escaped."""
    def esc(c: str) -> str:
        return "\\" + c if c in "\\]^[-" else c

    out, k = [], 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            if body[k] <= body[k + 2]:
                out.append(esc(body[k]) + "-" + esc(body[k + 2]))
            k += 3
        else:
            out.append(esc(body[k]))
            k += 1
    return "".join(out)


def to_sql(filters: Filters | None) -> PgFilter | None:
    """The predicate for `filters`, or None when there is nothing to filter.

    Tags, metadata equality and dates go through the rows and columns the store writes with
    each document (document_tags, document_metadata, documents.modified_at: see
    `rag.store.doc_fields`), looked up by primary key or index per candidate document.
    """
    if filters is None or filters.empty:
        return None
    parts: list[str] = ["d.status = 'ok'"]
    params: dict[str, Any] = {}
    if filters.source_glob:
        parts.append("d.source_uri ~ :f_glob")
        params["f_glob"] = glob_to_regex(filters.source_glob)
    if filters.media_types:
        parts.append("d.media_type = ANY(:f_media)")
        params["f_media"] = list(filters.media_types)
    if filters.document_ids:
        parts.append("d.id = ANY(:f_docs)")
        params["f_docs"] = [int(i) for i in filters.document_ids]
    if filters.tags:
        parts.append("EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.id AND t.tag = ANY(:f_tags))")
        params["f_tags"] = list(filters.tags)
    for name, bound, op in (("f_after", filters.modified_after, ">="), ("f_before", filters.modified_before, "<=")):
        if bound is not None:  # metadata's `modified` when it parsed, else updated_at (as Filters.match_document)
            parts.append(f"(d.modified_at {op} :{name} OR (d.modified_at IS NULL AND d.updated_at {op} :{name}))")
            params[name] = as_utc(bound)
    for n, (key, value) in enumerate(filters.metadata):
        row = f"SELECT 1 FROM document_metadata m WHERE m.document_id = d.id AND m.key = :f_mk{n}"
        params[f"f_mk{n}"] = encode_key(key)
        if value is None:  # a null and a missing key both equal None
            parts.append(f"NOT EXISTS ({row})")
        elif is_scalar(value):
            enc = encode_value(value)
            parts.append(f"EXISTS ({row} AND m.value = :f_mv{n})" if enc != NO_MATCH else "FALSE")
            params[f"f_mv{n}"] = enc
        else:
            parts.append(f"(d.metadata::jsonb -> :f_mj{n}) = CAST(:f_mv{n} AS jsonb)")
            params[f"f_mj{n}"], params[f"f_mv{n}"] = key, json.dumps(value, default=str)
    return PgFilter(" AND ".join(parts), params)
