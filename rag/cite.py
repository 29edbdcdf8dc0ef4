"""Citations: parse [n] markers into pointers at chunks, then check each against its passage.

Users of RAG tools complain most about citations that do not support the
claim, so every citation is verified after generation: each cited sentence
is compared with the text of the chunk it cites, by lexical overlap and by
embedding similarity, and gets `supported: true/false`. The answer gets a
groundedness score: the share of its claim sentences with a supported citation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.config import CitationSettings
from rag.prompt import LOW_CONFIDENCE, NO_ANSWER
from rag.text import analyze, clean, split_sentences
from rag.types import Hit
from rag.vectors import SHARED

_MARKER = re.compile(r"\[(\d+(?:\s*[,;\u2013-]\s*\d+)*)\]")


@dataclass(frozen=True)
class Citation:
    """One [n] in one sentence, resolved to its chunk and checked against it."""

    n: int
    sentence: str
    chunk_id: int
    document_id: int
    source: str
    title: str | None
    page: int | None
    char_start: int
    char_end: int
    supported: bool
    lexical: float
    similarity: float
    evidence: str
    evidence_start: int
    evidence_end: int
    """Offsets of the best-matching sentence inside the chunk text, for highlighting."""


@dataclass(frozen=True)
class CitationReport:
    citations: list[Citation] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)
    """Numbers that point at no source (dropped, flagged)."""
    uncited: list[str] = field(default_factory=list)
    groundedness: float | None = 0.0
    """None for an abstention: there is no claim to ground."""
    abstained: bool = False
    low_confidence: bool = False


def marker_numbers(text: str) -> list[int]:
    """Numbers in [1], [1, 3], [2-4] markers, in order."""
    out: list[int] = []
    for group in _MARKER.findall(text):
        for part in re.split(r"\s*[,;]\s*", group):
            if re.search(r"[\u2013-]", part):
                a, b = (int(x) for x in re.split(r"\s*[\u2013-]\s*", part))
                out.extend(range(a, b + 1) if 0 < b - a < 20 else [a, b])
            else:
                out.append(int(part))
    return out


def strip_markers(text: str) -> str:
    return " ".join(_MARKER.sub(" ", text).split())


def claims(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence, cited numbers) for each sentence of the answer.

    A marker that opens the next sentence (some models write "... fused. [2] Next")
    belongs to the sentence before it.
    """
    out: list[tuple[str, list[int]]] = []
    for a, b in split_sentences(answer):
        sentence = answer[a:b].strip()
        lead = re.match(r"^((?:\[[\d,;\s\u2013-]+\]\s*)+)", sentence)
        if lead and out:
            prev, nums = out[-1]
            out[-1] = (prev + " " + lead.group(1).strip(), nums + marker_numbers(lead.group(1)))
            sentence = sentence[lead.end():].strip()
        if sentence:
            out.append((sentence, marker_numbers(sentence)))
    return out


def is_low_confidence(answer: str) -> bool:
    """The extractive answerer's "may not answer this exactly" opening."""
    return answer.lstrip().startswith(LOW_CONFIDENCE)


def is_abstention(answer: str) -> bool:
    text = strip_markers(answer).lower()
    return NO_ANSWER.lower().rstrip(".") in text or text.startswith("the sources do not")


def evidence_windows(text: str) -> list[tuple[int, int]]:
    """Spans of one sentence and of two adjacent sentences (a fact often spans a pronoun's antecedent)."""
    spans = split_sentences(text) or [(0, len(text))]
    return spans + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]


def _verbatim(claim: str, text: str) -> tuple[int, int] | None:
    """The span of `text` that `claim` quotes word for word (a "Term: sentence" lead-in allowed), else None.

    A quote needs no embedding to be checked: it is supported by construction.
    The span is the smallest run of units of `text` whose cleaned text holds the quote.
    """
    whole = clean(text)
    want = clean(claim)
    if want not in whole:
        lead, _sep, rest = claim.partition(": ")
        if not rest or clean(lead) not in whole or clean(rest) not in whole:
            return None
        want = clean(rest)
    if not want:
        return None
    spans = split_sentences(text) or [(0, len(text))]
    for width in (1, 2, 3):
        for i in range(len(spans) - width + 1):
            a, b = spans[i][0], spans[i + width - 1][1]
            if want in clean(text[a:b]):
                return a, b
    return 0, len(text)


