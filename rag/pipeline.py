"""answer(): the one composer of the steps. retrieve -> pack per provider -> chain -> cite.

Nothing here knows which store, embedder or provider it talks to; each step is
one call with typed data. The answer cache and the query log live here too,
because both need the whole picture (question, retrieved chunks, provider).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from rag.answer import Answer, AnswerStream
from rag.cite import check, is_abstention, marker_numbers
from rag.config import Settings
from rag.llm.base import Completion, Delta, GenerationParams
from rag.llm.fallback import Attempt, FallbackLLM
from rag.llm.providers import build_providers
from rag.prompt import NO_ANSWER, PROMPT_VERSION, Packed, pack
from rag.protocols import Store
from rag.retrieve import RetrievalRequest
from rag.types import Hit, QueryRecord

log = logging.getLogger(__name__)


def normalise_question(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?!. ")


def cache_key(req: RetrievalRequest, hits: list[Hit], providers: list[dict[str, Any]], checks: dict[str, Any]) -> str:
    """Everything that determines an answer: change any of it and the cache misses.

    Sources enter by the hash of the text the provider sees (and where it came
    from), not by row id alone: SQLite reuses the ids of deleted rows, so an
    edited document could otherwise get its old answer back. `providers` holds
    each provider's kind, model and generation settings; `checks` the
    citation-check settings and the embedder that checks.
    """
    blob = json.dumps({
        "q": normalise_question(req.query), "c": req.collection,
        "r": [req.k, req.mode, req.fusion, req.fetch_k, req.rrf_k, req.dense_weight, req.rerank, req.rerank_depth,
              repr(req.filters), req.normalization],
        "s": [[h.chunk_id, h.source, h.title, h.page, list(h.heading_path),
               hashlib.sha256(h.text.encode()).hexdigest()] for h in hits],
        "p": providers, "v": PROMPT_VERSION, "checks": checks,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Answerer:
    """Holds the provider chains (so circuit breakers remember failures between questions)."""

    def __init__(self, settings: Settings, store: Store, embedder: Any) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._chains: dict[tuple[str, ...], FallbackLLM] = {}

    def chain(self, names: list[str] | None = None) -> FallbackLLM:
        configured = {p.name: p for p in self.settings.llm.providers}
        order = names or self.settings.llm.chain or list(configured)
        unknown = [n for n in order if n not in configured]
        if unknown:
            from rag.errors import ConfigError

            raise ConfigError(f"unknown provider {unknown[0]!r}; configured: {', '.join(configured)}")
        key = tuple(order)
        if key not in self._chains:
            llms = build_providers([configured[n] for n in order], self.settings.home.resolve())
            for llm in llms:
                if hasattr(llm, "use_embedder"):  # the extractive answerer scores sentences by meaning
                    llm.use_embedder(self.embedder)
            self._chains[key] = FallbackLLM(llms, self.settings.llm)
        return self._chains[key]

    def _provider_keys(self, chain: FallbackLLM) -> list[dict[str, Any]]:
        """What each provider answers with: kind, the configured model and the instance's (e.g. the extractive
        answerer's weights and code version), and the settings that change its text. Secrets, timeouts and
        prices are left out."""
        configured = {p.name: p for p in self.settings.llm.providers}
        return [{**configured[llm.name].model_dump(
            exclude={"api_key", "api_key_env", "timeout_s", "price_in_per_mtok", "price_out_per_mtok"}),
            "answers_with": llm.model} for llm in chain.providers] + [{"temperature": self.settings.llm.temperature,
                                            "require_citations": self.settings.llm.require_citations}]

    def _check_key(self) -> dict[str, Any]:
        return {**self.settings.citations.model_dump(), "embedder": getattr(self.embedder, "model_id", "")}

    def _params(self, provider_name: str) -> GenerationParams:
        cfg = next(p for p in self.settings.llm.providers if p.name == provider_name)
        return GenerationParams(max_tokens=cfg.max_output_tokens, temperature=self.settings.llm.temperature,
                                timeout_s=cfg.timeout_s)

    def _accept(self, done: Completion) -> str | None:
        """RAG-aware fallback: an answer that cites nothing is no answer to show."""
        if self.settings.llm.require_citations and not marker_numbers(done.text) and not is_abstention(done.text):
            return "answer cites no source"
        return None

    def cached(self, key: str) -> Answer | None:
        stored = self.store.ledger.cached_answer(key)
        if stored is None:
            return None
        answer = Answer.from_json(stored)
        return Answer(**{**answer.__dict__, "cached": True})

    def run(self, req: RetrievalRequest, hits: list[Hit], *, providers: list[str] | None, use_cache: bool,
            stream: bool) -> Answer | AnswerStream:
        chain = self.chain(providers)
        names = [p.name for p in chain.providers]
        key = cache_key(req, hits, self._provider_keys(chain), self._check_key())
        if use_cache and (hit := self.cached(key)) is not None:
            self._log(req, hit)
            return AnswerStream(iter([Delta(hit.text), hit])) if stream else hit
        if not hits:
            answer = Answer(req.query, NO_ANSWER, [], [], "none", "none", abstained=True, groundedness=None,
                            prompt_version=PROMPT_VERSION)
            self._log(req, answer)
            return AnswerStream(iter([Delta(answer.text), answer])) if stream else answer
        packs: dict[str, Packed] = {}

        def build(llm: Any) -> list[Any]:
            packs[llm.name] = pack(req.query, hits, llm, self._params(llm.name).max_tokens)
            return packs[llm.name].messages

        params = self._params(names[0])
        if not stream:
            t0 = time.perf_counter()
            done, attempts = chain.complete_with(build, params, accept=self._accept)
            answer = self._finish(req, done, packs[done.provider].hits, attempts, time.perf_counter() - t0)
            self._store(key, req, answer)
            return answer
        return AnswerStream(self._stream(req, key, chain, build, params, packs))

    def _stream(self, req: RetrievalRequest, key: str, chain: FallbackLLM, build: Any, params: GenerationParams,
                packs: dict[str, Packed]) -> Iterator[Any]:
        t0 = time.perf_counter()
        cs = chain.stream_with(build, params)
        for event in cs:
            if isinstance(event, Delta):
                yield event
        done = cs.completion
        assert done is not None
        answer = self._finish(req, done, packs[done.provider].hits, cs.attempts, time.perf_counter() - t0)
        self._store(key, req, answer)
        yield answer

    def _finish(self, req: RetrievalRequest, done: Completion, used: list[Hit], attempts: list[Attempt],
                wall: float) -> Answer:
        report = check(done.text, used, self.embedder, self.settings.citations)
        cfg = next(p for p in self.settings.llm.providers if p.name == done.provider)
        cost = (done.usage.input_tokens * cfg.price_in_per_mtok + done.usage.output_tokens * cfg.price_out_per_mtok) / 1e6
        return Answer(question=req.query, text=done.text.strip(), sources=used, citations=report.citations,
                      provider=done.provider, model=done.model, attempts=attempts, invalid_citations=report.invalid,
                      uncited_sentences=report.uncited, groundedness=report.groundedness,
                      abstained=report.abstained, low_confidence=report.low_confidence,
                      tokens_in=done.usage.input_tokens,
                      tokens_out=done.usage.output_tokens, latency_s=wall, ttft_s=done.ttft_s, cost_usd=cost,
                      prompt_version=PROMPT_VERSION)

    def _store(self, key: str, req: RetrievalRequest, answer: Answer) -> None:
        self.store.ledger.store_answer(key, req.collection, answer.to_json())
        self._log(req, answer)

    def _log(self, req: RetrievalRequest, a: Answer) -> None:
        self.store.ledger.log_query(QueryRecord(
            collection=req.collection, question=req.query, provider=a.provider, model=a.model,
            tokens_in=a.tokens_in, tokens_out=a.tokens_out, latency_s=a.latency_s, ttft_s=a.ttft_s,
            cost_usd=a.cost_usd, cached=a.cached, groundedness=a.groundedness, abstained=a.abstained,
            attempts=tuple(f"{t.provider}: {'ok' if t.ok else t.error}" for t in a.attempts)))

    def recent(self, limit: int = 20) -> list[QueryRecord]:
        return self.store.ledger.recent_queries(limit)
