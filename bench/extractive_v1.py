"""The extractive answerer as it was before issue 12 (kept for bench/answer.py's side-by-side baseline).

Original docstring: no model, picks the best-supported sentences and cites them.

It reads the numbered sources from the prompt we built, scores each sentence
by the IDF-weighted share of the question's terms it contains, and answers
with the best few, each cited. If no sentence covers enough of the question
it abstains with the standard "not in the sources" reply. Always available,
so a fallback chain that ends with it always ends with a grounded answer.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

from rag import registry
from rag.config import ProviderSettings
from rag.llm.base import Completion, Delta, GenerationParams, Message, StreamEvent, Usage
from rag.prompt import NO_ANSWER, parse_user_message
from rag.store.sparse import analyze

_QUESTION_WORDS = ("how what which who whom whose when where why does do did is are was were can could should "
                   "would will tell me explain describe list give please")
_MARKERS = re.compile(r"\[\d+(?:\s*[,;\u2013-]\s*\d+)*\]")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[-*#] )")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences (and list items, paragraphs and heading lines)."""
    spans, start = [], 0
    for m in _SENTENCE.finditer(text):
        if text[start:m.start()].strip():
            spans.extend(_split_headings(text, start, m.start()))
        start = m.end()
    if text[start:].strip():
        spans.extend(_split_headings(text, start, len(text)))
    return spans


def _split_headings(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A short line without end punctuation (a heading, a title) is its own span."""
    out, a = [], start
    for m in re.finditer(r"\n", text[start:end]):
        cut = start + m.start()
        line = text[a:cut].strip()
        if line and len(line.split()) <= 12 and not line.endswith((".", "!", "?", ":", ";", ",")):
            out.append((a, cut))
            a = cut + 1
    if text[a:end].strip():
        out.append((a, end))
    return out


class ExtractiveAnswerer:
    """Satisfies the LLM Protocol; `min_score` is the share of question weight a sentence must cover."""

    def __init__(self, cfg: ProviderSettings | None = None, home: Path | None = None, *,
                 min_score: float = 0.4, max_sentences: int = 3) -> None:
        self.name = cfg.name if cfg else "extractive"
        self.model = "extractive-v1"
        self.context_window = cfg.context_window if cfg and cfg.context_window else 16384
        self.min_score = min_score
        self.max_sentences = max_sentences

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def answer(self, question: str, sources: dict[int, str]) -> str:
        terms = set(analyze(question)) - set(analyze(_QUESTION_WORDS))
        candidates = [(n, " ".join(_MARKERS.sub("", src[a:b]).split()))
                      for n, src in sources.items() for a, b in split_sentences(src)]
        # Titles, headings (short, no end punctuation) and questions are not answers.
        candidates = [(n, c) for n, c in candidates if not c.rstrip("\"')").endswith("?") and (
                      len(c.split()) >= 12 or (len(c.split()) >= 4 and c.rstrip("\"')").endswith((".", "!"))))]
        if not terms or not candidates:
            return NO_ANSWER
        bags = [set(analyze(s)) for _n, s in candidates]
        df = {t: sum(1 for b in bags if t in b) for t in terms}
        idf = {t: math.log(1 + len(bags) / (1 + df[t])) for t in terms}
        total = sum(idf.values()) or 1.0
        scored = sorted(((sum(idf[t] for t in terms & bag) / total, -i) for i, bag in enumerate(bags)), reverse=True)
        picked = [(-neg_i, s) for s, neg_i in scored[: self.max_sentences] if s >= self.min_score]
        if not picked:
            return NO_ANSWER
        best = scored[0][0]
        picked = [(i, s) for i, s in picked if s >= 0.6 * best]
        return " ".join(f"{_end(candidates[i][1])} [{candidates[i][0]}]" for i, _s in picked)

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        t0 = time.perf_counter()
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        question, sources = parse_user_message(user)
        text = self.answer(question, sources)
        usage = Usage(self.count_tokens(user), self.count_tokens(text))
        dt = time.perf_counter() - t0
        return Completion(text, self.name, self.model, usage, "stop", dt, dt)

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        done = self.complete(messages, params)
        for piece in re.split(r"(?<=\]) ", done.text):
            yield Delta(piece + (" " if not piece.endswith(" ") and piece != done.text.split("] ")[-1] else ""))
        yield done


def _end(sentence: str) -> str:
    """Strip a trailing citation-like bracket or colon so our [n] reads cleanly."""
    return sentence.rstrip(" :;,")


registry.register("llm", "extractive-v1", ExtractiveAnswerer)
