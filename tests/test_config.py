"""Settings: env overrides, rag.toml, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import ConfigError


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
    with pytest.raises(ConfigError, match=r"^invalid RAG_INDEX__DENSE='ivf': Input should be 'flat', 'hnsw' or 'auto'$"):
        Settings()


def test_errors_from_keyword_arguments_and_rag_toml_name_their_source(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from rag.config import RetrievalSettings

    with pytest.raises(ConfigError, match=r"setting retrieval\.k=0: Input should be greater than or equal to 1"):
        Settings(retrieval=RetrievalSettings.model_construct(k=0).model_dump())
    cfg = tmp_path / "my.toml"
    cfg.write_text('home = "x"\n\n[[llm.providers]]\nname = "a"\nkind = "openai"\ntimeout_s = -1\n'
                   '[[llm.providers]]\nkind = "extractive"\n')
    monkeypatch.setenv("RAG_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        Settings()
    assert f"{cfg} line 6: llm.providers[0].timeout_s = -1: Input should be greater than 0" in str(err.value)
    assert f"{cfg} line 7: llm.providers[1].name: required but not set" in str(err.value)
    assert "\n" not in str(err.value)


def test_chunking_hash_changes_with_config() -> None:
    a = Settings().chunking
    b = a.model_copy(update={"chunk_tokens": 100})
    assert a.config_hash("m") != b.config_hash("m") and a.config_hash("m") != a.config_hash("other")


def test_offline_is_passed_to_loaders_and_rag_writes_no_environment(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """RAG() changes nothing process-wide: offline travels in the settings to every model loader."""
    from rag import RAG

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    online = Settings(home=tmp_path / "a", offline=False)
    assert not online.embedder.offline and not online.rerank.offline
    assert not any(p.offline for p in online.llm.providers)
    assert Settings(home=tmp_path / "b").embedder.offline
    before = dict(os.environ)
    RAG.open(tmp_path / "c")
    assert dict(os.environ) == before


def test_config_file_is_rag_config_else_rag_toml_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented rule: RAG_CONFIG replaces ./rag.toml; a RAG_CONFIG naming no file is an error."""
    from rag.config import config_path

    monkeypatch.delenv("RAG_CONFIG", raising=False)
    monkeypatch.delenv("RAG_RETRIEVAL__K", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rag.toml").write_text("[retrieval]\nk = 7\n")
    assert config_path() == Path("rag.toml") and Settings().retrieval.k == 7
    named = tmp_path / "elsewhere" / "mine.toml"
    named.parent.mkdir()
    named.write_text("[retrieval]\nk = 3\n")
    monkeypatch.setenv("RAG_CONFIG", str(named))
    assert Settings().retrieval.k == 3  # the working directory's rag.toml is not read
    (tmp_path / "rag.toml").unlink()
    named.unlink()
    with pytest.raises(ConfigError, match="RAG_CONFIG=.*names no file"):
        Settings()
    monkeypatch.delenv("RAG_CONFIG")
    assert Settings().retrieval.k == Settings.model_fields["retrieval"].default.k
