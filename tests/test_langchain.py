"""LangChain adapter: same top-k as our API, Documents in."""

from __future__ import annotations

from langchain_core.documents import Document

from rag import RAG, Filters
from rag.integrations.langchain import RagRetriever, documents_to_sources


def test_langchain_documents_in_and_retriever_out(rag: RAG) -> None:
    lc_docs = [
        Document(page_content="Invoices are archived for ten years in cold storage.",
                 metadata={"source": "policy.pdf", "page": 1, "tags": ["finance"]}),
        Document(page_content="Laptops are replaced every four years by IT.",
                 metadata={"source": "policy.pdf", "page": 2}),
        Document(page_content="Travel must be booked through the portal.", metadata={"source": "travel.md"}),
        Document(page_content="Standalone note without a source about parking permits."),
    ]
    report = rag.ingest_texts(documents_to_sources(lc_docs), collection="lc")
    assert report.summary()["ok"] == 4
    sources = {d.source_uri for d in rag.documents("lc")}
    assert {"policy.pdf#page=1", "policy.pdf#page=2", "travel.md"} <= sources

    retriever = RagRetriever(rag=rag, collection="lc", k=3)
    got = retriever.invoke("how long are invoices kept?")
    ours = rag.search("how long are invoices kept?", collection="lc", k=3)
    assert [d.metadata["chunk_id"] for d in got] == [h.chunk_id for h in ours]
    assert got[0].page_content == ours[0].text and "ten years" in got[0].page_content
    meta = got[0].metadata
    assert meta["source"] == "policy.pdf#page=1" and meta["score"] == ours[0].score
    assert set(meta["ranks"]) == {"dense", "bm25"}

    filtered = RagRetriever(rag=rag, collection="lc", k=3, filters=Filters(tags=("finance",)))
    assert [d.metadata["source"] for d in filtered.invoke("anything")] == ["policy.pdf#page=1"]
