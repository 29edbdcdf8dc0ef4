"""Evaluation: stored runs, one run's report (tables and plots), and two runs compared."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rag_platform.apps.ui import evaluation
from rag_platform.apps.ui.widgets import errors_shown, get_rag

st.title("Evaluation")
st.caption("Runs recorded by `rag eval compare` and `rag eval retrieval` in this data home.")

with errors_shown():
    ledger = get_rag().store.ledger
    rows = evaluation.run_rows(ledger)
    if not rows:
        st.info("No evaluation runs yet. Run `rag eval compare` (answers) or `rag eval retrieval` (search).")
        st.stop()
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="eval_runs")
    ids = [r["run"] for r in rows]
    labels = {r["run"]: f"run {r['run']} · {r['kind']} · {r['dataset']} · {r['created']}" for r in rows}

    report_tab, compare_tab = st.tabs(["Report", "Compare two runs"])
    with report_tab:
        run_id = st.selectbox("Run", ids, format_func=labels.__getitem__)
        rep = evaluation.load_report(ledger, int(run_id))
        st.markdown(f"**{rep.summary['questions']} questions** · arms: {', '.join(rep.summary['arms'])} · "
                    f"status {rep.run.status} · code {rep.run.code_version or '?'}")
        st.dataframe(pd.DataFrame(rep.metric_rows), hide_index=True, key="eval_metrics")
        if rep.latency_rows:
            st.dataframe(pd.DataFrame(rep.latency_rows), hide_index=True, key="eval_latency")
        for name, png in rep.plots.items():
            st.image(png, caption=name)
        st.download_button("Download the HTML report", rep.html, file_name=f"eval-run-{run_id}.html",
                           mime="text/html")
        with st.expander("Markdown summary"):
            st.code(rep.markdown, language="markdown")
    with compare_tab:
        if len(ids) < 2:
            st.info("Two runs are needed to compare.")
        else:
            a = st.selectbox("Run A", ids, index=1, format_func=labels.__getitem__)
            b = st.selectbox("Run B", ids, index=0, format_func=labels.__getitem__)
            metrics, flips = evaluation.compare_rows(ledger, int(a), int(b))
            if not metrics:
                st.warning(f"Runs {a} and {b} share no arm and no question: nothing to compare.")
            else:
                st.dataframe(pd.DataFrame(metrics), hide_index=True, key="eval_diff")
                st.markdown(f"**{len(flips)} question(s) changed outcome** (correct = F1 ≥ 0.5)")
                if flips:
                    st.dataframe(pd.DataFrame(flips), hide_index=True, key="eval_flips")
