"""The Python API refuses what it would silently misread: k=-1, dense_weight=3, Filters(tags="hr")."""

from __future__ import annotations

from datetime import datetime

import pytest

from rag import RAG, Filters, SourceText
from rag.errors import ConfigError


@pytest.fixture
def kb(rag: RAG) -> RAG:
    rag.ingest_texts([SourceText("a.md", "# A\n\nExpense reports are filed within ten days.", metadata={"tags": ["hr"]}),
                      SourceText("b.md", "# B\n\nLaptops are replaced every three years.", metadata={"tags": "it"})],
                     collection="kb")
    return rag


@pytest.mark.parametrize("kwargs, fragment", [
    ({"k": -1}, "k=-1 must be a whole number of at least 1"),
    ({"k": 0}, "k=0"),
    ({"k": True}, "k=True"),
    ({"k": 2.5}, "k=2.5"),
    ({"fetch_k": 0}, "fetch_k=0"),
    ({"dense_weight": 3}, "dense_weight=3 must be between 0"),
    ({"dense_weight": -0.1}, "dense_weight=-0.1"),
    ({"rerank_depth": 0}, "rerank_depth=0"),
    ({"filters": {"tags": ["hr"]}}, "must be a rag.Filters"),
])
def test_search_refuses_bad_numbers_and_types(kb: RAG, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        kb.search("expenses", collection="kb", **kwargs)


def test_ask_refuses_bad_k_and_providers(kb: RAG) -> None:
    with pytest.raises(ConfigError, match="k=0"):
        kb.ask("expenses?", collection="kb", k=0)
    with pytest.raises(ConfigError, match="list of provider names"):
        kb.ask("expenses?", collection="kb", providers="extractive")  # type: ignore[arg-type]


def test_filters_refuse_a_bare_string_and_take_lists(kb: RAG) -> None:
    with pytest.raises(ConfigError, match=r"Filters\.tags='hr' must be a list or tuple of str, e\.g\. tags=\('hr',\)"):
        Filters(tags="hr")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="document_ids holds '3'"):
        Filters(document_ids=["3"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="must be a datetime"):
        Filters(modified_after="2024-01-01")  # type: ignore[arg-type]
    listed = Filters(tags=["hr"], metadata={"team": "x"})  # type: ignore[arg-type]
    assert listed.tags == ("hr",) and listed.metadata == (("team", "x"),) and listed == Filters(
        tags=("hr",), metadata=(("team", "x"),))
    hits = kb.search("expenses laptops", collection="kb", k=5, filters=Filters(tags=["hr"]))  # type: ignore[arg-type]
    assert [h.source for h in hits] == ["a.md"]
    assert Filters(modified_after=datetime(2024, 1, 1)).modified_after == datetime(2024, 1, 1)
