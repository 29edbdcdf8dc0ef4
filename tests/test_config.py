"""Settings: env overrides, rag.toml, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.config import Settings


def test_env_overrides_nested(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    monkeypatch.setenv("RAG_CHUNKING__CHUNK_TOKENS", "128")
    monkeypatch.setenv("RAG_INDEX__DENSE", "hnsw")
    s = Settings()
    assert s.home == tmp_path and s.chunking.chunk_tokens == 128 and s.index.dense == "hnsw"
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'rag.db'}"


def test_toml_file_and_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "rag.toml"
    cfg.write_text('home = "/srv/rag"\n[chunking]\nchunk_tokens = 100\noverlap_tokens = 10\n')
    monkeypatch.setenv("RAG_CONFIG", str(cfg))
    s = Settings()
    assert s.home == Path("/srv/rag") and s.chunking.chunk_tokens == 100
    monkeypatch.setenv("RAG_CHUNKING__CHUNK_TOKENS", "90")
    assert Settings().chunking.chunk_tokens == 90, "environment beats the file"


def test_bad_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_INDEX__DENSE", "ivf")
    with pytest.raises(ValidationError, match="dense"):
        Settings()


def test_chunking_hash_changes_with_config() -> None:
    a = Settings().chunking
    b = a.model_copy(update={"chunk_tokens": 100})
    assert a.config_hash("m") != b.config_hash("m") and a.config_hash("m") != a.config_hash("other")
