"""Names of the PostgreSQL-only schema objects (migration 0005) and the SQL that uses them.

They live outside the SQLAlchemy models because SQLite has no `vector` or
`tsvector` type; `include_object` keeps Alembic autogenerate from reporting
them as drift on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

VECTORS_TABLE = "chunk_vectors"
TSV_COLUMN = "tsv"
TS_CONFIG = "english"
PG_ONLY_TABLES = frozenset({VECTORS_TABLE})
PG_ONLY_COLUMNS = frozenset({("chunks", TSV_COLUMN)})
PG_ONLY_INDEX_PREFIXES = ("ix_chunks_tsv", "ix_chunk_vectors_")


def hnsw_index_name(collection_id: int) -> str:
    """One partial HNSW index per collection (its own dimension, dropped with it)."""
    return f"ix_chunk_vectors_hnsw_c{int(collection_id)}"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic hook: skip the objects migration 0005 creates by hand on PostgreSQL."""
    if type_ == "table" and name in PG_ONLY_TABLES:
        return False
    if type_ == "column" and (getattr(obj.table, "name", None), name) in PG_ONLY_COLUMNS:
        return False
    return not (type_ == "index" and name and name.startswith(PG_ONLY_INDEX_PREFIXES))


def vector_literal(vec: Any) -> str:
    """pgvector's text form, '[0.1,0.2,...]' (sent as text and cast: no adapter to register)."""
    return "[" + ",".join(f"{float(x):.8g}" for x in vec) + "]"