def check(answer: str, hits: list[Hit], embedder: Any, cfg: CitationSettings) -> CitationReport:
    """Resolve and verify every citation of `answer`; `hits[n-1]` is source [n]."""
    if is_abstention(answer) and not marker_numbers(answer):
        return CitationReport(abstained=True, groundedness=None)
    low = is_low_confidence(answer)
    if low:
        answer = answer.lstrip()[len(LOW_CONFIDENCE):].strip()
    parsed = claims(answer)
    invalid = sorted({n for _s, nums in parsed for n in nums if not 1 <= n <= len(hits)})
    pairs = [(s, n) for s, nums in parsed for n in dict.fromkeys(nums) if 1 <= n <= len(hits)]
    uncited = [s for s, nums in parsed if not nums and len(analyze(s)) >= 3]
    if not pairs:
        return CitationReport([], invalid, uncited, 0.0, False, low)
    claim_texts = [strip_markers(s) for s, _n in pairs]
    spans = {i: _verbatim(claim_texts[i], hits[n - 1].text) for i, (_s, n) in enumerate(pairs)}
    quoted = {i: span for i, span in spans.items() if span is not None}
    todo = [i for i in range(len(pairs)) if i not in quoted]
    windows = {pairs[i][1]: evidence_windows(hits[pairs[i][1] - 1].text) for i in todo}
    flat = [(n, a, b) for n in windows for a, b in windows[n]]
    vecs = SHARED.encode(embedder, [claim_texts[i] for i in todo] + [hits[n - 1].text[a:b] for n, a, b in flat]) \
        if todo else np.zeros((0, 1))
    claim_vecs = {i: vecs[j] for j, i in enumerate(todo)}
    evid_vecs = vecs[len(todo):]
    rows = {n: [i for i, f in enumerate(flat) if f[0] == n] for n in windows}
    citations = []
    for i, (sentence, n) in enumerate(pairs):
        hit = hits[n - 1]
        words = set(analyze(claim_texts[i]))
        if i in quoted:
            a, b = quoted[i]
            citations.append(Citation(n, sentence, hit.chunk_id, hit.document_id, hit.source, hit.title, hit.page,
                                      hit.char_start, hit.char_end, True, 1.0, 1.0, hit.text[a:b], a, b))
            continue
        idx = rows[n]
        sims = evid_vecs[idx] @ claim_vecs[i]
        lexical = len(words & set(analyze(hit.text))) / len(words) if words else 0.0
        local = np.array([len(words & set(analyze(hit.text[flat[j][1]:flat[j][2]]))) / max(1, len(words))
                          for j in idx])
        best = int(np.argmax(sims + local))  # meaning and wording together pick the span
        sim = float(sims.max())
        ok = (lexical >= cfg.min_lexical and sim >= cfg.floor_similarity) or \
             (sim >= cfg.min_similarity and lexical >= cfg.floor_lexical)
        _n, a, b = flat[idx[best]]
        citations.append(Citation(n, sentence, hit.chunk_id, hit.document_id, hit.source, hit.title, hit.page,
                                  hit.char_start, hit.char_end, ok, round(lexical, 4), round(sim, 4),
                                  hit.text[a:b], a, b))
    claim_sentences = [s for s, _nums in parsed if not is_abstention(s)]
    supported = {c.sentence for c in citations if c.supported}
    grounded = sum(1 for s in claim_sentences if s in supported) / len(claim_sentences) if claim_sentences else 0.0
    return CitationReport(citations, invalid, uncited, round(grounded, 4), False, low)
