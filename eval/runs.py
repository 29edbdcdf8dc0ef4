"""Evaluation runs in the ledger (`Ledger.create_eval_run`, `add_eval_result`, ...): summarise and diff them.

Results are committed one by one, so a killed run loses at most the question
in flight; `(run, question, arm)` is unique, so a resumed run can never write
a result twice. Summaries are recomputed from the stored rows, never kept as
the only copy.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import NotFoundError
from rag.protocols import Ledger
from rag.types import EvalRunInfo
from rag_platform.eval.stats import paired_bootstrap

# Higher is better for these; the report and diff use them in this order.
QUALITY = ("em", "f1", "rouge_l", "citation_precision", "citation_recall", "supported_share", "groundedness",
           "abstention_correct", "gold_retrieved", "judge_faithfulness", "judge_relevance")
COST = ("latency_s", "ttft_s", "tokens_in", "tokens_out", "cost_usd")
CORRECT_F1 = 0.5
"""A question counts as answered correctly (for flips in `diff`) when its F1 reaches this."""


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def code_version(repo: Path | None = None) -> str:
    """`git describe --always --dirty` of the code, else the installed package version."""
    where = repo or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "--no-optional-locks", "describe", "--always", "--dirty", "--tags"], cwd=where, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"rag-platform {version('rag-platform')}"
        except PackageNotFoundError:
            return "unknown"


def get_run(ledger: Ledger, run_id: int) -> EvalRunInfo:
    run = ledger.eval_run(run_id)
    if run is None:
        raise NotFoundError(f"evaluation run {run_id} not found; `rag eval list` shows the runs")
    return run


def results(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    """The run's results as the summaries and reports take them (question_id, arm, answer, metrics, detail)."""
    return [{"question_id": r.question_id, "arm": r.arm, "answer": r.answer, "metrics": r.metrics,
             "detail": r.detail} for r in ledger.eval_results(run_id)]


def done_keys(ledger: Ledger, run_id: int) -> set[tuple[str, str]]:
    """(question, arm) of every result already stored: what a resumed run skips."""
    return {(r.question_id, r.arm) for r in ledger.eval_results(run_id)}


def _table(rows: list[dict[str, Any]], arms: Sequence[str], metric: str) -> tuple[list[str], dict[str, list[Any]]]:
    """Question ids (in first-seen order) and per arm the metric in that order (None if missing)."""
    qids = list(dict.fromkeys(r["question_id"] for r in rows))
    by = {(r["question_id"], r["arm"]): r["metrics"].get(metric) for r in rows}
    return qids, {arm: [by.get((q, arm)) for q in qids] for arm in arms}


def summarise(rows: list[dict[str, Any]], arms: Sequence[str], *, metrics: Sequence[str] = (*QUALITY, *COST),
              resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Per metric: each arm's mean with a 95% CI, and each pair's paired difference; latency percentiles."""
    out: dict[str, Any] = {}
    for metric in metrics:
        _, table = _table(rows, arms, metric)
        if any(v is not None for vals in table.values() for v in vals):
            out[metric] = paired_bootstrap(table, metric=metric, resamples=resamples, seed=seed).to_json()
    latency = {}
    for arm in arms:
        lat = [r["metrics"]["latency_s"] for r in rows if r["arm"] == arm and r["metrics"].get("latency_s") is not None]
        latency[arm] = {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95))} if lat else {}
    counts = {arm: sum(r["arm"] == arm for r in rows) for arm in arms}
    return {"arms": list(arms), "questions": len({r["question_id"] for r in rows}), "counts": counts,
            "metrics": out, "latency": latency}


def diff(ledger: Ledger, run_a: int, run_b: int, *, resamples: int = 2000,
         seed: int = 0) -> dict[str, Any]:
    """B minus A per arm and metric over the questions both runs answered, and the flipped questions."""
    a_rows, b_rows = results(ledger, run_a), results(ledger, run_b)
    arms = [a for a in get_run(ledger, run_a).arms if a in set(get_run(ledger, run_b).arms)]
    out: dict[str, Any] = {"run_a": run_a, "run_b": run_b, "arms": arms, "metrics": {}, "flips": []}
    b_index = {(r["question_id"], r["arm"]): r for r in b_rows}
    names = list(dict.fromkeys(m for r in a_rows for m in r["metrics"]))
    for metric in sorted(names, key=lambda m: (QUALITY + COST).index(m) if m in QUALITY + COST else -1):
        per_metric: dict[str, Any] = {}
        for arm in arms:
            pairs = [(r["metrics"].get(metric), b_index[(r["question_id"], arm)]["metrics"].get(metric))
                     for r in a_rows if r["arm"] == arm and (r["question_id"], arm) in b_index]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if pairs:
                s = paired_bootstrap({"b": [y for _, y in pairs], "a": [x for x, _ in pairs]}, metric=metric,
                                     resamples=resamples, seed=seed)
                per_metric[arm] = {"a": s.arms["a"].mean, "b": s.arms["b"].mean, **s.pairs[0].diff.__dict__,
                                   "significant": s.pairs[0].significant}
        if per_metric:
            out["metrics"][metric] = per_metric
    for r in a_rows:
        other = b_index.get((r["question_id"], r["arm"]))
        if other is None or r["arm"] not in arms:
            continue
        was, now = outcome(r["metrics"]), outcome(other["metrics"])
        if was is not None and now is not None and was != now:
            out["flips"].append({"question_id": r["question_id"], "arm": r["arm"],
                                 "question": r["detail"].get("question", ""), "a": r["answer"],
                                 "b": other["answer"], "now_correct": now})
    return out


def outcome(metrics: dict[str, Any]) -> bool | None:
    """Whether a question was answered right: F1 >= CORRECT_F1, else a correct abstention, else (retrieval)
    a relevant document in the top 10."""
    if metrics.get("f1") is not None:
        return bool(metrics["f1"] >= CORRECT_F1)
    if metrics.get("abstention_correct") is not None:
        return bool(metrics["abstention_correct"] >= 0.5)
    if metrics.get("mrr@10") is not None:
        return bool(metrics["mrr@10"] > 0)
    return None


def finish(ledger: Ledger, run_id: int, summary: dict[str, Any], report: str | None) -> None:
    ledger.update_eval_run(run_id, status="done", summary=summary, report_path=report,
                           finished_at=datetime.now(UTC))
