"""documents.source_rev: the source backwards, indexed, so a glob such as "*.pdf" is an index range (issue 13)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:40:00.000000

A source glob with no literal prefix ("*.md", "*/2024/report.pdf") scanned every entry of the
(collection_id, status, source_uri) index; its literal suffix, reversed, is a prefix of
`source_rev` (`rag.store.local_filters`). The upgrade fills the column in keyset pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.add_column("documents", sa.Column("source_rev", sa.String(length=2048), nullable=True))
    docs = sa.table("documents", sa.column("id", sa.BigInteger()), sa.column("source_uri", sa.String()),
                    sa.column("source_rev", sa.String()))
    conn = op.get_bind()
    set_rev = sa.update(docs).where(docs.c.id == sa.bindparam("b_id")).values(source_rev=sa.bindparam("b_rev"))
    last = -1
    while True:
        page: Sequence[Any] = conn.execute(sa.select(docs.c.id, docs.c.source_uri).where(docs.c.id > last)
                                           .order_by(docs.c.id).limit(_BATCH)).all()
        if not page:
            break
        conn.execute(set_rev, [{"b_id": d, "b_rev": src[::-1]} for d, src in page])
        last = page[-1][0]
    op.create_index("ix_documents_collection_status_source_rev", "documents",
                    ["collection_id", "status", "source_rev"])


def downgrade() -> None:
    op.drop_index("ix_documents_collection_status_source_rev", table_name="documents")
    op.drop_column("documents", "source_rev")
