"""`rag finetune` and `rag eval ...`: evaluation commands, registered on the main `rag` app.

`rag eval list/show/diff` read the ledger only (no model is loaded).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rag import RagError, Settings

eval_app = typer.Typer(help="Evaluate retrieval and answers; RAG versus fine-tuning.", no_args_is_help=True)
console = Console()

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]
SquadOpt = Annotated[Path, typer.Option("--dataset", help="SQuAD v1.1 JSON file.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the question split (the same seed, the same split).")]
QuestionsOpt = Annotated[int, typer.Option(help="Held-out questions to evaluate (never trained on).")]
CorpusTextOpt = Annotated[int, typer.Option(help="Also train on this many corpus passages as plain text "
                                                   "(knowledge injection; -1: all).")]
TrainOpt = Annotated[int, typer.Option(help="Training questions for the LoRA adapter (0: no training).")]


def _rag(home: Path | None) -> Any:
    from rag import RAG

    return RAG.open(home) if home else RAG.open(settings=Settings())


def _ledger(home: Path | None) -> Any:
    from rag.store.base import open_ledger

    return open_ledger(Settings(home=home) if home else Settings())


def _ft_config(epochs: int, max_steps: int | None, batch_size: int, lr: float, threads: int | None) -> Any:
    from rag_platform.eval.finetune import FinetuneConfig

    return FinetuneConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, threads=threads)


def finetune_cmd(
    train: TrainOpt = 200,
    questions: QuestionsOpt = 50,
    epochs: Annotated[int, typer.Option(help="Passes over the training pairs.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.")] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-4,
    with_passage: Annotated[bool, typer.Option(help="Put each question's passage before it.")] = False,
    corpus_text: CorpusTextOpt = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads (1 is often faster on busy cores).")] = None,
    seed: SeedOpt = 13,
    dataset: SquadOpt = SHARED / "squad" / "dev-v1.1-part1.json",
    out: Annotated[Path | None, typer.Option(help="Adapter folder; default <home>/adapters/<time>.")] = None,
    home: HomeOpt = None,
) -> None:
    """Train a LoRA adapter on the local model from SQuAD questions outside the evaluated split."""
    from rag_platform.eval.datasets import load_squad
    from rag_platform.eval.finetune import QAPair, corpus_pairs, finetune
    from rag_platform.eval.harness import make_split

    rag = _rag(home)
    data = load_squad(dataset)
    split = make_split(data.items, questions, train, seed=seed)
    pairs = [QAPair(i.id, i.question, i.answers[0], data.passages[i.passage_id][1] if with_passage and
                    i.passage_id else None) for i in split.train]
    pairs += corpus_pairs(data.passages, corpus_text, seed=seed) if corpus_text else []
    target = out or rag.settings.home.resolve() / "adapters" / time.strftime("%Y%m%d-%H%M%S")
    res = finetune(pairs, out_dir=target, home=rag.settings.home, console=console,
                   config=_ft_config(epochs, max_steps, batch_size, lr, threads),
                   extra={"dataset": str(dataset), "eval_ids": [i.id for i in split.evaluate], "seed": seed})
    console.print(f"adapter {res.adapter_dir}: {res.steps} steps in {res.seconds:.0f}s, last train loss "
                  f"{res.train_losses[-1]:.3f}; held-out loss {res.val_loss_before:.3f} -> {res.val_loss:.3f} "
                  f"(perplexity {res.val_perplexity:.1f}) on {len(res.val_ids)} pairs")


@eval_app.command("compare")
def compare_cmd(
    questions: QuestionsOpt = 50,
    train: TrainOpt = 200,
    arms: Annotated[str, typer.Option(help="Comma-separated: closed-base, closed-ft, rag-base, rag-ft, "
                                           "rag-extractive, rag-<configured API provider>.")] =
    "closed-base,closed-ft,rag-base,rag-ft,rag-extractive",
    adapter: Annotated[Path | None, typer.Option(help="Use this adapter instead of training one.")] = None,
    k: Annotated[int, typer.Option("-k", help="Sources per question.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="Answer length cap for the local model.")] = 32,
    unanswerable: Annotated[int, typer.Option(help="Add questions whose passage is left out of the corpus.")] = 0,
    corpus_text: CorpusTextOpt = 0,
    epochs: Annotated[int, typer.Option(help="Fine-tuning passes.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Fine-tuning step cap.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads while fine-tuning.")] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many questions (resume later).")] = None,
    resume: Annotated[int | None, typer.Option(help="Resume this run: skips the questions already done.")] = None,
    collection: Annotated[str, typer.Option(help="Collection the corpus is ingested into.")] = "eval-squad",
    seed: SeedOpt = 13,
    dataset: SquadOpt = SHARED / "squad" / "dev-v1.1-part1.json",
    corpus: Annotated[Path | None, typer.Option(help="With a .jsonl dataset: a corpus.jsonl (_id, title, text) "
                                                     "to ingest; without it, --collection must exist.")] = None,
    home: HomeOpt = None,
) -> None:
    """The same held-out questions through every arm, with 95% paired-bootstrap CIs; writes a report.

    --dataset takes SQuAD v1.1 JSON, or our JSONL QA format (question, answers, relevant, answerable).
    """
    from rag_platform.eval.datasets import load_qa_jsonl, load_squad
    from rag_platform.eval.harness import CompareConfig, compare

    cfg = CompareConfig(questions=questions, train=train, arms=tuple(a.strip() for a in arms.split(",") if a.strip()),
                        k=k, max_tokens=max_tokens, collection=collection, seed=seed, unanswerable=unanswerable,
                        corpus_text=corpus_text,
                        adapter=str(adapter) if adapter else None, dataset=dataset.name, limit=limit,
                        finetune=_ft_config(epochs, max_steps, 8, 2e-4, threads))
    t0 = time.perf_counter()
    data = load_qa_jsonl(dataset, corpus) if dataset.suffix == ".jsonl" else load_squad(dataset)
    out = compare(_rag(home), data, cfg, resume=resume, console=console)
    _print_summary(out.run_id, out.summary)
    console.print(f"run {out.run_id} in {time.perf_counter() - t0:.0f}s; report {out.reports['html']}")


@eval_app.command("retrieval")
def retrieval_cmd(
    dataset: Annotated[Path, typer.Option(help="BEIR folder.")] = SHARED / "scifact",
    split: Annotated[str, typer.Option(help="qrels split.")] = "test",
    modes: Annotated[str, typer.Option(help="Comma-separated: hybrid, dense, bm25.")] = "hybrid,dense,bm25",
    queries: Annotated[int | None, typer.Option(help="Only the first N judged queries.")] = None,
    collection: Annotated[str, typer.Option(help="Collection the corpus is ingested into.")] = "eval-scifact",
    home: HomeOpt = None,
) -> None:
    """Retrieval metrics (nDCG@10, Recall@10/100, MRR@10, MAP) with CIs on a BEIR dataset; writes a report."""
    from rag_platform.eval.datasets import load_beir
    from rag_platform.eval.retrieval_eval import evaluate_retrieval

    run_id, summary, paths = evaluate_retrieval(
        _rag(home), load_beir(dataset, split), dataset=f"{dataset.name}/{split}", collection=collection,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()), queries=queries, console=console)
    _print_summary(run_id, summary)
    console.print(f"report {paths['html']}")


def _print_summary(run_id: int, summary: dict[str, Any]) -> None:
    from rag_platform.eval.runs import COST

    table = Table(title=f"run {run_id}: {summary['questions']} questions, mean [95% CI]")
    table.add_column("metric")
    for arm in summary["arms"]:
        table.add_column(arm, justify="right")
    for metric, s in summary["metrics"].items():
        cells = [s["arms"].get(a) for a in summary["arms"]]
        table.add_row(metric, *[f"{c['mean']:.3f} [{c['low']:.3f}, {c['high']:.3f}]" if c and c["n"] else "–"
                                for c in cells])
    console.print(table)
    sig = [f"{m}: {p['a']} - {p['b']} {p['diff']['mean']:+.3f}" for m, s in summary["metrics"].items()
           if m not in COST for p in s["pairs"] if p["significant"]]
    console.print("significant quality differences (95% paired CI excludes 0): " + ("; ".join(sig) or "none"))


@eval_app.command("judge")
def judge_cmd(
    run: int,
    provider: Annotated[str, typer.Option(help="Name of a configured API provider that judges.")],
    arms: Annotated[str | None, typer.Option(help="Comma-separated arms to judge (default: all).")] = None,
    home: HomeOpt = None,
) -> None:
    """Add LLM-judged faithfulness and answer relevance to a stored run, then rewrite its reports."""
    from rag_platform.eval.harness import finalize
    from rag_platform.eval.judge import judge_run

    rag = _rag(home)
    n = judge_run(rag, run, provider, arms=[a.strip() for a in arms.split(",")] if arms else None, console=console)
    out = finalize(rag, run, rag.settings.home.resolve() / "eval" / f"run-{run}")
    _print_summary(run, out.summary)
    console.print(f"judged {n} answers with {provider}; report {out.reports['html']}")


@eval_app.command("list")
def list_cmd(home: HomeOpt = None) -> None:
    """Evaluation runs, newest first."""
    table = Table(title="evaluation runs")
    for col in ("run", "kind", "status", "dataset", "questions", "arms", "code", "created"):
        table.add_column(col)
    for r in _ledger(home).eval_runs():
        table.add_row(str(r.id), r.kind, r.status, r.dataset, str(len(r.split.get("eval", []))), ", ".join(r.arms),
                      r.code_version or "", r.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@eval_app.command("show")
def show_cmd(run: int, as_json: Annotated[bool, typer.Option("--json", help="Print the stored run as JSON.")]
             = False, home: HomeOpt = None) -> None:
    """One run: its metrics with CIs, what produced it, and where its report is."""
    from rag_platform.eval.runs import get_run

    r = get_run(_ledger(home), run)
    if as_json:
        console.print_json(json.dumps({"id": r.id, "kind": r.kind, "status": r.status, "summary": r.summary,
                                       "provenance": r.provenance}, default=str))
        return
    console.print(f"run {r.id} ({r.kind}, {r.status}) on {r.dataset}; code {r.code_version}; "
                  f"index {str(r.index_manifest_hash)[:12]}; split {str(r.split_hash)[:12]}")
    if r.summary:
        _print_summary(r.id, r.summary)
    console.print(f"report: {r.report_path}")


@eval_app.command("diff")
def diff_cmd(run_a: int, run_b: int, home: HomeOpt = None) -> None:
    """Per-metric deltas (B - A) with 95% paired CIs, and the questions whose outcome flipped."""
    from rag_platform.eval.runs import CORRECT_F1, diff

    d = diff(_ledger(home), run_a, run_b)
    if not d["arms"]:
        raise RagError(f"runs {run_a} and {run_b} share no arm")
    table = Table(title=f"run {run_b} - run {run_a} (shared questions)")
    for col in ("metric", "arm", "A", "B", "B - A [95% CI]", "significant"):
        table.add_column(col)
    for metric, per_arm in d["metrics"].items():
        for arm, v in per_arm.items():
            table.add_row(metric, arm, f"{v['a']:.3f}", f"{v['b']:.3f}",
                          f"{v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]", "yes" if v["significant"] else "")
    console.print(table)
    console.print(f"{len(d['flips'])} question(s) flipped (correct = F1 >= {CORRECT_F1}):")
    for f in d["flips"]:
        console.print(f"  {f['arm']}: {f['question_id']} {'now right' if f['now_correct'] else 'now wrong'}: "
                      f"{f['question'][:80]!r}  A={f['a'][:40]!r}  B={f['b'][:40]!r}")
