"""Chunks fit the embedder, keep structure and offsets, and overlap."""

from __future__ import annotations

import pytest

from rag.config import ChunkingSettings
from rag.types import ParsedDocument, Segment
from rag_platform.ingest.chunking import Chunker, split_token_windows

SENTENCE = "Hybrid retrieval fuses sparse and dense rankings to recover passages either would miss. "


def doc(text: str, segments: tuple[Segment, ...] | None = None) -> ParsedDocument:
    return ParsedDocument("mem://x", "text/plain", text, segments or (Segment(0, len(text)),))


def test_no_chunk_exceeds_the_model_limit_even_when_configured_larger(embedder) -> None:
    chunker = Chunker(ChunkingSettings(chunk_tokens=4096, overlap_tokens=32), embedder)
    assert chunker.size == embedder.max_tokens == 254
    chunks = chunker.chunk(doc(SENTENCE * 200))
    assert len(chunks) > 5
    real = embedder.count_tokens([c.text for c in chunks])
    assert max(real) <= embedder.max_tokens
    assert [c.token_count for c in chunks] == real
    # With [CLS] and [SEP] the model sees at most its max sequence length: nothing is truncated.
    enc = embedder.tokenizer([c.text for c in chunks])["input_ids"]
    assert max(len(e) for e in enc) <= embedder._load().max_seq_length


def test_word_without_spaces_is_still_cut_below_the_limit(embedder) -> None:
    chunker = Chunker(ChunkingSettings(chunk_tokens=64, overlap_tokens=8), embedder)
    chunks = chunker.chunk(doc("x" * 3000 + "yz" * 2000))
    assert max(embedder.count_tokens([c.text for c in chunks])) <= 64


def test_offsets_point_at_the_chunk_text(embedder) -> None:
    text = (SENTENCE * 30) + "\n\n" + ("Another paragraph about BM25 and its k1 and b parameters. " * 30)
    chunks = Chunker(ChunkingSettings(chunk_tokens=100, overlap_tokens=20), embedder).chunk(doc(text))
    for c in chunks:
        assert text[c.char_start:c.char_end] == c.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_consecutive_chunks_overlap(embedder) -> None:
    chunks = Chunker(ChunkingSettings(chunk_tokens=80, overlap_tokens=20), embedder).chunk(doc(SENTENCE * 40))
    for a, b in zip(chunks, chunks[1:]):
        assert b.char_start < a.char_end, "the next chunk starts inside the previous one"
        assert b.char_start > a.char_start


def test_cuts_prefer_sentence_ends(embedder) -> None:
    chunks = Chunker(ChunkingSettings(chunk_tokens=60, overlap_tokens=0), embedder).chunk(doc(SENTENCE * 40))
    assert all(c.text.rstrip().endswith(".") for c in chunks[:-1])


def test_chunks_never_cross_sections_and_keep_page_and_heading(embedder) -> None:
    p1 = "Page one talks about dense vectors. " * 20
    p2 = "Page two talks about sparse BM25 scoring. " * 20
    text = p1 + "\n\n" + p2
    segs = (Segment(0, len(p1), page=1, heading_path=("Retrieval", "Dense")),
            Segment(len(p1) + 2, len(text), page=2, heading_path=("Retrieval", "Sparse")))
    chunks = Chunker(ChunkingSettings(chunk_tokens=64, overlap_tokens=8), embedder).chunk(doc(text, segs))
    for c in chunks:
        seg = segs[0] if c.page == 1 else segs[1]
        assert seg.start <= c.char_start and c.char_end <= seg.end
        assert c.heading_path == seg.heading_path
    assert {c.page for c in chunks} == {1, 2}


def test_tiny_heading_section_joins_the_next(embedder) -> None:
    text = "# Guide\n\n## Install\n\nRun make demo to install everything and ask a question."
    segs = (Segment(0, 7, None, ("Guide",)), Segment(9, len(text), None, ("Guide", "Install")))
    chunks = Chunker(ChunkingSettings(), embedder).chunk(doc(text, segs))
    assert len(chunks) == 1 and chunks[0].text.startswith("# Guide")
    assert chunks[0].heading_path == ("Guide", "Install")


def test_langchain_splitter_option_also_respects_the_limit(embedder) -> None:
    cfg = ChunkingSettings(chunk_tokens=50, overlap_tokens=10, splitter="langchain")
    text = SENTENCE * 30
    chunks = Chunker(cfg, embedder).chunk(doc(text))
    assert len(chunks) > 3
    assert max(embedder.count_tokens([c.text for c in chunks])) <= 50
    for c in chunks:
        assert text[c.char_start:c.char_end] == c.text


def test_split_windows_progress_and_cover() -> None:
    text = "a " * 500
    offsets = [(i * 2, i * 2 + 1) for i in range(500)]
    wins = split_token_windows(text, offsets, size=50, overlap=10)
    assert wins[0][0] == 0 and wins[-1][1] == 500
    assert all(b - a <= 50 for a, b in wins)
    assert all(w2[0] > w1[0] for w1, w2 in zip(wins, wins[1:]))


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingSettings(chunk_tokens=50, overlap_tokens=50)
