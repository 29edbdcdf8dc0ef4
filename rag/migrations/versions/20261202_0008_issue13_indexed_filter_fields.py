"""documents.modified_at, document_metadata and indexes: every filter field an index lookup (issue 13)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:00:00.000000

Source globs become a range on (collection_id, status, source_uri) plus GLOB over the index
entries; media types an IN on (collection_id, status, media_type) (0006); dates a range on
(collection_id, status, modified_at, updated_at); metadata equality an index lookup on
document_metadata (collection_id, key, value). The upgrade backfills modified_at and the
metadata rows of every ok document already stored, in keyset pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from rag.store.doc_fields import metadata_rows, modified_at

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    # plain ALTER TABLE, no batch copy: recreating `documents` under foreign_keys=ON would cascade its drop to chunks
    op.add_column("documents", sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "document_metadata",
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "key"),
    )
    _backfill()
    op.create_index("ix_document_metadata_collection_key_value", "document_metadata",
                    ["collection_id", "key", "value", "document_id"])
    op.create_index("ix_documents_collection_status_source", "documents", ["collection_id", "status", "source_uri"])
    op.create_index("ix_documents_collection_status_modified", "documents",
                    ["collection_id", "status", "modified_at", "updated_at"])


def _backfill() -> None:
    docs = sa.table("documents", sa.column("id", sa.BigInteger()), sa.column("collection_id", sa.BigInteger()),
                    sa.column("status", sa.String()), sa.column("metadata", sa.JSON()),
                    sa.column("modified_at", sa.DateTime(timezone=True)))
    meta = sa.table("document_metadata", sa.column("document_id", sa.BigInteger()), sa.column("key", sa.Text()),
                    sa.column("value", sa.Text()), sa.column("collection_id", sa.BigInteger()))
    conn = op.get_bind()
    set_when = (sa.update(docs).where(docs.c.id == sa.bindparam("b_id"))
                .values(modified_at=sa.bindparam("b_when", type_=sa.DateTime(timezone=True))))
    last = -1
    while True:  # keyset pages: a million documents never sit in memory at once
        page: Sequence[Any] = conn.execute(
            sa.select(docs.c.id, docs.c.collection_id, docs.c.metadata)
            .where(docs.c.status == "ok", docs.c.id > last).order_by(docs.c.id).limit(_BATCH)).all()
        if not page:
            break
        rows = [r for d, c, m in page for r in metadata_rows(d, c, m if isinstance(m, dict) else None)]
        if rows:
            conn.execute(meta.insert(), rows)
        dated = [{"b_id": d, "b_when": modified_at(m if isinstance(m, dict) else None)} for d, _, m in page]
        dated = [r for r in dated if r["b_when"] is not None]
        if dated:
            conn.execute(set_when, dated)
        last = page[-1][0]


def downgrade() -> None:
    op.drop_index("ix_documents_collection_status_modified", table_name="documents")
    op.drop_index("ix_documents_collection_status_source", table_name="documents")
    op.drop_index("ix_document_metadata_collection_key_value", table_name="document_metadata")
    op.drop_table("document_metadata")
    op.drop_column("documents", "modified_at")  # SQLite >= 3.35 drops a column in place
