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

from rag.filters import Filters, _aware


@dataclass(frozen=True)
class PgFilter:
    """A WHERE fragment over `documents d` plus its bind parameters (names prefixed `f_`)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def glob_to_regex(pattern: str) -> str:
    """An fnmatch glob as an anchored POSIX regex (`*` and `?` also cross '/', as fnmatch does)."""
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + "$"


# ISO 8601 dates only: anything else would make the cast fail for the whole query,
# while the embedded store just ignores an unparsable `modified`.
_WHEN = ("COALESCE(CASE WHEN (d.metadata::jsonb ->> 'modified') ~ '^\\d{4}-\\d{2}-\\d{2}'"
         " THEN (d.metadata::jsonb ->> 'modified')::timestamptz END, d.updated_at)")


def to_sql(filters: Filters | None) -> PgFilter | None:
    """The predicate for `filters`, or None when there is nothing to filter."""
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
        parts.append("(CASE jsonb_typeof(d.metadata::jsonb -> 'tags')"
                     " WHEN 'array' THEN (d.metadata::jsonb -> 'tags') ?| CAST(:f_tags AS text[])"
                     " WHEN 'string' THEN (d.metadata::jsonb ->> 'tags') = ANY(:f_tags)"
                     " ELSE false END)")
        params["f_tags"] = list(filters.tags)
    if filters.modified_after:
        parts.append(f"{_WHEN} >= :f_after")
        params["f_after"] = _aware(filters.modified_after)  # naive means UTC, as in Filters
    if filters.modified_before:
        parts.append(f"{_WHEN} <= :f_before")
        params["f_before"] = _aware(filters.modified_before)
    for n, (key, value) in enumerate(filters.metadata):
        parts.append(f"(d.metadata::jsonb -> :f_mk{n}) = CAST(:f_mv{n} AS jsonb)")
        params[f"f_mk{n}"], params[f"f_mv{n}"] = key, json.dumps(value, default=str)
    return PgFilter(" AND ".join(parts), params)
