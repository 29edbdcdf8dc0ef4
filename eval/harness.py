"""RAG versus fine-tuning: the same held-out questions through every arm, scored and stored.

Arms: `closed-base` and `closed-ft` (the local model without sources, without
and with the LoRA adapter), `rag-base`, `rag-ft`, `rag-extractive` (RAG.ask
with one provider each), and `rag-<name>` for every API provider configured.
The split is made once, by construction: evaluated and training questions are
disjoint, their ids are stored with the run, and an adapter whose
training.json names an evaluated question is refused. Each (question, arm)
result is committed as it completes, so `resume=RUN` skips what is done.

Example:
    >>> out = compare(rag, load_squad(path), CompareConfig(questions=50, train=200))
    >>> out.summary["metrics"]["f1"]["arms"]["rag-base"]
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rag.api import RAG
from rag.config import LLMSettings, ProviderSettings
from rag.errors import RagError
from rag.llm.base import GenerationParams, Message
from rag.llm.local_model import DEFAULT_LOCAL_MODEL
from rag.llm.providers import make_provider
from rag.store.base import manifest_hash
from rag_platform.eval import runs
from rag_platform.eval.datasets import QAData, QAItem
from rag_platform.eval.finetune import (
    FinetuneConfig,
    QAPair,
    chat_messages,
    corpus_pairs,
    finetune,
    training_record_hash,
)
from rag_platform.eval.scoring import score_closed, score_rag

DEFAULT_ARMS = ("closed-base", "closed-ft", "rag-base", "rag-ft", "rag-extractive")
FT_ARMS = {"closed-ft", "rag-ft"}


@dataclass(frozen=True)
class Split:
    """Training and evaluated questions; disjoint by construction."""

    train: list[QAItem]
    evaluate: list[QAItem]
    removed_passages: list[str] = field(default_factory=list)
    """Passages left out of the corpus, which makes their questions unanswerable."""

    def ids(self) -> dict[str, Any]:
        return {"train": [i.id for i in self.train], "eval": [i.id for i in self.evaluate],
                "unanswerable": [i.id for i in self.evaluate if not i.answerable],
                "removed_passages": self.removed_passages}


def make_split(items: list[QAItem], n_eval: int, n_train: int, *, unanswerable: int = 0, seed: int = 13) -> Split:
    """Shuffle once (seeded), then: evaluated first, then training, then unanswerable candidates.

    An unanswerable question's passage is removed from the corpus; it is taken
    only from passages no other evaluated question needs.
    """
    order = sorted(items, key=lambda i: i.id)
    random.Random(seed).shuffle(order)
    evaluate, train, rest = order[:n_eval], order[n_eval:n_eval + n_train], order[n_eval + n_train:]
    needed = {i.passage_id for i in evaluate}
    removed: list[str] = []
    for item in rest:
        if len(removed) >= unanswerable:
            break
        if item.passage_id and item.passage_id not in needed and item.passage_id not in removed:
            removed.append(item.passage_id)
            evaluate.append(replace(item, answerable=False))
    split = Split(train, sorted(evaluate, key=lambda i: i.id), removed)
    assert not {i.id for i in split.train} & {i.id for i in split.evaluate}, "train and eval overlap"
    return split


@dataclass(frozen=True)
class CompareConfig:
    questions: int = 50
    train: int = 200
    arms: tuple[str, ...] = DEFAULT_ARMS
    k: int = 4
    max_tokens: int = 32
    collection: str = "eval-squad"
    seed: int = 13
    unanswerable: int = 0
    with_passage: bool = False
    corpus_text: int = 0
    """Also fine-tune on this many corpus passages as plain text (-1: all; removed passages never)."""
    adapter: str | None = None
    dataset: str = ""
    limit: int | None = None
    """Stop after this many evaluated questions (the rest come with `resume`)."""
    resamples: int = 2000
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


@dataclass
class CompareOutcome:
    run_id: int
    summary: dict[str, Any]
    reports: dict[str, Path]


def _check_adapter(adapter: Path, split: Split) -> None:
    record_path = adapter / "training.json"
    if not record_path.is_file():
        return
    record = json.loads(record_path.read_text())
    trained = set(record.get("split", {}).get("train_ids", [])) | set(record.get("split", {}).get("val_ids", []))
    overlap = trained & {i.id for i in split.evaluate}
    if overlap:
        raise RagError(f"adapter {adapter} was trained on {len(overlap)} evaluated question(s) "
                       f"(e.g. {min(overlap)}); train a new one with `rag eval compare --train N`")


def _providers(rag: RAG, cfg: CompareConfig, adapter: Path | None) -> list[ProviderSettings]:
    local = {"kind": "local", "model": DEFAULT_LOCAL_MODEL, "max_output_tokens": max(16, cfg.max_tokens),
             "timeout_s": 300.0, "context_window": 1536}
    out = [ProviderSettings(name="rag-extractive", kind="extractive"), ProviderSettings(name="rag-base", **local)]
    if adapter is not None:
        out.append(ProviderSettings(name="rag-ft", adapter=str(adapter), **local))
    out += [p.model_copy(update={"name": f"rag-{p.name}"}) for p in rag.settings.llm.providers
            if p.kind not in ("extractive", "local")]
    return out


def _provenance(rag: RAG, cfg: CompareConfig, providers: list[ProviderSettings], adapter: Path | None,
                data_hash: str, split: Split) -> dict[str, Any]:
    manifest = rag.store.index_manifest(cfg.collection)
    return {
        "config": json.loads(json.dumps(asdict(cfg), default=str)), "embedder": rag.embedder.model_id,
        "chunking": rag.settings.chunking.model_dump(), "retrieval": {**rag.settings.retrieval.model_dump(), "k": cfg.k},
        "rerank": rag.settings.rerank.enabled, "index_manifest_hash": manifest_hash(manifest) if manifest else None,
        "providers": [p.model_dump(mode="json", exclude={"api_key"}) for p in providers],
        "adapter": {"path": str(adapter), "training_json_sha256": training_record_hash(adapter)} if adapter else None,
        "dataset": cfg.dataset, "dataset_hash": data_hash, "split_hash": runs.sha256_json(split.ids()),
        "code_version": runs.code_version(),
    }


def compare(rag: RAG, data: QAData, cfg: CompareConfig, *, resume: int | None = None,
            out_dir: Path | None = None, console: Console | None = None) -> CompareOutcome:
    """Run (or resume) a comparison; returns the run id, the summary with CIs, and the report files."""
    console = console or Console()
    known = {*DEFAULT_ARMS, *(f"rag-{p.name}" for p in rag.settings.llm.providers
                              if p.kind not in ("extractive", "local"))}
    unknown = [a for a in cfg.arms if a not in known]
    if unknown and resume is None:
        raise RagError(f"unknown arm {unknown[0]!r}; known here: {', '.join(sorted(known))} "
                       "(rag-<name> needs an API provider <name> in the settings)")
    if cfg.unanswerable and not data.passages:
        raise RagError("--unanswerable removes passages from a corpus this dataset does not have: pass "
                       "--corpus, or mark questions \"answerable\": false in the JSONL")
    ledger = rag.ledger
    by_id = {i.id: i for i in data.items}
    if resume is not None:
        run = runs.get_run(ledger, resume)
        stored = run.provenance.get("config", {})
        cfg = replace(cfg, arms=tuple(run.arms), k=int(stored.get("k", cfg.k)), collection=run.collection or
                      cfg.collection, max_tokens=int(stored.get("max_tokens", cfg.max_tokens)),
                      adapter=(run.provenance.get("adapter") or {}).get("path"))
        unans = set(run.split.get("unanswerable", []))
        split = Split([by_id[i] for i in run.split["train"]],
                      [replace(by_id[i], answerable=i not in unans) for i in run.split["eval"]],
                      list(run.split.get("removed_passages", [])))
        run_id = resume
    else:
        split = make_split(data.items, cfg.questions, cfg.train, unanswerable=cfg.unanswerable, seed=cfg.seed)
        run_id = ledger.create_eval_run(kind="compare", status="preparing", dataset=cfg.dataset,
                                        collection=cfg.collection, arms=list(cfg.arms), split=split.ids(),
                                        split_hash=runs.sha256_json(split.ids()))
    run_dir = out_dir or rag.settings.home.resolve() / "eval" / f"run-{run_id}"
    adapter = Path(cfg.adapter) if cfg.adapter else None
    if FT_ARMS & set(cfg.arms) and adapter is None:
        if not split.train:
            raise RagError("fine-tuned arms need an adapter: pass --adapter PATH or --train N (N > 0)")
        adapter = run_dir / "adapter"
        pairs = [QAPair(i.id, i.question, i.answers[0],
                        data.passages[i.passage_id][1] if cfg.with_passage and i.passage_id in data.passages
                        else None)
                 for i in split.train]
        if cfg.corpus_text:
            pairs += corpus_pairs(data.passages, cfg.corpus_text, seed=cfg.seed,
                                  exclude=frozenset(split.removed_passages))
        finetune(pairs, out_dir=adapter, home=rag.settings.home, config=cfg.finetune, console=console,
                 extra={"eval_ids": [i.id for i in split.evaluate]})
    if adapter is not None:
        _check_adapter(adapter, split)
    cfg = replace(cfg, adapter=str(adapter) if adapter else None)
    removed = set(split.removed_passages)
    if data.passages:
        rag.ingest_texts((t for t in data.source_texts() if t.source not in removed), collection=cfg.collection)
        _drop_passages(rag, cfg.collection, removed)
    rag.store.collection(cfg.collection)  # no corpus given: the questions run against an existing collection
    rag.store.index(cfg.collection)  # built now, so its manifest is what the run records
    providers = _providers(rag, cfg, adapter)
    settings = rag.settings.model_copy(update={"llm": LLMSettings(providers=providers, max_attempts=1,
                                                                  require_citations=False)})
    runner = RAG(settings, embedder=rag.embedder)
    data_hash = runs.sha256_json({"passages": data.passages, "items": [asdict(i) for i in data.items]})
    prov = _provenance(rag, cfg, providers, adapter, data_hash, split)
    ledger.update_eval_run(run_id, status="running", provenance=prov, dataset_hash=data_hash,
                           index_manifest_hash=prov["index_manifest_hash"], code_version=prov["code_version"])
    arms = list(cfg.arms)
    _ask_all(runner, split.evaluate[: cfg.limit] if cfg.limit else split.evaluate, arms, cfg, adapter, run_id,
             console)
    return finalize(rag, run_id, run_dir, resamples=cfg.resamples)


def finalize(rag: RAG, run_id: int, run_dir: Path, *, resamples: int = 2000) -> CompareOutcome:
    """Summarise the stored results with CIs and write the reports (also after a partial run)."""
    from rag_platform.eval.report import write_reports

    ledger = rag.ledger
    run = runs.get_run(ledger, run_id)
    rows = runs.results(ledger, run_id)
    summary = runs.summarise(rows, run.arms, resamples=resamples)
    done = summary["questions"] >= len(run.split.get("eval", [])) and all(
        summary["counts"].get(a, 0) >= summary["questions"] for a in run.arms)
    paths = write_reports(run, summary, rows, run_dir)
    runs.finish(ledger, run_id, summary, str(paths["html"]))
    if not done:
        ledger.update_eval_run(run_id, status="partial")
    return CompareOutcome(run_id, summary, paths)


def _drop_passages(rag: RAG, collection: str, removed: set[str]) -> None:
    """Unanswerable means absent: a collection reused from an earlier run may still hold the passage."""
    coll = rag.store.collection(collection)
    present = [src for src in rag.store.document_hashes(coll) if src in removed]
    if present:
        rag.store.write_batch(coll, [], removed=present)


def _ask_all(rag: RAG, items: list[QAItem], arms: list[str], cfg: CompareConfig, adapter: Path | None,
             run_id: int, console: Console) -> None:
    done = runs.done_keys(rag.ledger, run_id)
    closed = {a: make_provider(ProviderSettings(name=a, kind="local", model=DEFAULT_LOCAL_MODEL,
                                                adapter=str(adapter) if a == "closed-ft" and adapter else None,
                                                max_output_tokens=max(16, cfg.max_tokens), timeout_s=300.0),
                               rag.settings.home.resolve())
              for a in arms if a.startswith("closed-")}
    todo = [(i, a) for i in items for a in arms if (i.id, a) not in done]
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[arm]}"), TimeElapsedColumn(), console=console)
    with bar:
        task = bar.add_task(f"run {run_id}", total=len(todo), arm="")
        for item, arm in todo:
            bar.update(task, arm=arm)
            t0 = time.perf_counter()
            try:
                if arm in closed:
                    msgs = [Message(m["role"], m["content"]) for m in chat_messages(item.question)]  # type: ignore[arg-type]
                    done_ = closed[arm].complete(msgs, GenerationParams(max_tokens=cfg.max_tokens, timeout_s=300.0))
                    answer, metrics, detail = score_closed(done_, item)
                else:
                    stream = rag.ask(item.question, collection=cfg.collection, k=cfg.k, providers=[arm],
                                     stream=True, use_cache=False)
                    first = None
                    for piece in stream:
                        first = first if first is not None or not piece.strip() else time.perf_counter() - t0
                    assert stream.answer is not None
                    answer, metrics, detail = score_rag(stream.answer, item, time.perf_counter() - t0, first)
            except Exception as exc:  # noqa: BLE001 - a failed question counts as wrong, and says why
                zero = 0.0 if item.answerable else None
                answer, metrics = "", {"em": zero, "f1": zero, "latency_s": time.perf_counter() - t0}
                detail = {"question": item.question, "gold": list(item.answers), "answerable": item.answerable,
                          "sources": [], "citations": [], "error": f"{type(exc).__name__}: {exc}"}
            rag.ledger.add_eval_result(run_id, item.id, arm, answer, metrics, detail)
            bar.advance(task)
