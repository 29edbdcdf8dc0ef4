"""Document-id sets per filter value, kept in the ledger: a tag, media type or metadata filter reads a few blobs.

A filter value that many documents share (a tag on half of 250k documents) cost 20 ms as index
rows, about 80 ns an id stepped out of SQLite, which is as much as the whole search it filters
(`bench/scale_local.py`). Here each value's documents are stored as blocks of a compressed
bitmap, Roaring's layout (Lambert et al.): document ids split into blocks of 65,536, and a
block holding fewer than 4,096 of them is a sorted uint16 array (2 bytes an id), a fuller one
a plain 8 KiB bitmap. Reading a value is one indexed range of rows, a few KiB to a few hundred
KiB, and numpy turns them into ids.

Table `field_bits` (collection_id, field, block, bits), WITHOUT ROWID; `field` is the filter value
(`tag_field`, `media_field`, `meta_field`) or the month of the document's date (`date_field`): a date
range reads its whole months as one key range and asks SQL only about its two partial months. Only
ok documents are in it: the embedded store adds a
document's fields in the transaction that inserts it and removes them in the one that deletes it
(`rag.store.local`), and a collection's rows go with it (ON DELETE CASCADE). Migration 0009 fills
it for homes written before. PostgreSQL keeps its own filter plan (`rag.store.pg_filters`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rag.store.allowed import sorted_unique
from rag.store.doc_fields import as_utc, encode_key, encode_value, is_scalar, modified_at
from rag.store.ledger import FieldBits, document_tags

BLOCK_SHIFT = 16
BLOCK = 1 << BLOCK_SHIFT
DENSE_BYTES = BLOCK // 8  # a full block's bitmap; an array block is always shorter (at most SPARSE_MAX ids)
SPARSE_MAX = 4095


def tag_field(tag: str) -> str:
    return "t\x1f" + tag


def media_field(media_type: str) -> str:
    return "y\x1f" + media_type


def meta_field(key: str, value: Any) -> str | None:
    """A scalar metadata value's field (None for None, lists and objects: those stay with SQL and Python)."""
    if value is None or not is_scalar(value):
        return None
    return "m\x1f" + encode_key(str(key)) + "\x1f" + str(encode_value(value))


def date_field(when: datetime) -> str:
    """The month a document's date falls in (UTC), `d\x1fYYYY-MM`: months sort as text."""
    when = as_utc(when)
    return f"d\x1f{when.year:04d}-{when.month:02d}"


def month_start(when: datetime) -> datetime:
    when = as_utc(when)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def next_month(when: datetime) -> datetime | None:
    """The first instant of the month after `when`'s (None past year 9999)."""
    when = as_utc(when)
    if when.year == 9999 and when.month == 12:
        return None
    return datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=UTC)


def document_fields(metadata: dict[str, Any] | None, media_type: str, updated_at: datetime | None = None) -> list[str]:
    """Every field an ok document is found under, once each.

    Its date is the one a date filter tests: the metadata's `modified` when it parses, else
    `updated_at` (when it was written; a move keeps it), both fixed for the document's life.
    """
    out = [tag_field(t) for t in document_tags(metadata)] + [media_field(media_type)]
    when = modified_at(metadata) or updated_at
    if when is not None:
        out.append(date_field(when))
    for key, value in (metadata or {}).items():
        f = meta_field(str(key), value)
        if f is not None:
            out.append(f)
    return list(dict.fromkeys(out))


def encode(offsets: np.ndarray) -> bytes:
    """A block's sorted, distinct offsets as an array (< 4096 of them) or a bitmap."""
    if len(offsets) <= SPARSE_MAX:
        return np.asarray(offsets, "<u2").tobytes()
    bits = np.zeros(BLOCK, dtype=bool)
    bits[offsets] = True
    return np.packbits(bits, bitorder="little").tobytes()


