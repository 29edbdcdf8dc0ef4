"""Engine, sessions and migrations for the ledger.

The schema is created only by Alembic. `open_engine` upgrades to head on
first use, so a new user never runs a migration command by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from rag.errors import ConfigError

# Shipped inside the package (package data), so a wheel install migrates like a checkout does.
ALEMBIC_DIR = Path(__file__).resolve().parents[1] / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine with the pragmas SQLite needs for integrity and concurrent readers."""
    if url.startswith(("postgresql://", "postgres://")):  # the psycopg 3 driver, not psycopg2
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(url: str) -> Any:
    """An Alembic Config pointing at our migrations, for the given database."""
    from alembic.config import Config

    if not (ALEMBIC_DIR / "env.py").exists():
        raise ConfigError(f"migrations not found at {ALEMBIC_DIR}; the installed package is incomplete: "
                          "reinstall rag-platform")
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on this engine's database."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def open_engine(url: str, *, migrate: bool = True) -> Engine:
    """Create the engine and bring the schema to head when it lags."""
    engine = make_engine(url)
    if migrate and current_revision(engine) != head_revision():
        upgrade(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, future=True)


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
