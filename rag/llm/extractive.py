"""The extractive answerer: no generative model; quotes the sentences that answer, each cited.

It takes the question and numbered sources that `rag.prompt.pack` attaches to the user message, scores every
sentence, list item and table row with the fitted model of
`rag.llm.evidence` (meaning, wording, neighbours, source rank, answer type),
and answers in one of three ways:

- confident (best probability >= `confident_from`): the best unit, with the
  neighbours in its source that help answer (its heading or definition term,
  the next sentence) and, rarely, an equally strong unit from another source;
- low confidence (between the thresholds): `LOW_CONFIDENCE`, then the closest
  passage: the best unit with its context and the next likeliest units of
  the same source (up to three units), quoted and cited, so the reader judges;
- abstention (below `abstain_below`): the standard "not in the sources" reply.

Every answer sentence is a verbatim quote (whitespace and line-wrap hyphens
normalised) and cites the source that holds it. Always available, so a
fallback chain that ends with it always ends with a grounded answer.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag import text as _text
from rag.config import ProviderSettings
from rag.llm import evidence as _evidence
from rag.llm.base import Completion, Delta, GenerationParams, Message, StreamEvent, Usage
from rag.llm.evidence import QUESTION_WORDS, Candidate, Model, candidates, features, load_model
from rag.prompt import LOW_CONFIDENCE, NO_ANSWER, parse_user_message
from rag.text import analyze


class ExtractiveAnswerer:
    """Satisfies the LLM Protocol. Give it the pipeline's embedder with `use_embedder` (else it loads the default).

    Example:
        >>> ex = ExtractiveAnswerer()
        >>> ex.answer("When was PDF made free?", {1: "Adobe made the PDF specification free in 1993."})
        'Adobe made the PDF specification free in 1993. [1]'
    """

    def __init__(self, cfg: ProviderSettings | None = None, home: Path | None = None, *,
                 max_sentences: int = 3, max_embed: int = _evidence.MAX_EMBED, model: Model | None = None) -> None:
        self.name = cfg.name if cfg else "extractive"
        self._model = model or load_model()
        self.model = f"extractive-{self._model.version}-{CODE_VERSION}"
        self.context_window = cfg.context_window if cfg and cfg.context_window else 16384
        self.max_sentences = max_sentences
        self.max_embed = max_embed
        self._embedder: Any = None

    def use_embedder(self, embedder: Any) -> None:
        """Share the pipeline's embedder (its query-vector cache too) instead of loading another."""
        self._embedder = embedder

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from rag.config import EmbedderSettings
            from rag.embed import make_embedder

            self._embedder = make_embedder(EmbedderSettings())
        return self._embedder

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def score(self, question: str, sources: dict[int, str]) -> tuple[list[Candidate], list[int], np.ndarray]:
        """(all candidates, indices of the scored ones, their probabilities)."""
        return self._score(question, candidates(sources))

    def _score(self, question: str, cands: list[Candidate]) -> tuple[list[Candidate], list[int], np.ndarray]:
        x, pool = features(question, cands, self.embedder, max_embed=self.max_embed)
        return cands, pool, self._model.proba(x) if len(pool) else np.zeros(0)

    def answer(self, question: str, sources: dict[int, str]) -> str:
        cands = candidates(sources)
        faq = faq_section(question, sources, cands, max_units=min(2, self.max_sentences))
        if faq is not None:
            return _render(*faq)
        cands, pool, probs = self._score(question, cands)
        if not len(pool) or float(probs.max()) < self._model.abstain_below:
            return NO_ANSWER
        if float(probs.max()) < self._model.confident_from:
            groups = closest(cands, pool, probs, self._model, self.max_sentences, terms=question_terms(question))
            return f"{LOW_CONFIDENCE} " + " ".join(_render(cands, g) for g in groups)
        groups = compose(cands, pool, probs, self._model, self.max_sentences, terms=question_terms(question))
        return " ".join(_render(cands, g) for g in groups)

    def complete(self, messages: list[Message], params: GenerationParams) -> Completion:
        t0 = time.perf_counter()
        last = next((m for m in reversed(messages) if m.role == "user"), Message("user", ""))
        user = last.content
        if last.sources is not None:  # built by rag.prompt.pack: the sources as they were, no parsing
            question, sources = last.question or "", dict(enumerate(last.sources, 1))
        else:
            question, sources = parse_user_message(user)
        text = self.answer(question, sources)
        usage = Usage(self.count_tokens(user), self.count_tokens(text))
        dt = time.perf_counter() - t0
        return Completion(text, self.name, self.model, usage, "stop", dt, dt)

    def stream(self, messages: list[Message], params: GenerationParams) -> Iterator[StreamEvent]:
        done = self.complete(messages, params)
        pieces = re.split(r"(?<=\]) ", done.text)
        for i, piece in enumerate(pieces):
            yield Delta(piece + (" " if i < len(pieces) - 1 else ""))
        yield done


