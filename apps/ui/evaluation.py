"""The Evaluation page's data: stored runs, one run's report, two runs compared.

Everything comes from `eval.runs` (the ledger's `eval_runs`/`eval_results`)
and `eval.report` (the same tables, plots and HTML as `rag eval show` and the
report files), so the page and the command line never disagree.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from rag.protocols import Ledger
from rag.types import EvalRunInfo
from rag_platform.eval import report as eval_report
from rag_platform.eval import runs as eval_runs


def run_rows(ledger: Ledger, limit: int = 100) -> list[dict[str, Any]]:
    """One row per stored run, newest first."""
    return [{"run": r.id, "kind": r.kind, "status": r.status, "dataset": r.dataset, "collection": r.collection or "",
             "questions": (r.summary or {}).get("questions", len(r.split.get("eval", []))),
             "arms": ", ".join(r.arms), "code": r.code_version or "",
             "created": r.created_at.strftime("%Y-%m-%d %H:%M")} for r in ledger.eval_runs(limit)]


@dataclass
class RunReport:
    """What the page shows for one run: metric table, plots (PNG bytes), Markdown and the HTML report."""

    run: EvalRunInfo
    summary: dict[str, Any]
    metric_rows: list[dict[str, Any]]
    latency_rows: list[dict[str, Any]]
    plots: dict[str, bytes]
    markdown: str
    html: str


def _ci(iv: dict[str, Any] | None) -> str:
    if not iv or not iv.get("n"):
        return "–"
    return f"{iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def load_report(ledger: Ledger, run_id: int) -> RunReport:
    """The run's stored summary (recomputed from its results when it has none yet, e.g. still running)."""
    run = eval_runs.get_run(ledger, run_id)
    rows = eval_runs.results(ledger, run_id)
    summary = run.summary if run.summary and run.summary.get("metrics") else \
        eval_runs.summarise(rows, list(run.arms) or sorted({r["arm"] for r in rows}))
    arms = summary["arms"]
    ordered = [m for m in (*eval_runs.QUALITY, *eval_runs.COST) if m in summary["metrics"]] + \
        [m for m in summary["metrics"] if m not in eval_runs.QUALITY + eval_runs.COST]
    metric_rows = [{"metric": m, **{a: _ci(summary["metrics"][m]["arms"].get(a)) for a in arms}} for m in ordered]
    latency_rows = [{"arm": a, "p50 (s)": v.get("p50"), "p95 (s)": v.get("p95")}
                    for a, v in summary.get("latency", {}).items()]
    images = {k: base64.b64decode(v) for k, v in eval_report.plots(summary, rows).items()} if rows else {}
    return RunReport(run, summary, metric_rows, latency_rows, images, eval_report.markdown(run, summary),
                     eval_report.html_report(run, summary, rows))


def compare_rows(ledger: Ledger, run_a: int, run_b: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(metric rows: A, B, B − A with its 95% paired CI; flipped questions) over the questions both answered."""
    d = eval_runs.diff(ledger, run_a, run_b)
    metrics = [{"metric": m, "arm": arm, "A": round(v["a"], 4), "B": round(v["b"], 4),
                "B − A [95% CI]": f"{v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]",
                "significant": "yes" if v["significant"] else ""}
               for m, per_arm in d["metrics"].items() for arm, v in per_arm.items()]
    flips = [{"question": f["question"] or f["question_id"], "arm": f["arm"],
              "now": "right" if f["now_correct"] else "wrong", "A": f["a"], "B": f["b"]} for f in d["flips"]]
    return metrics, flips
