"""documents: indexes for the embedded store's SQL filters (issue 13)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:00:00.000000

Filters resolve to chunk ids in one SQL query (rag.store.local_filters): documents
of a collection by status and media type, then their chunks by document id.
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_documents_collection_status_media", "documents", ["collection_id", "status", "media_type"])


def downgrade() -> None:
    op.drop_index("ix_documents_collection_status_media", table_name="documents")