def decode(blob: bytes) -> np.ndarray:
    """A block's offsets, ascending."""
    raw = np.frombuffer(blob, dtype=np.uint8)
    if len(raw) == DENSE_BYTES:
        return np.flatnonzero(np.unpackbits(raw, bitorder="little")).astype(np.int64)
    return np.frombuffer(blob, dtype="<u2").astype(np.int64)


def field_ids(s: Session, collection_id: int, fields: Sequence[str]) -> np.ndarray:
    """Sorted ids of the ok documents found under any of `fields` (a union: tags or media types OR'ed)."""
    return _ids(s.execute(select(FieldBits.block, FieldBits.bits).where(
        FieldBits.collection_id == collection_id, FieldBits.field.in_(list(fields)))).all())


def month_ids(s: Session, collection_id: int, first: datetime | None, stop: datetime | None) -> np.ndarray:
    """Sorted ids of the ok documents dated in whole months from `first`'s to before `stop`'s (None: no bound),
    one range of the table's primary key."""
    lo = date_field(first) if first is not None else "d\x1f"
    hi = date_field(stop) if stop is not None else "d\x20"
    if lo >= hi:
        return np.zeros(0, np.int64)
    return _ids(s.execute(select(FieldBits.block, FieldBits.bits).where(
        FieldBits.collection_id == collection_id, FieldBits.field >= lo, FieldBits.field < hi)).all())


def _ids(rows: Sequence[Any]) -> np.ndarray:
    """(block, bits) rows as sorted, distinct document ids (one field's blocks come in key order: sorted)."""
    if not rows:
        return np.zeros(0, np.int64)
    return sorted_unique(np.concatenate([decode(bits) + (int(block) << BLOCK_SHIFT) for block, bits in rows]))


def change(s: Session, collection_id: int, added: Iterable[tuple[str, int]] = (),
           removed: Iterable[tuple[str, int]] = ()) -> None:
    """Add and remove (field, document id) pairs: each touched block is read, changed and written once."""
    plus: dict[tuple[str, int], list[int]] = defaultdict(list)
    minus: dict[tuple[str, int], list[int]] = defaultdict(list)
    for pairs, into in ((added, plus), (removed, minus)):
        for f, doc in pairs:
            into[(f, doc >> BLOCK_SHIFT)].append(doc & (BLOCK - 1))
    keys = sorted(set(plus) | set(minus))
    if not keys:
        return
    have: dict[tuple[str, int], bytes] = {}
    for n in range(0, len(keys), 400):  # a bounded IN list of (field, block) pairs
        part = keys[n:n + 400]
        for f, block, bits in s.execute(select(FieldBits.field, FieldBits.block, FieldBits.bits).where(
                FieldBits.collection_id == collection_id,
                tuple_(FieldBits.field, FieldBits.block).in_(part))):
            have[(str(f), int(block))] = bytes(bits)
    upserts: list[dict[str, Any]] = []
    empties: list[tuple[str, int]] = []
    for key in keys:
        old = have.get(key)
        mask = np.zeros(BLOCK, dtype=bool)
        if old is not None:
            mask[decode(old)] = True
        mask[minus.get(key, [])] = False  # first: a deleted document's id may come back for a new one
        mask[plus.get(key, [])] = True
        cur = np.flatnonzero(mask)
        if len(cur):
            upserts.append({"collection_id": collection_id, "field": key[0], "block": key[1], "bits": encode(cur)})
        elif old is not None:
            empties.append(key)
    if upserts:
        stmt = sqlite_insert(FieldBits)
        s.execute(stmt.on_conflict_do_update(index_elements=["collection_id", "field", "block"],
                                             set_={"bits": stmt.excluded.bits}), upserts)
    for n in range(0, len(empties), 400):
        s.execute(delete(FieldBits).where(FieldBits.collection_id == collection_id,
                                           tuple_(FieldBits.field, FieldBits.block).in_(empties[n:n + 400])))


def count_rows(s: Session, collection_id: int) -> int:
    """Rows held for a collection (what the tests check after a collection is deleted)."""
    return int(s.scalar(select(func.count()).select_from(FieldBits).where(
        FieldBits.collection_id == collection_id)) or 0)
