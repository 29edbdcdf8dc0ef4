"""document_tags: an indexed (collection, tag, document) table for tag filters (issue 13)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00.000000

A tag filter was a json_each scan of every document of the collection; with this
table it is an index range on (collection_id, tag). The store writes the rows with
each document (`rag.store.ledger.document_tags` says which values count as tags);
the upgrade backfills them from the metadata of every ok document already stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rag.store.ledger import document_tags

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "document_tags",
        sa.Column("document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "tag"),
    )
    op.create_index("ix_document_tags_collection_tag", "document_tags", ["collection_id", "tag", "document_id"])
    docs = sa.table("documents", sa.column("id", sa.BigInteger()), sa.column("collection_id", sa.BigInteger()),
                    sa.column("status", sa.String()), sa.column("metadata", sa.JSON()))
    tags = sa.table("document_tags", sa.column("document_id", sa.BigInteger()), sa.column("tag", sa.Text()),
                    sa.column("collection_id", sa.BigInteger()))
    conn = op.get_bind()
    last = -1
    while True:  # keyset pages: a million documents never sit in memory at once
        page = conn.execute(sa.select(docs.c.id, docs.c.collection_id, docs.c.metadata)
                            .where(docs.c.status == "ok", docs.c.id > last).order_by(docs.c.id).limit(_BATCH)).all()
        if not page:
            break
        rows = [{"document_id": d, "tag": t, "collection_id": c} for d, c, meta in page
                for t in document_tags(meta if isinstance(meta, dict) else None)]
        if rows:
            conn.execute(tags.insert(), rows)
        last = page[-1][0]


def downgrade() -> None:
    op.drop_index("ix_document_tags_collection_tag", table_name="document_tags")
    op.drop_table("document_tags")
