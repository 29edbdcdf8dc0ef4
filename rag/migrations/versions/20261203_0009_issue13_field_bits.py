"""field_bits: each tag, media type, scalar metadata value and month's documents as compressed bitmap blocks (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:30:00.000000

A filter value shared by many documents was read as one index row per document (about 80 ns an
id in SQLite); `rag.store.field_bits` keeps it as a few blobs instead. The upgrade fills the table
from every ok document already stored (SQLite; the PostgreSQL store keeps its own filter plan and
leaves the table empty), in keyset pages of documents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from rag.store.field_bits import BLOCK_SHIFT, document_fields, encode

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "field_bits",
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("bits", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("collection_id", "field", "block"),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "sqlite":
        _backfill()


def _backfill() -> None:
    docs = sa.table("documents", sa.column("id", sa.BigInteger()), sa.column("collection_id", sa.BigInteger()),
                    sa.column("status", sa.String()), sa.column("metadata", sa.JSON()),
                    sa.column("media_type", sa.String()), sa.column("updated_at", sa.DateTime(timezone=True)))
    bits = sa.table("field_bits", sa.column("collection_id", sa.BigInteger()), sa.column("field", sa.Text()),
                    sa.column("block", sa.Integer()), sa.column("bits", sa.LargeBinary()))
    conn = op.get_bind()
    blocks: dict[tuple[int, str, int], list[int]] = defaultdict(list)
    last = -1
    while True:  # keyset pages of documents; the offsets (a few bytes per field of each document) stay in memory
        page: Sequence[Any] = conn.execute(
            sa.select(docs.c.id, docs.c.collection_id, docs.c.metadata, docs.c.media_type, docs.c.updated_at)
            .where(docs.c.status == "ok", docs.c.id > last).order_by(docs.c.id).limit(_BATCH)).all()
        if not page:
            break
        for doc, coll, meta, media, updated in page:
            for f in document_fields(meta if isinstance(meta, dict) else None, media or "", updated):
                blocks[(int(coll), f, int(doc) >> BLOCK_SHIFT)].append(int(doc) & ((1 << BLOCK_SHIFT) - 1))
        last = page[-1][0]
    # offsets arrive ascending (documents by id) and distinct (a document names a field once)
    rows = [{"collection_id": c, "field": f, "block": b, "bits": encode(np.asarray(offs, np.int64))}
            for (c, f, b), offs in blocks.items()]
    for n in range(0, len(rows), _BATCH):
        conn.execute(bits.insert(), rows[n:n + _BATCH])


def downgrade() -> None:
    op.drop_table("field_bits")
