"""One registration path: built-ins are plugins listed in the registry, loaded like entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from rag import registry
from rag.config import RerankSettings
from rag.errors import ConfigError
from rag.protocols import Reranker
from rag.types import Hit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """An empty registry that has loaded nothing, and no installed package metadata (the list the test
    fills is what `entry_points(group="rag.plugins")` returns)."""
    eps: list[EntryPoint] = []
    monkeypatch.setattr(registry, "_FACTORIES", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in eps if e.group == group])
    yield eps


def test_builtins_are_known_without_package_metadata(fresh: list[EntryPoint]) -> None:
    assert registry.names("ingestor") == ["local", "ray"]
    assert registry.names("llm") == ["anthropic", "extractive", "llamacpp", "local", "openai"]
    assert registry.names("embedder") == ["int8", "onnx-int8", "sentence-transformers"]
    assert registry.names("reranker") == ["cross-encoder"]
    assert registry.names("store") == ["local", "postgresql"]
    assert registry.names("ocr") == ["rapidocr", "tesseract"]


def test_unknown_name_lists_the_builtins(fresh: list[EntryPoint]) -> None:
    with pytest.raises(ConfigError, match=r"unknown ingestor 'nope'; known: local, ray$"):
        registry.create("ingestor", "nope")


def test_builtin_factory_builds_the_real_part(fresh: list[EntryPoint]) -> None:
    rr = registry.create("reranker", "cross-encoder", RerankSettings(model="not-loaded-until-used"))
    assert type(rr).__name__ == "CrossEncoderReranker" and isinstance(rr, Reranker)


def test_entry_point_plugin_registers_the_same_way(fresh: list[EntryPoint], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rag_echo_plugin.py").write_text(
        "def register(register):\n"
        "    register('llm', 'echo', lambda *a, **k: ('echo', a))\n"
        "    register('reranker', 'cross-encoder', lambda *a, **k: 'replaced')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh.append(EntryPoint(name="echo", value="rag_echo_plugin:register", group="rag.plugins"))
    # An editable install of an older checkout lists a built-in as an entry point: loaded once only.
    fresh.append(EntryPoint(name="ingest", value="rag_platform.ingest.plugin:register", group="rag.plugins"))
    assert registry.create("llm", "echo", 1) == ("echo", (1,))
    assert "extractive" in registry.names("llm")
    assert registry.create("reranker", "cross-encoder") == "replaced"  # plugins load after built-ins


def test_runtime_registration_wins_over_a_builtin(fresh: list[EntryPoint]) -> None:
    registry.register("store", "local", lambda *a, **k: "fake store")
    assert registry.create("store", "local") == "fake store"
    assert registry.names("store") == ["local", "postgresql"]


def test_a_broken_plugin_fails_every_lookup(fresh: list[EntryPoint]) -> None:
    fresh.append(EntryPoint(name="broken", value="no_such_module_anywhere:register", group="rag.plugins"))
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere"):
            registry.names("llm")


def test_listing_names_imports_no_provider_sdk() -> None:
    code = ("import sys\nfrom rag import registry\nregistry.names('llm')\n"
            "print(sorted(m for m in ('rag.llm.openai_provider', 'rag.llm.anthropic_provider', "
            "'rag.llm.llamacpp', 'rag.store.postgres', 'rag_platform.ingest.ray_engine', 'rag_platform.ingest.ocr') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_ingestion_engines_satisfy_the_ingestor_protocol() -> None:
    from rag.protocols import Ingestor
    from rag_platform.ingest.ray_engine import RayIngestor
    from rag_platform.ingest.run import LocalIngestor

    assert issubclass(LocalIngestor, Ingestor) and issubclass(RayIngestor, Ingestor)


class _KeepOrder:
    """A plugin reranker: keeps the fused order (what a custom reranker registers as)."""

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings

    def rerank(self, query: str, hits: Sequence[Hit], depth: int | None = None) -> list[Hit]:
        return list(hits)


def test_the_reranker_setting_picks_a_plugin_reranker(fresh: list[EntryPoint], tmp_path: Path) -> None:
    from rag import RAG
    from rag.config import Settings

    registry.register("reranker", "keep-order", _KeepOrder)
    rag = RAG(Settings(home=tmp_path, rerank=RerankSettings(kind="keep-order", depth=7)))
    assert isinstance(rag.reranker, _KeepOrder) and rag.reranker.settings.depth == 7
    default = RAG(Settings(home=tmp_path / "default"))
    assert type(default.reranker).__name__ == "CrossEncoderReranker"
    with pytest.raises(ConfigError, match="unknown reranker 'nope'; known: cross-encoder, keep-order"):
        _ = RAG(Settings(home=tmp_path / "bad", rerank=RerankSettings(kind="nope"))).reranker
