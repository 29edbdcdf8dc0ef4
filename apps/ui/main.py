"""Entry point of the app: `rag app` runs `streamlit run` on this file.

Starts on the Ask page when some collection has documents, else on Collections.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from rag_platform.apps.ui.widgets import get_rag

PAGES = Path(__file__).resolve().parent / "views"  # not "pages/": Streamlit would list that folder itself

st.set_page_config(page_title="rag-platform", page_icon=":material/menu_book:", layout="wide")
st.markdown("<style>.rag-passage{font-size:0.92rem;line-height:1.45}"
            ".rag-passage mark{background:#ffe58a;padding:0 2px}</style>", unsafe_allow_html=True)

try:
    has_documents = any(c.documents for c in get_rag().collections())
except Exception:  # noqa: BLE001 - the page itself shows the error
    has_documents = False
ask = st.Page(PAGES / "ask.py", title="Ask", icon=":material/chat:", url_path="ask", default=has_documents)
collections = st.Page(PAGES / "collections.py", title="Collections", icon=":material/folder:", url_path="collections",
                      default=not has_documents)
search = st.Page(PAGES / "search.py", title="Search", icon=":material/search:", url_path="search")
evaluation = st.Page(PAGES / "evaluation.py", title="Evaluation", icon=":material/bar_chart:", url_path="evaluation")
st.navigation([ask, collections, search, evaluation]).run()
