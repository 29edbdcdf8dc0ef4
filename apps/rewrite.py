"""Follow-up questions into standalone queries, so retrieval sees what the user means.

"What is its default k?" retrieves nothing useful on its own: the subject is in
the previous question. The heuristic here needs no model (it is what runs
offline, with the extractive provider): it finds the previous question's topic
(its longest run of content words) and puts it where the follow-up has a
pronoun, or in place of the old topic for an ellipsis ("what about X?"). When
an LLM other than the extractive one is configured, `rewrite_with_llm` asks it
instead and falls back to the heuristic on any failure or odd output.

Shared by the Streamlit app's chat and the OpenAI-compatible endpoint (`standalone_question`
turns a whole conversation's user turns into the question to retrieve for).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

_STOP = frozenset("""
a an the and or but if then than so of to in on at by for with from into onto about over under between
through during before after above below up down out off again further once here there all any both each few
more most other some such no nor not only own same too very can could should would will shall may might must
do does did doing done is are was were be been being am have has had having i me my we our you your
how what which who whom whose when where why tell explain describe list give please show us
get gets got make makes made use uses used work works happen happens mean means
""".split())
_PRONOUNS = ("it", "its", "this", "that", "these", "those", "they", "them", "their", "he", "she", "his", "her")
_PRONOUN = re.compile(r"\b(its|it|these|those|they|them|their)\b|\b(this|that)\b(?=\s*[?.!]*\s*$)", re.IGNORECASE)
_ELLIPSIS = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)\s*[?.!]*\s*$"
                       r"|^\s*and\s+(?:(?:for|with|in|on)\s+)?(?P<y>.+?)\s*[?.!]*\s*$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def content_words(text: str) -> list[str]:
    """Words that carry meaning, in order (stopwords, question words and generic verbs dropped)."""
    return [w.rstrip(".") for w in _WORD.findall(text) if w.lower().rstrip(".") not in _STOP]


def topic(question: str) -> str:
    """The question's subject: its longest run of adjacent content words (first one on a tie)."""
    best: list[str] = []
    run: list[str] = []
    for w in _WORD.findall(question) + [""]:
        word = w.rstrip(".")
        if word and word.lower() not in _STOP and word.lower() not in _PRONOUNS:
            run.append(word)
            continue
        while len(run) > 1 and run[-1].lower().endswith("ed"):  # "PDF files scored": the verb is no topic
            run.pop()
        if len(run) > len(best):
            best = run
        run = []
    return " ".join(best)


def is_followup(question: str) -> bool:
    """A pronoun with no antecedent of its own, an ellipsis, or too few content words to stand alone."""
    if _ELLIPSIS.match(question):
        return True
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in ("it", "its", "they", "them", "their", "these", "those") for w in words):
        return True
    if words and words[-1] in ("this", "that"):
        return True
    return len(content_words(question)) < 2


def rewrite_followup(question: str, history: Sequence[str]) -> str:
    """A standalone version of `question`, given the earlier (already standalone) questions, oldest first.

    Example:
        >>> rewrite_followup("What is its default k?", ["How does reciprocal rank fusion work?"])
        "What is reciprocal rank fusion's default k?"
        >>> rewrite_followup("And for BM25?", ["How are PDF files scored?"])
        'How are BM25 scored?'
    """
    question = " ".join(question.split())
    if not history or not question or not is_followup(question):
        return question
    previous = history[-1]
    subject = topic(previous)
    if not subject:
        return question
    m = _ELLIPSIS.match(question)
    if m:
        new = (m.group("x") or m.group("y") or "").strip()
        if subject.lower() in previous.lower():
            start = previous.lower().index(subject.lower())
            return previous[:start] + new + previous[start + len(subject):]
        return f"{new} {previous}"
    replaced, n = _PRONOUN.subn(
        lambda m: f"{subject}'s" if m.group(0).lower() in ("its", "their") else subject, question, count=1)
    if n and subject.lower() not in question.lower():
        return replaced
    missing = [w for w in content_words(previous) if w.lower() not in question.lower()]
    return f"{question.rstrip('?!. ')} ({' '.join(missing)})?" if missing else question


REWRITE_PROMPT = (
    "Rewrite the last question so that it can be understood without the conversation: replace pronouns and "
    "fill in what is left out, using the earlier questions. Keep the language and the meaning; do not answer "
    "it. Reply with the rewritten question only, on one line.")


def rewrite_with_llm(question: str, history: Sequence[str], llm: Any, *, timeout_s: float = 30.0) -> str:
    """Ask `llm` (an `rag.llm.base.LLM`) for the standalone question; the heuristic when it fails.

    The model's reply is used only when it is one plausible line (not empty, not an answer many times
    longer than the question).
    """
    fallback = rewrite_followup(question, history)
    if not history:
        return fallback
    from rag.llm.base import GenerationParams, Message

    turns = "\n".join(f"Earlier question: {q}" for q in history[-4:])
    messages = [Message("system", REWRITE_PROMPT), Message("user", f"{turns}\nLast question: {question}")]
    try:
        done = llm.complete(messages, GenerationParams(max_tokens=96, temperature=0.0, timeout_s=timeout_s))
    except Exception as exc:  # noqa: BLE001 - any provider failure means: use the heuristic
        log.warning("query rewriting by %s failed (%s); using the heuristic", getattr(llm, "name", "?"), exc)
        return fallback
    lines = [ln.strip() for ln in str(done.text).strip().splitlines() if ln.strip()]
    line = re.sub(r"^(?:rewritten(?: question)?|standalone(?: question)?|question)\s*:\s*", "",
                  lines[0] if lines else "", flags=re.IGNORECASE).strip().strip("\"'").strip()
    if not line or len(line) > max(200, 4 * len(question)):
        return fallback
    return line


def standalone_question(questions: Sequence[str], llm: Any = None) -> str:
    """The last of a conversation's user questions (oldest first), made standalone by the earlier ones.

    Each earlier question is itself rewritten against the ones before it, as the app does turn by
    turn, so a chain of follow-ups keeps its subject. With `llm`, only the last one is asked of it.

    Example:
        >>> standalone_question(["How does reciprocal rank fusion work?", "What is its default k?"])
        "What is reciprocal rank fusion's default k?"
    """
    history: list[str] = []
    for q in questions[:-1]:
        history.append(rewrite_followup(q, history))
    last = questions[-1] if questions else ""
    return rewrite_with_llm(last, history, llm) if llm is not None else rewrite_followup(last, history)
