"""A document's filterable fields as indexed rows and columns, so every filter is an index lookup.

Tags have `document_tags` (`rag.store.ledger.document_tags`); this module gives the other two:
metadata equality (`document_metadata`: one row per top-level key, its value in a canonical text
form that two values share exactly when Python's `==` says they are equal, as
`Filters.match_document` compares them) and the date a filter tests (`documents.modified_at`:
the metadata's `modified` when it parses as ISO 8601, else NULL and the filter falls back to
`updated_at`). Both are derived from the metadata alone, so they are written with the document
and never go stale; migration 0008 backfills them.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from datetime import UTC, datetime
from typing import Any

MAX_TEXT = 200  # longer keys and values are stored as a hash: a PostgreSQL btree entry must stay small
NO_MATCH = "x:nan"  # NaN's row: it blocks `key == None` but equals nothing, not even itself


def _bounded(kind: str, text: str) -> str:
    if len(text) <= MAX_TEXT:
        return f"{kind}:{text}"
    return f"{kind}#{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()}"


def encode_key(key: str) -> str:
    """A metadata key as stored in `document_metadata.key` (long keys hashed)."""
    return _bounded("k", key)


def encode_value(value: Any) -> str | None:
    """The canonical text of a metadata value; None for None (no row: a null and a missing key are alike).

    Numbers and booleans share one form when Python finds them equal (1 == 1.0 == True): an
    integral value is written as its exact integer, any other float by `repr`. Strings get
    their own prefix, so "1" never equals 1. Lists and objects get a `j` form from sorted
    JSON: equal JSON means equal values, but Python may also find unlike JSON equal
    ([1] == [1.0]), so a filter on such a value narrows by key and checks the rest in Python.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _bounded("s", value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isnan(f):
            return NO_MATCH
        if math.isinf(f):
            return _bounded("n", "inf" if f > 0 else "-inf")
        if isinstance(value, numbers.Integral):
            return _bounded("n", str(int(value)))
        return _bounded("n", str(int(f)) if f.is_integer() else repr(f))
    return _bounded("j", json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))


def is_scalar(value: Any) -> bool:
    """Whether equality on `value` is decided by `encode_value` alone (no Python check needed)."""
    return value is None or isinstance(value, str | numbers.Real)


def metadata_rows(document_id: int, collection_id: int, metadata: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The `document_metadata` rows of one ok document: one per top-level key whose value is not None."""
    rows = []
    for key, value in (metadata or {}).items():
        enc = encode_value(value)
        if enc is not None:
            rows.append({"document_id": document_id, "collection_id": collection_id, "key": encode_key(str(key)),
                         "value": enc})
    return rows


def modified_at(metadata: dict[str, Any] | None) -> datetime | None:
    """The metadata's `modified` as an aware UTC datetime when it parses (naive means UTC), else None."""
    value = (metadata or {}).get("modified")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:  # year 1 with a positive offset: not representable in UTC
        return None


def as_utc(value: datetime) -> datetime:
    """A filter bound as stored: aware UTC (SQLite keeps the wall time only, so every value must be UTC)."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