CODE_VERSION = hashlib.sha256(b"".join(Path(f).read_bytes() for f in (__file__, _evidence.__file__, _text.__file__))
                              + LOW_CONFIDENCE.encode()).hexdigest()[:6]
"""Part of the model name, so the answer cache misses once the code that picks and frames sentences changes."""

_TYPE_WORDS = frozenset(analyze("year date day century decade number amount name time percentage kind type"))


def question_terms(question: str) -> set[str]:
    """Content terms a quoted passage should cover (question words and answer-type nouns left out)."""
    return {t for t in analyze(question) if len(t) > 1} - QUESTION_WORDS - _TYPE_WORDS  # "what's" leaves an "s"


def faq_section(question: str, sources: dict[int, str], cands: list[Candidate] | None = None,
                max_units: int = 2) -> tuple[list[Candidate], list[int]] | None:
    """The opening units of the section whose heading asks this very question, or None.

    FAQs and help pages put the question a reader asks in a heading ("What is Haystack?", "Can I trust the
    page numbers?") and its answer right under it; the fitted model never saw such headings (SQuAD has only
    article titles), and the answer sentence often repeats none of the question's words. A heading counts
    when it is a question on a line of its own with exactly the question's content terms (stemmed, question
    words aside), so this fires on the same question worded the same way, not on a related one. The
    highest-ranked source wins. `cands`: the units of `sources` when the caller has them already.
    """
    terms = question_terms(question)
    if not terms:
        return None
    cands = candidates(sources) if cands is None else cands

    def asks(c: Candidate) -> bool:
        src = sources[c.n]
        alone = src[:c.start].rstrip(" \t").endswith("\n") or not src[:c.start].strip()
        alone = alone and (src[c.end:].lstrip(" \t").startswith("\n") or not src[c.end:].strip())
        return (c.kind == "heading" or alone) and c.text.rstrip().endswith("?")

    for h, c in enumerate(cands):
        if not asks(c) or question_terms(c.text) != terms:
            continue
        units: list[Candidate] = []
        for u in cands[h + 1:]:
            if u.n != c.n or u.kind == "heading" or asks(u) or len(units) >= max_units:
                break
            units.append(u)
        if units:
            return units, list(range(len(units)))
    return None


