"""Context headers and BM25 neighbour windows: what the retrievers see of a chunk."""

from __future__ import annotations

from rag.contextual import ChunkRow, context_header, index_text, sparse_texts


def test_header_joins_title_and_sections_and_skips_what_the_chunk_opens_with() -> None:
    assert context_header("Guide", ("Install", "Linux"), "Run the script.") == "Guide › Install › Linux"
    # The first chunk usually starts with the title (and a Markdown chunk with its heading).
    assert context_header("Guide", ("Install",), "Guide\n\nInstall\nRun the script.") == ""
    assert context_header(None, (), "text") == ""
    assert index_text("Guide", (), "Run it.") == "Guide\n\nRun it."
    assert index_text("Guide", (), "Run it.", header=False) == "Run it."
    assert len(context_header("T" * 500, (), "x")) == 200


def test_sparse_texts_add_neighbours_within_a_document_only() -> None:
    rows = [ChunkRow(10, 1, 0, "alpha", "Doc one", ()), ChunkRow(12, 1, 2, "gamma", "Doc one", ()),
            ChunkRow(11, 1, 1, "beta", "Doc one", ("Part",)), ChunkRow(20, 2, 0, "delta", "Other", ())]
    texts = sparse_texts(rows, neighbours=1, header=True)
    assert texts == ["Doc one\n\nalpha beta", "Doc one\n\nbeta gamma", "Doc one › Part\n\nalpha beta gamma",
                     "Other\n\ndelta"]
    assert sparse_texts(rows, neighbours=0, header=False) == ["alpha", "gamma", "beta", "delta"]


def test_title_words_find_a_later_chunk_but_the_hit_shows_the_chunk_alone(rag) -> None:
    from rag.types import SourceText

    body = " ".join(f"Sentence {i} describes measurement procedures and calibration." for i in range(120))
    rag.settings.index.bm25_neighbours = 0  # the header alone must do it
    rag.ingest_texts([SourceText(source="doc", title="Zyxolith reactor manual", text=body),
                      SourceText(source="other", title="Gardening", text="Roses need sun and water.")],
                     collection="c")
    hits = rag.search("zyxolith", collection="c", k=10, mode="bm25")
    chunks = rag.store.chunk_count("c")
    assert chunks > 3
    assert len(hits) == chunks - 1  # every chunk of the manual, none of the other document
    assert all(h.source == "doc" for h in hits)
    assert sum("Zyxolith" in h.text for h in hits) == 1  # only the first chunk holds the title itself


def test_changed_chunking_settings_re_chunk_on_the_next_ingest(rag, caplog) -> None:
    from sqlalchemy import select

    from rag.store.ledger import Chunk
    from rag.types import SourceText

    docs = [SourceText(source=f"d{i}", title=f"Title {i}", text="word " * 600) for i in range(2)]
    assert rag.ingest_texts(docs, collection="c").summary()["ok"] == 2
    assert rag.ingest_texts(docs, collection="c").summary()["skipped"] == 2
    with rag.store.sessions() as s:
        before = set(s.scalars(select(Chunk.text_hash)))
    rag.settings.chunking.context_header = False
    with caplog.at_level("WARNING"):
        assert rag.ingest_texts(docs, collection="c").summary()["ok"] == 2
    assert "chunked with other settings" in caplog.text
    with rag.store.sessions() as s:
        after = set(s.scalars(select(Chunk.text_hash)))
    assert before != after  # later chunks are embedded without the header now
    assert rag.ingest_texts(docs, collection="c").summary()["skipped"] == 2
