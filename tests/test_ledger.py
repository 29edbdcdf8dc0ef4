"""The schema comes from Alembic and agrees with the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from rag.store.db import current_revision, head_revision, make_engine, open_engine, upgrade
from rag.store.ledger import Base


def test_migrations_match_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_first_use_creates_schema_at_head(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'new.db'}")
    assert current_revision(engine) == head_revision() is not None
    tables = set(inspect(engine).get_table_names())
    assert {"collections", "documents", "chunks", "embeddings", "ingest_runs", "ingest_files",
            "index_builds", "alembic_version"} <= tables


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    upgrade(engine)
    from alembic import command

    from rag.store.db import alembic_config

    cfg = alembic_config(str(engine.url))
    command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert "chunks" in inspect(engine).get_table_names()


def test_foreign_keys_cascade_in_sqlite(rag) -> None:
    from sqlalchemy import func, select

    from rag import SourceText
    from rag.store.ledger import Chunk

    rag.ingest_texts([SourceText(source="a", text="one two three")], collection="c")
    rag.delete_collection("c")
    with rag.store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 0
