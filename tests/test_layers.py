"""Imports flow one way (docs/architecture.md): checked on the source, so a shortcut fails here first."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RAG = Path(__file__).resolve().parents[1] / "rag"


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions count too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_rag_never_imports_its_users() -> None:
    for path in RAG.rglob("*.py"):
        bad = {m for m in imported(path) if m.split(".")[0] in ("ingest", "eval", "apps", "bench", "tests")}
        assert not bad, f"{path.relative_to(RAG.parent)} imports {sorted(bad)}"


@pytest.mark.parametrize(("module", "forbidden"), [
    ("cite.py", ("rag.llm", "rag.store")),  # shared text utilities live in rag.text
    ("fusion.py", ("rag.store",)),  # top_k lives in rag.vectors
    ("answer.py", ("rag.llm",)),  # Attempt and Delta are plain data in rag.types
    ("llm/anthropic_provider.py", ("rag.llm.openai_provider",)),  # shared helpers: rag.llm.http_common
    ("llm/evidence.py", ("rag.store",)),
    ("llm/extractive.py", ("rag.store",)),
    ("protocols.py", ("rag.llm", "rag.store", "rag.embed", "rag.rerank", "rag.api", "rag.pipeline")),
    ("types.py", ("rag.",)),
])
def test_helpers_come_from_below(module: str, forbidden: tuple[str, ...]) -> None:
    bad = {m for m in imported(RAG / module) if m.startswith(forbidden)}
    assert not bad, f"rag/{module} imports {sorted(bad)}"
