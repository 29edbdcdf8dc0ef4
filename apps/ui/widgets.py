"""Streamlit pieces the pages share: the cached RAG, the error guard, the collection picker, citations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from rag import RAG, Answer
from rag_platform.apps.ui.format import citation_cards
from rag_platform.apps.ui.session import open_rag, user_message

COLLECTION = "collection"  # session key of the collection the pages work on


@st.cache_resource(show_spinner="Loading the embedding model…")
def _rag(home: str) -> RAG:
    return open_rag(home or None)


def get_rag() -> RAG:
    """The RAG of this server's data home (`RAG_HOME`), shared by every session."""
    return _rag(os.environ.get("RAG_HOME", ""))


@contextmanager
def errors_shown() -> Iterator[None]:
    """Show any failure inside the block as one short message instead of a stack trace."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the user sees a message, the log gets the trace
        st.error(user_message(exc))  # st.rerun/st.stop raise BaseExceptions, which pass through


def collection_picker(rag: RAG, *, where: Any = None) -> str | None:
    """A selectbox of the collections; remembers the choice across pages of the session."""
    names = rag.store.collection_names()
    area = where or st.sidebar
    if not names:
        area.info("No collections yet: create one on the Collections page.")
        return None
    current = st.session_state.get(COLLECTION)
    index = names.index(current) if current in names else 0
    choice = area.selectbox("Collection", names, index=index, key="collection_picker")
    st.session_state[COLLECTION] = choice
    return str(choice)


def show_citations(answer: Answer) -> None:
    """Answer details: one expander per cited source (passage with the cited span highlighted), then metadata."""
    from rag_platform.apps.ui.format import answer_meta

    if answer.abstained:
        st.info("The sources do not answer this question.")
    elif answer.low_confidence:
        st.warning("Low confidence: this is the closest passage; it may not answer the question.")
    for card in citation_cards(answer):
        with st.expander(card.label):
            where = " · ".join(x for x in (card.document, f"page {card.page}" if card.page else "", card.section) if x)
            st.caption(where)
            st.markdown(f"<div class='rag-passage'>{card.passage_html}</div>", unsafe_allow_html=True)
            if card.claims:
                st.caption("Cited for: " + " | ".join(card.claims))
    if answer.invalid_citations:
        st.warning(f"The answer cited sources that do not exist: {answer.invalid_citations}")
    st.caption(answer_meta(answer))
