"""The `rag` command: ingest with a report, search with sources, listings, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from apps.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    return home


def test_ingest_search_and_listings(env: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fusion.md").write_text("# Fusion\n\nReciprocal rank fusion adds 1/(k+rank) over retrievers.\n")
    (docs / "broken.docx").write_bytes(b"not a zip at all")
    out = runner.invoke(app, ["ingest", str(docs), "--collection", "kb"])
    assert out.exit_code == 0, out.output
    assert "ok 1" in out.output and "failed 1" in out.output
    assert "broken.docx" in out.output

    out = runner.invoke(app, ["search", "how does rank fusion work", "--collection", "kb", "-k", "2"])
    assert out.exit_code == 0, out.output
    assert "fusion.md" in out.output and "dense:1" in out.output

    # Without --mode/--fusion the settings decide (RAG_ env), not a CLI default.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_RETRIEVAL__MODE", "bm25")
        out = runner.invoke(app, ["search", "how does rank fusion work", "--collection", "kb", "-k", "2"])
    assert out.exit_code == 0, out.output
    assert "bm25 search" in out.output and "bm25:1" in out.output and "dense:" not in out.output

    out = runner.invoke(app, ["collections"])
    assert "kb" in out.output and "all-MiniLM-L6-v2" in out.output
    out = runner.invoke(app, ["docs", "kb"])
    assert "failed" in out.output and "fusion.md" in out.output

    again = runner.invoke(app, ["ingest", str(docs), "--collection", "kb"])
    assert "skipped 1" in again.output


def test_missing_path_and_unknown_collection_fail_clearly(env: Path) -> None:
    out = runner.invoke(app, ["ingest", "/no/such/folder", "--collection", "kb"])
    assert out.exit_code != 0
    assert "does not exist" in str(out.exception) + out.output
    out = runner.invoke(app, ["search", "q", "--collection", "nope"])
    assert out.exit_code != 0 and "no collection named 'nope'" in str(out.exception)


def test_bad_collection_name_is_refused(env: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello there")
    out = runner.invoke(app, ["ingest", str(tmp_path / "a.txt"), "--collection", "../evil"])
    assert out.exit_code != 0 and "not allowed" in str(out.exception)


def test_db_upgrade(env: Path) -> None:
    from rag.store.db import head_revision

    out = runner.invoke(app, ["db", "upgrade"])
    assert out.exit_code == 0 and f"database at revision {head_revision()}" in out.output
    assert head_revision() != "0001", "later migrations exist"