def compose(cands: list[Candidate], pool: list[int], probs: np.ndarray, model: Model,
            max_sentences: int = 3, neighbour_ratio: float = 0.5, terms: set[str] | None = None) -> list[list[int]]:
    """Groups of adjacent candidate indices, one per cited source, best first.

    The best unit comes with its heading or definition term when it sits
    right under one, and with a neighbour that is strong on its own (at least
    `neighbour_ratio` of the best) or that holds question terms the best one
    lacks: "The default is 30 seconds." after the sentence that names the
    setting. A unit from another source joins only when it is confident on
    its own and nearly as strong as the best.
    """
    p = {i: float(v) for i, v in zip(pool, probs, strict=True)}
    order = sorted(pool, key=lambda i: -p[i])
    best = order[0]
    pos = {(c.n, c.index): i for i, c in enumerate(cands)}
    group = [best]
    covered = set(analyze(cands[best].text))
    prev = pos.get((cands[best].n, cands[best].index - 1))
    if prev is not None and cands[prev].kind == "heading" and (terms is None or (terms - covered) & set(
            analyze(cands[prev].text))):  # the heading or term names what the sentence is about
        group.append(prev)
        covered |= set(analyze(cands[prev].text))
    for step in (1, -1):
        j = pos.get((cands[best].n, cands[best].index + step))
        if j is None or j in group or cands[j].kind == "heading" or len(group) >= max_sentences:
            continue
        adds = terms is not None and bool((terms - covered) & set(analyze(cands[j].text)))
        if p.get(j, 0.0) >= neighbour_ratio * p[best] or adds:
            group.append(j)
    groups = [sorted(group, key=lambda i: cands[i].index)]
    used = len(group)
    for i in order[1:]:
        if used >= max_sentences:
            break
        if cands[i].n != cands[best].n and p[i] >= model.confident_from and p[i] >= 0.9 * p[best] and \
                all(cands[g[0]].n != cands[i].n for g in groups):
            groups.append([i])
            used += 1
    return groups


def closest(cands: list[Candidate], pool: list[int], probs: np.ndarray, model: Model, max_sentences: int = 3,
            terms: set[str] | None = None) -> list[list[int]]:
    """What a low-confidence answer quotes: the closest passage, that is the best unit as `compose` frames it,
    then the next likeliest sentences of the same source and section (under the same heading or definition
    term: the next setting's default would be noise), up to `max_sentences`, in reading order (one group:
    below `confident_from`, `compose` adds no other source). Table rows and list items do not join this
    way: a row's siblings are alternatives to it, not the rest of the passage.

    Unsure which unit answers, the model usually has the answer among its first few sentences of that
    source: on the training split (out of fold), quoting them all rather than only those at least 0.4 as
    likely as the best puts a gold answer in more answers (0.833 -> 0.842) for 0.2 more sentences an answer
    (every quoted sentence is a citation: per-sentence citation precision 0.909 -> 0.897). Units of other
    sources would cite chunks that rarely hold the answer (citation precision 0.85 against 0.91 on training).
    """
    used = compose(cands, pool, probs, model, max_sentences, terms=terms)[0]
    best = pool[int(np.argmax(probs))]
    count = sum(cands[i].kind != "heading" for i in used)
    for j in np.argsort(-probs, kind="stable"):
        if count >= max_sentences:
            break
        i = pool[int(j)]
        if i not in used and cands[i].kind == "sentence" and cands[i].n == cands[best].n and \
                _section(cands, i) == _section(cands, best):
            used.append(i)
            count += 1
    return [sorted(used, key=lambda i: cands[i].index)]


def _section(cands: list[Candidate], i: int) -> int:
    """Index of the heading (or definition term) unit `i` sits under in its source; -1 before the first one."""
    j = i - 1
    while j >= 0 and cands[j].n == cands[i].n and cands[j].kind != "heading":
        j -= 1
    return j if j >= 0 and cands[j].n == cands[i].n else -1


def _render(cands: list[Candidate], group: list[int]) -> str:
    """Quote a group, each unit cited; a heading or term reads as a lead-in ("Term: sentence [n]")."""
    out, lead, prev = "", "", ""
    for i in group:
        c = cands[i]
        if c.kind == "heading":
            lead = c.text.rstrip(" :") + ": "
            continue
        sep = "\n" if "row" in (c.kind, prev) or "item" in (c.kind, prev) else " "
        out += (sep if out else "") + f"{lead}{c.text.rstrip(' ;,')} [{c.n}]"
        lead, prev = "", c.kind
    return out
