"""Reports people want to read: one self-contained HTML file per run, plus Markdown and JSON.

The HTML holds its plots inline (base64 PNG, matplotlib when installed; the
tables are there either way): metric means with 95% bootstrap intervals,
latency distributions, F1 distributions. Then the significance of each pair
of arms, what produced the run, and a per-question table with every arm's
answer, the retrieved sources and each citation with its supported flag.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from rag_platform.eval.runs import COST, QUALITY

_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}.sig{font-weight:bold;color:#064}.ns{color:#888}.ok{color:#064}.bad{color:#a00}
.q td{font-size:12px}code{font-size:12px}details{margin:.2em 0}"""


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(iv: dict[str, Any]) -> str:
    return f"{_fmt(iv['mean'])} [{_fmt(iv['low'])}, {_fmt(iv['high'])}]"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, str]:
    """name -> base64 PNG; empty when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        return {}
    arms, out = summary["arms"], {}
    shown = [m for m in QUALITY if m in summary["metrics"]]
    if shown:
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(shown)), 3.8))
        width = 0.8 / max(1, len(arms))
        for j, arm in enumerate(arms):
            ivs = [summary["metrics"][m]["arms"].get(arm) for m in shown]
            mean = np.array([iv["mean"] if iv and iv["n"] else np.nan for iv in ivs])
            low = np.array([iv["low"] if iv and iv["n"] else np.nan for iv in ivs])
            high = np.array([iv["high"] if iv and iv["n"] else np.nan for iv in ivs])
            err = np.nan_to_num(np.vstack([mean - low, high - mean]))
            ax.bar(np.arange(len(shown)) + j * width, np.nan_to_num(mean), width, yerr=err, capsize=3, label=arm)
        ax.set_xticks(np.arange(len(shown)) + width * (len(arms) - 1) / 2, shown, rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_title("means with 95% paired-bootstrap intervals")
        ax.legend(fontsize=8)
        out["metrics"] = _png(fig)
    for metric, title in (("latency_s", "latency (s)"), ("f1", "token F1 per question")):
        data = [[r["metrics"][metric] for r in rows if r["arm"] == a and r["metrics"].get(metric) is not None]
                for a in arms]
        if any(data):
            fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(arms)), 3.2))
            ax.boxplot([d or [np.nan] for d in data], showmeans=True)
            ax.set_xticks(range(1, len(arms) + 1), arms, rotation=15)
            ax.set_title(f"{title} distribution")
            out[metric] = _png(fig)
    return out


def markdown(run: Any, summary: dict[str, Any]) -> str:
    """The table a README can paste: every metric per arm, mean [95% CI]."""
    arms = summary["arms"]
    lines = [f"# Evaluation run {run.id} ({run.kind}, {run.dataset or 'dataset'})", "",
             f"{summary['questions']} questions; arms: {', '.join(arms)}; code {run.code_version or '?'}", "",
             "| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for metric in [m for m in (*QUALITY, *COST) if m in summary["metrics"]] + \
            [m for m in summary["metrics"] if m not in QUALITY + COST]:
        cells = [summary["metrics"][metric]["arms"].get(a) for a in arms]
        lines.append(f"| {metric} | " + " | ".join(_ci(c) if c and c["n"] else "–" for c in cells) + " |")
    sig = [p for name, m in summary["metrics"].items() for p in m["pairs"] if p["significant"]
           and name not in COST[1:]]
    lines += ["", "Significant differences in quality and latency (95% paired bootstrap CI of a − b excludes 0):", ""]
    for metric, m in summary["metrics"].items():
        for p in m["pairs"]:
            if p["significant"] and metric not in COST[1:]:  # quality and latency; the rest is in the JSON
                lines.append(f"- {metric}: {p['a']} − {p['b']} = {_ci(p['diff'])}")
    if not sig:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def _question_rows(run: Any, rows: list[dict[str, Any]]) -> str:
    arms = list(run.arms)
    by_q: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_q.setdefault(r["question_id"], {})[r["arm"]] = r
    out = []
    for qid, per_arm in by_q.items():
        first = next(iter(per_arm.values()))["detail"]
        cells = []
        for arm in arms:
            r = per_arm.get(arm)
            if r is None:
                cells.append("<td>–</td>")
                continue
            m, d = r["metrics"], r["detail"]
            cites = "".join(f"<div class='{'ok' if c['supported'] else 'bad'}'>[{c['n']}] {html.escape(c['source'])}"
                            f" {'supported' if c['supported'] else 'not supported'}</div>" for c in d.get("citations", []))
            srcs = "".join(f"<div>[{s['n']}] {html.escape(str(s['source']))}{' ★' if s.get('gold') else ''}</div>"
                           for s in d.get("sources", []))
            err = f"<div class='bad'>{html.escape(d['error'])}</div>" if d.get("error") else ""
            cells.append(f"<td>{html.escape(r['answer'])}{err}<div><code>F1 {_fmt(m.get('f1'), 2)}</code></div>"
                         f"{cites}{f'<details><summary>sources</summary>{srcs}</details>' if srcs else ''}</td>")
        gold = " | ".join(first.get("gold", [])) if first.get("answerable", True) else "(unanswerable)"
        out.append(f"<tr><td>{html.escape(first.get('question', qid))}<div><code>{html.escape(qid)}</code></div>"
                   f"</td><td>{html.escape(gold)}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
    return f"<table class='q'><tr><th>question</th><th>gold</th>{head}</tr>{''.join(out)}</table>"


def html_report(run: Any, summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    arms, images = summary["arms"], plots(summary, rows)
    metric_rows = "".join(
        f"<tr><td>{m}</td>" + "".join(f"<td>{_ci(iv) if (iv := s['arms'].get(a)) and iv['n'] else '–'}</td>"
                                      for a in arms) + "</tr>" for m, s in summary["metrics"].items())
    pair_rows = "".join(
        f"<tr><td>{m}</td><td>{html.escape(p['a'])} − {html.escape(p['b'])}</td><td>{_ci(p['diff'])}</td>"
        f"<td class='{'sig' if p['significant'] else 'ns'}'>{'yes' if p['significant'] else 'no'}</td></tr>"
        for m, s in summary["metrics"].items() if m in QUALITY for p in s["pairs"])
    lat = "".join(f"<tr><td>{a}</td><td>{_fmt(v.get('p50'))}</td><td>{_fmt(v.get('p95'))}</td></tr>"
                  for a, v in summary["latency"].items())
    imgs = "".join(f"<img alt='{k}' src='data:image/png;base64,{v}'>" for k, v in images.items())
    prov = html.escape(json.dumps({"provenance": run.provenance, "split_sizes": {k: len(v) for k, v in
                                   run.split.items() if isinstance(v, list)}}, indent=2, default=str))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation run {run.id}</title>"
            f"<style>{_CSS}</style></head><body><h1>Evaluation run {run.id}: {html.escape(run.kind)}</h1>"
            f"<p>{html.escape(run.dataset or '')} · {summary['questions']} questions · arms "
            f"{html.escape(', '.join(arms))} · code {html.escape(run.code_version or '?')}</p>{imgs}"
            f"<h2>Metrics (mean [95% CI])</h2><table><tr><th>metric</th>"
            + "".join(f"<th>{html.escape(a)}</th>" for a in arms) + f"</tr>{metric_rows}</table>"
            f"<h2>Paired differences</h2><table><tr><th>metric</th><th>pair</th><th>difference [95% CI]</th>"
            f"<th>significant</th></tr>{pair_rows}</table><h2>Latency (s)</h2><table><tr><th>arm</th><th>p50</th>"
            f"<th>p95</th></tr>{lat}</table><h2>Per question</h2>{_question_rows(run, rows)}"
            f"<h2>What produced this run</h2><pre>{prov}</pre></body></html>")


def write_reports(run: Any, summary: dict[str, Any], rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """report.html, report.md and report.json in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / "report.html", "md": out_dir / "report.md", "json": out_dir / "report.json"}
    paths["html"].write_text(html_report(run, summary, rows), encoding="utf-8")
    paths["md"].write_text(markdown(run, summary), encoding="utf-8")
    paths["json"].write_text(json.dumps({"run": run.id, "kind": run.kind, "dataset": run.dataset,
                                         "provenance": run.provenance, "split": run.split, "summary": summary,
                                         "results": rows}, indent=2, default=str), encoding="utf-8")
    return paths
