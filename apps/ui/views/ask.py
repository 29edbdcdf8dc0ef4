"""Ask: a chat over one collection, with streamed answers and checked citations you can open."""

from __future__ import annotations

import streamlit as st

from rag_platform.apps.rewrite import rewrite_followup, rewrite_with_llm
from rag_platform.apps.ui.widgets import collection_picker, errors_shown, get_rag, show_citations

st.title("Ask")

rag = coll = None
with errors_shown():
    rag = get_rag()
    coll = collection_picker(rag)
if rag is None:
    st.stop()

side = st.sidebar
side.subheader("Retrieval")
mode = side.selectbox("Mode", ["hybrid", "dense", "bm25"], index=["hybrid", "dense", "bm25"].index(
    rag.settings.retrieval.mode))
k = side.slider("Passages (k)", 1, 20, min(20, rag.settings.retrieval.k))
rerank = side.checkbox("Rerank with the cross-encoder", value=rag.settings.rerank.enabled,
                       help="Needs a cross-encoder model (RAG_RERANK__MODEL); without one the fused order is kept.")
side.subheader("Answering")
kinds = {p.name: p.kind for p in rag.settings.llm.providers}
order = side.multiselect("Providers, in fallback order", list(kinds), default=rag.settings.llm.chain or list(kinds),
                         help="The first answers; the next is tried when it fails. `extractive` needs no model.")
llms = [n for n in (order or list(kinds)) if kinds[n] != "extractive"]
remote = [n for n in llms if kinds[n] not in ("local",)]
rewriter = side.selectbox("Rewrite follow-up questions with", ["heuristic", *llms],
                          index=1 + llms.index(remote[0]) if remote else 0,
                          help="Follow-ups ('what about its default?') become standalone queries using the "
                               "earlier questions. `heuristic` needs no model.")
if side.button("New conversation"):
    st.session_state["chat"] = []

chat: list[dict] = st.session_state.setdefault("chat", [])
for turn in chat:
    with st.chat_message("user"):
        st.markdown(turn["question"])
        if turn["query"] != turn["question"]:
            st.caption(f"searched for: {turn['query']}")
    with st.chat_message("assistant"):
        st.markdown(turn["answer"].text)
        show_citations(turn["answer"])

question = st.chat_input("Ask a question about your documents", disabled=coll is None)
if question and coll:
    history = [t["query"] for t in chat if t["collection"] == coll]
    with st.chat_message("user"):
        st.markdown(question)
        query = question
        with errors_shown():
            query = (rewrite_with_llm(question, history, rag.answerer.chain([rewriter]).providers[0])
                     if rewriter != "heuristic" else rewrite_followup(question, history))
        if query != question:
            st.caption(f"searched for: {query}")
    with st.chat_message("assistant"), errors_shown():
        stream = rag.ask(query, collection=coll, k=k, mode=mode, rerank=rerank, providers=order or None,
                         stream=True)
        st.write_stream(iter(stream))
        if stream.answer is not None:
            show_citations(stream.answer)
            chat.append({"collection": coll, "question": question, "query": query, "answer": stream.answer})
