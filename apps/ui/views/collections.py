"""Collections: create and delete them, upload and ingest files, list, delete or re-ingest documents."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rag_platform.apps.ui import uploads
from rag_platform.apps.ui.widgets import COLLECTION, collection_picker, errors_shown, get_rag
from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES

st.title("Collections")

rag = None
with errors_shown():
    rag = get_rag()
if rag is None:
    st.stop()

with errors_shown(), st.form("create_collection", clear_on_submit=True):
    name = st.text_input("New collection", placeholder="handbook", max_chars=64,
                         help="1–64 letters, digits, '_', '.' or '-'.")
    if st.form_submit_button("Create collection") and name.strip():
        st.session_state[COLLECTION] = uploads.create_collection(rag, name)
        st.toast(f"Created collection '{name.strip()}'")

with errors_shown():
    infos = rag.collections()
    if not infos:
        st.info("No collections yet. Create one above, then upload documents into it.")
        st.stop()
    st.dataframe(pd.DataFrame([{"collection": c.name, "documents": c.documents, "failed": c.failed,
                                "chunks": c.chunks} for c in infos]), hide_index=True)
    coll = collection_picker(rag, where=st)
    assert coll is not None

    st.subheader(f"Add documents to '{coll}'")
    # No `type=`: Streamlit would print our suffixes upper-cased without dots (".text" as a type "TEXT");
    # the caption lists them as file endings, and saving refuses any other with a message naming it.
    files = st.file_uploader("Drop files here (several at once)", accept_multiple_files=True, key=f"upload-{coll}")
    st.caption(uploads.accepted_caption(SUPPORTED_SUFFIXES))
    if st.button("Ingest", type="primary", disabled=not files):
        bar = st.progress(0.0, text="Saving the uploads…")
        paths = uploads.save(rag, coll, files or [])
        progress = uploads.CallbackProgress(lambda done, text: bar.progress(min(1.0, done), text=text))
        report = rag.ingest(paths, collection=coll, progress=progress)
        st.session_state["ingest_report"] = (coll, uploads.report_rows(report), report.summary())
        st.rerun()  # the tables above now count the new documents

    last = st.session_state.get("ingest_report")
    if last and last[0] == coll:
        _, rows, summary = last
        st.markdown("**Last ingestion:** " + " · ".join(f"{v} {k}" for k, v in summary.items()))
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="ingest_report_table")

    st.subheader("Documents")
    docs = uploads.document_rows(rag, coll)
    if not docs:
        st.caption("No documents in this collection yet.")
    else:
        st.dataframe(pd.DataFrame(docs).drop(columns=["source"]), hide_index=True)
        labels = {d["id"]: f"{d['document']} (id {d['id']}, {d['status']})" for d in docs}
        doc_id = st.selectbox("Document", list(labels), format_func=labels.__getitem__)
        left, right = st.columns(2)
        if left.button("Re-ingest document"):
            report = uploads.reingest_document(rag, coll, int(doc_id))
            st.session_state["ingest_report"] = (coll, uploads.report_rows(report), report.summary())
            st.rerun()
        if right.button("Delete document"):
            uploads.delete_document(rag, coll, int(doc_id))
            st.toast(f"Deleted {labels[doc_id]}")
            st.rerun()

    with st.expander("Delete this collection"):
        sure = st.checkbox(f"Yes, delete '{coll}' with all its documents and its index")
        if st.button("Delete collection", disabled=not sure):
            uploads.delete_collection(rag, coll)
            st.session_state.pop(COLLECTION, None)
            st.session_state.pop("ingest_report", None)
            st.rerun()
