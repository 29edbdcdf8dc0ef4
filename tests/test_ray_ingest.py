"""Ray Data ingestion: the same chunks as the local engine, in local mode and against a cluster address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from rag.store.ledger import Chunk, Document

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module (2 CPUs), shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """24 SciFact abstracts as Markdown files, plus one file that cannot be loaded."""
    folder = tmp_path_factory.mktemp("corpus")
    with open(SHARED_DATA / "scifact" / "corpus.jsonl", encoding="utf-8") as fh:
        for _n, line in zip(range(24), fh, strict=False):
            doc = json.loads(line)
            (folder / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    return folder


def _chunk_keys(rag) -> list[tuple[str, int, str]]:
    with rag.store.sessions() as s:
        rows = s.execute(select(Document.source_uri, Chunk.ordinal, Chunk.text_hash)
                         .join(Document, Chunk.document_id == Document.id)).all()
    return sorted((Path(src).name, o, h) for src, o, h in rows)


def test_ray_into_postgres_matches_local_engine(ray_session, corpus: Path, rag, pg_rag) -> None:
    local = rag.ingest([corpus], collection="c")
    distributed = pg_rag.ingest([corpus], collection="c", engine="ray", workers=2)
    assert local.summary() == distributed.summary() == {"ok": 24, "skipped": 0, "failed": 1, "removed": 0}
    assert local.chunks_added == distributed.chunks_added == distributed.texts_embedded
    assert _chunk_keys(rag) == _chunk_keys(pg_rag)
    assert [h.source for h in pg_rag.search("cerebral white matter diffusion", collection="c", k=1)] == \
        [h.source for h in rag.search("cerebral white matter diffusion", collection="c", k=1)]
    again = pg_rag.ingest([corpus], collection="c", engine="ray")
    assert again.summary()["skipped"] == 24 and again.chunks_added == 0


def test_cli_joins_a_running_cluster_by_address(ray_session, corpus: Path, pg_settings, tmp_path: Path) -> None:
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(corpus.glob("*.md"))[:4]:
        (few / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "RAG_DB_URL": pg_settings.database_url, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "rag_platform.apps.cli", "ingest", str(few), "-c", "cli", "--engine", "ray",
                          "--address", ray_session, "--home", str(tmp_path / "home")],
                         env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok 4" in out.stdout
