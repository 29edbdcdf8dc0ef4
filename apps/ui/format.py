"""Turning answers and hits into what the pages show: citation cards, highlighted spans, score tables.

Plain functions over `rag` types, so the pages stay thin and this is tested
without a browser. Any text from a document is HTML-escaped before it is
wrapped in markup: a document is data, never page code.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

from rag.types import Hit
from rag_platform.ingest.ocr import ocr_note


def display_name(source: str, names: dict[str, str] | None = None) -> str:
    """What a user calls a document: the uploaded name, else the file name, else the source as is."""
    if names and source in names:
        return names[source]
    base = os.path.basename(source.rstrip("/\\"))
    return base or source


def highlight(text: str, start: int, end: int) -> str:
    """`text` as escaped HTML with `text[start:end]` inside <mark>; out-of-range spans are clamped.

    Example:
        >>> highlight("a <b> c", 2, 5)
        'a <mark>&lt;b&gt;</mark> c'
    """
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    parts = (html.escape(text[:start]), html.escape(text[start:end]), html.escape(text[end:]))
    body = f"{parts[0]}<mark>{parts[1]}</mark>{parts[2]}" if end > start else "".join(parts)
    return body.replace("\n", "<br>")


@dataclass(frozen=True)
class CitationCard:
    """One numbered source as the Ask page shows it (the label opens the passage)."""

    n: int
    label: str
    document: str
    page: int | None
    section: str
    passage_html: str
    claims: list[str]
    verified: bool | None
    """True: every citation of this source was supported; False: at least one was not; None: not cited."""


def citation_cards(answer: Any, names: dict[str, str] | None = None, *, cited_only: bool = True) -> list[CitationCard]:
    """One card per source [n] of `answer` (an `rag.answer.Answer`), in marker order.

    The passage is the cited chunk with the best-matching evidence span highlighted; when a source is
    cited by several sentences the first citation's span is highlighted and every claim is listed.
    """
    by_n: dict[int, list[Any]] = {}
    for c in answer.citations:
        by_n.setdefault(c.n, []).append(c)
    cards = []
    for n, hit in enumerate(answer.sources, 1):
        cites = by_n.get(n, [])
        if cited_only and not cites:
            continue
        verified = all(c.supported for c in cites) if cites else None
        span = (cites[0].evidence_start, cites[0].evidence_end) if cites else (0, 0)
        doc = display_name(hit.source, names)
        mark = {True: "✓ verified", False: "✗ not verified", None: "not cited"}[verified]
        page = f" · p. {hit.page}" if hit.page is not None else ""
        page += ocr_note(hit.metadata, hit.page)  # text read by OCR, with its confidence
        cards.append(CitationCard(n=n, label=f"[{n}] {doc}{page} · {mark}", document=doc, page=hit.page,
                                  section=" › ".join(hit.heading_path), passage_html=highlight(hit.text, *span),
                                  claims=[c.sentence for c in cites], verified=verified))
    return cards


def confidence_label(answer: Any) -> str:
    """Abstentions have no groundedness figure; a low-confidence answer says so."""
    if answer.abstained:
        return "abstained: the sources do not answer this"
    low = "low confidence: the quoted passage may not answer the question · " if getattr(
        answer, "low_confidence", False) else ""
    return f"{low}groundedness {answer.groundedness or 0.0:.2f}"


def answer_meta(answer: Any) -> str:
    """One line: who answered, how long it took, tokens, cost, groundedness (and failed attempts)."""
    ttft = f" (first token {answer.ttft_s:.2f} s)" if answer.ttft_s is not None else ""
    parts = [f"answered by **{answer.provider}** ({answer.model})", f"{answer.latency_s:.2f} s{ttft}",
             f"tokens {answer.tokens_in} in / {answer.tokens_out} out", f"cost ${answer.cost_usd:.4f}",
             confidence_label(answer)]
    if answer.cached:
        parts.append("cached")
    from rag.llm.fallback import describe_failures

    failed = describe_failures(list(answer.attempts))  # "openai: timeout (3 tries)", not the line three times
    line = " · ".join(parts)
    return line + (f"  \nfailed before: {'; '.join(failed)}" if failed else "")


def hit_rows(hits: list[Hit], names: dict[str, str] | None = None, *, preview: int = 160) -> list[dict[str, Any]]:
    """A table row per hit: fused rank and score, then each retriever's own rank and score."""
    retrievers = sorted({r for h in hits for r in (*h.ranks, *h.scores)})
    rows = []
    for i, h in enumerate(hits, 1):
        row: dict[str, Any] = {"rank": i, "score": round(h.score, 4), "document": display_name(h.source, names),
                               "page": str(h.page) if h.page is not None else "", "section": " › ".join(h.heading_path)}
        for r in retrievers:
            row[f"{r} rank"] = h.ranks.get(r)
            row[f"{r} score"] = round(h.scores[r], 4) if r in h.scores else None
        text = " ".join(h.text.split())
        row["passage"] = text if len(text) <= preview else text[: preview - 1] + "…"
        rows.append(row)
    return rows

