"""Text utilities below retrieval and answering: BM25's analyzer and sentence segmentation.

`analyze(text)` is the one word analysis (lowercase, stopwords, Snowball stems) that
BM25, the citation checker and the extractive answerer share.

Sentence segmentation, shared by the answerer and the citation checker:

Real documents are not clean prose: PDF text wraps lines mid-sentence and
hyphenates words, reference pages have headings, list items and definition
terms on their own lines, and our table loaders write each table row as ONE
line `Header: value; Header2: value2`. `units(text)` cuts a text into spans
that a reader would quote on their own: a sentence (possibly spread over
wrapped lines), a heading, a list item or a table row (never merged with
another row, never split). `clean(span)` is how a span reads when quoted.

Rules, in order: a blank line ends a block; a table-row line, a list item
and a heading line start their own unit; other lines join the line before
(a PDF wrap). Inside a block, a sentence ends at . ! ? followed by space and
an upper-case letter, digit, quote or bracket, except after an abbreviation
("e.g.", "Fig.", "Dr."), an initial ("J. Smith") or a number-list marker.
Decimals and versions ("3.5", "v1.2.3") never split: no space follows the dot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=4)
def _stemmer(language: str) -> Any:
    import Stemmer

    return Stemmer.Stemmer(language)


@lru_cache(maxsize=4)
def _stopwords(language: str) -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) if language == "english" else frozenset()


def analyze(text: str, language: str = "english") -> list[str]:
    """Lowercase words, English stopwords removed, Snowball-stemmed."""
    stop = _stopwords(language)
    words = [w for w in _WORD.findall(text.lower()) if w not in stop]
    return list(_stemmer(language).stemWords(words))


Kind = Literal["sentence", "heading", "item", "row"]

ABBREVIATIONS = frozenset("""
a.m p.m e.g i.e etc vs cf al approx ca fig figs eq eqs no nos vol vols pp p ch sec secs art dept est
mr mrs ms dr prof sr jr st mt ft co corp inc ltd llc jan feb mar apr jun jul aug sep sept oct nov dec
u.s u.k u.n e.u ph.d b.a m.a b.sc m.sc op ed eds rev gen col lt sgt capt gov pres rep sen resp incl
max min avg misc ref refs approx. viz
""".split())

_ROW_PAIR = r"[^\s:;][^:;\n]{0,80}?:[ \t]+[^;\n]*"
_ROW = re.compile(rf"^[ \t]*{_ROW_PAIR}(?:;[ \t]+{_ROW_PAIR})+[ \t]*$")
_ITEM = re.compile(r"^[ \t]*(?:[-*\u2022\u25aa\u2013>]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\w{1,3}\))[ \t]+\S")
_MD_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+\S")
# A sentence end: terminal punctuation, optional closing quotes/brackets, whitespace, then a start.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de])")
_WORD_BEFORE = re.compile(r"([\w.]+)[.]$")
_CONTINUATION_END = ("the", "a", "an", "of", "and", "or", "to", "in", "for", "with", "on", "by", "at", "from",
                     "as", "is", "are", "was", "were", "be", "that", "which", "than", "its", "their", "our")


@dataclass(frozen=True)
class Unit:
    """A quotable span of a text: `text[start:end]`."""

    start: int
    end: int
    kind: Kind


def _lines(text: str) -> list[tuple[int, int]]:
    out, a = [], 0
    for m in re.finditer(r"\n", text):
        out.append((a, m.start()))
        a = m.end()
    out.append((a, len(text)))
    return out


def _is_heading(line: str, prev: str | None, nxt: str | None) -> bool:
    """A short line that stands alone: no end punctuation, not a wrap into the next line."""
    s = line.strip()
    if _MD_HEADING.match(line):
        return True
    words = s.split()
    if not words or len(words) > 12 or s[-1] in ".!?,;+-(/&=\u2013" or s.endswith(" x"):
        return False
    if words[-1].lower() in _CONTINUATION_END:
        return False
    if nxt is not None and _indent(nxt) > _indent(line) and nxt.strip() and len(words) <= 8:
        return True  # a definition-list term: its description follows, indented
    if nxt is not None and nxt.strip() and nxt.strip()[0].islower():
        return False  # the next line goes on with this sentence
    starts_fresh = prev is None or not prev.strip() or prev.rstrip()[-1] in ".!?:;\"'\u201d)" or \
        bool(_ROW.match(prev)) or _is_short_standalone(prev)
    return starts_fresh and (len(words) <= 6 or s[0].isupper() or s[0].isdigit() or not s[0].isalpha())


def _item_heading(line: str, nxt: str | None) -> bool:
    """A numbered line without end punctuation followed by a new sentence is a section heading."""
    s, n = line.strip(), (nxt or "").strip()
    return len(s.split()) <= 12 and s[-1] not in ".!?,;:+-(/&=" and bool(n) and n[0].isupper() and \
        not _ITEM.match(nxt or "") and not _ROW.match(nxt or "")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_short_standalone(line: str) -> bool:
    s = line.strip()
    return bool(s) and len(s.split()) <= 12 and s[-1] not in ".!?,;+-(/&=" and not s[0].islower()


def units(text: str) -> list[Unit]:
    """Quotable spans in order (see the module docstring for the rules)."""
    out: list[Unit] = []
    lines = _lines(text)
    block: list[tuple[int, int]] = []
    block_kind: Kind = "sentence"

    def flush() -> None:
        nonlocal block, block_kind
        if block:
            a, b = block[0][0], block[-1][1]
            if block_kind == "sentence":
                out.extend(_sentences(text, a, b))
            else:
                out.extend(_sentences(text, a, b, first_kind=block_kind))
        block, block_kind = [], "sentence"

    for i, (a, b) in enumerate(lines):
        line = text[a:b]
        if not line.strip():
            flush()
            continue
        prev = text[lines[i - 1][0]:lines[i - 1][1]] if i else None
        nxt = text[lines[i + 1][0]:lines[i + 1][1]] if i + 1 < len(lines) else None
        if _ROW.match(line):
            flush()
            out.append(_trim(text, a, b, "row"))
        elif _ITEM.match(line) and _item_heading(line, nxt):  # "2. Fusing the two ranked lists"
            flush()
            out.append(_trim(text, a, b, "heading"))
        elif _ITEM.match(line):
            flush()
            block, block_kind = [(a, b)], "item"
        elif _is_heading(line, prev, nxt):
            flush()
            out.append(_trim(text, a, b, "heading"))
        else:
            block.append((a, b))
    flush()
    return [u for u in out if text[u.start:u.end].strip()]


def _trim(text: str, a: int, b: int, kind: Kind) -> Unit:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return Unit(a, b, kind)


def _sentences(text: str, a: int, b: int, first_kind: Kind = "sentence") -> list[Unit]:
    """Split one block (joined wrapped lines) at sentence ends."""
    out: list[Unit] = []
    start = a
    for m in _END.finditer(text, a, b):
        if _no_break(text, start, m.start(), m.end()):
            continue
        out.append(_trim(text, start, m.end(), first_kind if not out else "sentence"))
        start = m.end()
    if text[start:b].strip():
        out.append(_trim(text, start, b, first_kind if not out else "sentence"))
    return out


def _no_break(text: str, start: int, dot: int, end: int) -> bool:
    """True when the '.' at `dot` ends an abbreviation, an initial or a list number, not a sentence."""
    if text[dot] != "." or end - dot > 1 and text[dot + 1] in ".\u2026":
        return False
    m = _WORD_BEFORE.search(text, max(start, dot - 24), dot + 1)
    if not m:
        return False
    word = m.group(1)
    low = word.lower().rstrip(".")
    if low in ABBREVIATIONS or low.replace(".", "") in {"eg", "ie", "us", "uk"} and "." in low:
        return True
    if len(word) == 1 and word.isupper():  # an initial: "J. R. R. Tolkien"
        return True
    if re.fullmatch(r"\d{1,3}", word) and dot - m.start() == len(word) and \
            (m.start() == start or text[m.start() - 1] == "\n"):  # "1. First step" at a line start
        return True
    return False


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the quotable units of `text` (sentences, headings, list items, table rows)."""
    return [(u.start, u.end) for u in units(text)]


_HYPHEN_WRAP = re.compile(r"(?<=[a-z])-[ \t]*\n[ \t]*(?=[a-z])")


def clean(span: str) -> str:
    """How a span reads when quoted: wrapped lines joined, a word hyphenated at a line end rejoined."""
    return " ".join(_HYPHEN_WRAP.sub("", span).split())
