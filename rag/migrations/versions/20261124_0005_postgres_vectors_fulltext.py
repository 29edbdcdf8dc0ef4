"""postgres: pgvector chunk vectors and full-text column (no-op on other databases)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00.000000

On PostgreSQL the ledger also holds both indexes:
- `chunk_vectors(chunk_id, collection_id, embedding vector)`: an untyped
  `vector` column, because the dimension is per collection (per embedder).
  The HNSW index is a partial expression index per collection,
  `((embedding::vector(DIM)) vector_ip_ops) WHERE collection_id = ID`, created
  by `rag.store.postgres` when a collection is first searched (pgvector 0.6
  cannot index an untyped column, and the dimension is known only then).
- `chunks.tsv`: a generated `tsvector` (english configuration) with a GIN index.
These objects live outside the SQLAlchemy models on purpose (SQLite has no
such types); `rag.store.pg_schema.include_object` hides them from autogenerate.
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        "CREATE TABLE chunk_vectors ("
        " chunk_id BIGINT PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,"
        " collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,"
        " embedding vector NOT NULL)"
    )
    op.execute("CREATE INDEX ix_chunk_vectors_collection_id ON chunk_vectors (collection_id)")
    op.execute("ALTER TABLE chunks ADD COLUMN tsv tsvector"
               " GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED")
    op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_chunks_tsv")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS tsv")
    op.execute("DROP TABLE IF EXISTS chunk_vectors")
