"""Per-question scores for one answer: the row that eval.harness stores and bench/answer.py prints.

Metrics that do not apply are None, never 0 (a closed-book answer has no
citations; an unanswerable question has no gold answer to match), so that
means and confidence intervals are taken only over the questions they apply to.
"""

from __future__ import annotations

from typing import Any

from rag.cite import is_abstention, strip_markers
from rag.llm.base import Completion
from rag_platform.eval.datasets import QAItem
from rag_platform.eval.metrics import contains_answer, exact_match, rouge_l, token_f1


def cited_is_gold(answer: Any, n: int, item: QAItem) -> bool:
    """A cited source counts as relevant when it is the gold passage or holds a gold answer."""
    hit = answer.sources[n - 1]
    return bool(hit.source in item.gold_sources or contains_answer(hit.text, item.answers))


def score_rag(answer: Any, item: QAItem, latency_s: float, ttft_s: float | None) -> tuple[str, dict[str, Any],
                                                                                        dict[str, Any]]:
    """(answer text, metrics, detail) for a `rag.answer.Answer`."""
    text = strip_markers(answer.text)
    cites = list(answer.citations)
    gold_cited = [cited_is_gold(answer, c.n, item) for c in cites] if item.answerable else []
    metrics = {
        "em": exact_match(text, item.answers) if item.answerable else None,
        "f1": token_f1(text, item.answers) if item.answerable else None,
        "rouge_l": rouge_l(text, item.answers) if item.answerable else None,
        "citation_precision": sum(gold_cited) / len(cites) if cites and item.answerable else None,
        "citation_recall": float(any(c.source in item.gold_sources for c in cites))
        if item.answerable and item.gold_sources else None,
        "supported_share": answer.supported_share if cites else None,
        "groundedness": answer.groundedness,
        "abstention_correct": float(bool(answer.abstained) != item.answerable),
        "gold_retrieved": float(any(h.source in item.gold_sources for h in answer.sources))
        if item.gold_sources else None,
        "latency_s": latency_s, "ttft_s": answer.ttft_s if answer.ttft_s is not None else ttft_s,
        "tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out, "cost_usd": answer.cost_usd,
    }
    detail = {
        "question": item.question, "gold": list(item.answers), "answerable": item.answerable,
        "provider": answer.provider, "abstained": answer.abstained,
        "sources": [{"n": n, "source": h.source, "title": h.title, "chunk_id": h.chunk_id,
                     "gold": h.source in item.gold_sources} for n, h in enumerate(answer.sources, 1)],
        "citations": [{"n": c.n, "source": c.source, "supported": c.supported, "sentence": c.sentence,
                       "relevant": gold_cited[i] if gold_cited else None} for i, c in enumerate(cites)],
    }
    return answer.text, metrics, detail


def score_closed(done: Completion, item: QAItem) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(answer text, metrics, detail) for a closed-book completion: no sources, no citations."""
    text = done.text.strip()
    metrics = {
        "em": exact_match(text, item.answers) if item.answerable else None,
        "f1": token_f1(text, item.answers) if item.answerable else None,
        "rouge_l": rouge_l(text, item.answers) if item.answerable else None,
        "abstention_correct": float(is_abstention(text) != item.answerable) if not item.answerable else None,
        "latency_s": done.latency_s, "ttft_s": done.ttft_s, "tokens_in": done.usage.input_tokens,
        "tokens_out": done.usage.output_tokens, "cost_usd": 0.0,
    }
    detail = {"question": item.question, "gold": list(item.answers), "answerable": item.answerable,
              "provider": done.provider, "finish_reason": done.finish_reason, "sources": [], "citations": []}
    return text, metrics, detail
