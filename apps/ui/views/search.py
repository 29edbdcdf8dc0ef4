"""Search: raw retrieval, with each retriever's own rank and score, to see why a passage came back."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rag_platform.apps.ui.format import display_name, highlight, hit_rows
from rag_platform.apps.ui.widgets import collection_picker, errors_shown, get_rag

st.title("Search")
st.caption("The passages retrieval returns before any model sees them: the fused rank and score, and each "
           "retriever's own rank and raw score (empty where that retriever did not return the passage).")

rag = coll = None
with errors_shown():
    rag = get_rag()
    coll = collection_picker(rag)
if rag is None or coll is None:
    st.stop()

with st.form("search"):
    query = st.text_input("Query", placeholder="How does reciprocal rank fusion combine rankings?")
    c1, c2, c3, c4 = st.columns(4)
    modes, fusions = ["hybrid", "dense", "bm25"], ["convex", "rrf"]
    mode = c1.selectbox("Mode", modes, index=modes.index(rag.settings.retrieval.mode))
    fusion = c2.selectbox("Fusion", fusions, index=fusions.index(rag.settings.retrieval.fusion),
                          help="convex: weighted sum of normalised scores (dense weight "
                               f"{rag.settings.retrieval.dense_weight}); rrf: reciprocal rank fusion.")
    k = c3.number_input("k", 1, 100, rag.settings.retrieval.k)
    rerank = c4.checkbox("Rerank", value=False)
    submitted = st.form_submit_button("Search", type="primary")

if submitted and query.strip():
    with errors_shown():
        hits = rag.search(query.strip(), collection=coll, k=int(k), mode=mode, fusion=fusion, rerank=rerank)
        if not hits:
            st.info("Nothing matched. Try other words, or the bm25/dense mode on its own.")
        else:
            st.dataframe(pd.DataFrame(hit_rows(hits)), hide_index=True, key="search_hits")
            for i, h in enumerate(hits, 1):
                ranks = ", ".join(f"{r} #{h.ranks[r]} ({h.scores[r]:.4f})" for r in sorted(h.ranks))
                with st.expander(f"{i}. {display_name(h.source)}" + (f" · p. {h.page}" if h.page else "")
                                 + f" · {ranks or 'score ' + format(h.score, '.4f')}"):
                    st.caption(" › ".join(h.heading_path))
                    st.markdown(f"<div class='rag-passage'>{highlight(h.text, 0, 0)}</div>", unsafe_allow_html=True)
