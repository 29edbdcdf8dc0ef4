"""Which sentence of the sources answers the question: features and a small fitted model.

Every quotable unit of the numbered sources (a sentence, list item or table
row; headings serve as context) gets features a careful reader would weigh:
how close its meaning is to the question (the embedder's cosine of the unit
read under its heading; the default model was trained on question-answer
pairs), how much of the question's weight its words cover (IDF over the candidates, stemmed), the same for its
neighbours and its heading (the answer often sits next to the sentence that
matches), the source's rank, whether it holds the kind of thing asked for (a
year for "when", a number for "how many"), and what it adds beyond the
question's own words. A logistic regression fitted on SQuAD articles 1-12
(`bench/fit_extractive.py`) turns them into a probability; its weights and
the abstention thresholds are plain JSON beside this file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.text import analyze, clean, units
from rag.vectors import SHARED

WEIGHTS = Path(__file__).with_name("extractive_weights.json")
FEATURES = ("cos", "cos_margin", "cov", "cov_margin", "win_cov", "prev_cov", "next_cov", "prev_cos",
            "heading_cov", "src_max_cos", "rank_inv", "pos_inv", "typed", "type_match", "novel", "len_log",
            "is_row", "bigram", "cos_rank", "cov_rank", "cos_x_cov")
QUESTION_WORDS = frozenset(analyze("how what which who whom whose when where why does do did is are was were can "
                                    "could should would will tell me explain describe list give please name"))
_MARKERS = re.compile(r"\[\d+(?:\s*[,;\u2013-]\s*\d+)*\]")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b|\b(january|february|march|april|may|june|july|august|september|"
                   r"october|november|december|century|centuries|bc|ad|decade)\b", re.I)
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                     r"fifty|hundred|thousand|million|billion|trillion|dozen|half|percent)\b", re.I)
MAX_EMBED = 4
"""Units embedded per question: the best by wording (their heading's words count half), plus the best unit of
each source not among them, so a source that matches the question only in meaning is still read by meaning
(on training, gold in the embedded pool 0.927 -> 0.946, about 5.8 units embedded instead of 4). Out of fold,
2-6 by wording pick the answer equally often (top-1 0.782-0.790; 1 alone: 0.762)."""
_CAPITAL = re.compile(r"(?<=\s)[A-Z][a-zA-Z\u00c0-\u017f]+")


@dataclass(frozen=True)
class Candidate:
    """One quotable unit of source `n`: `index` is its position among that source's units."""

    n: int
    index: int
    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Model:
    """Standardise, dot, sigmoid. `abstain_below` and `confident_from` are calibrated on training data."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    abstain_below: float
    confident_from: float
    version: str
    embedder: str

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p


@cache
def load_model(path: Path = WEIGHTS) -> Model:
    data = json.loads(path.read_text(encoding="utf-8"))
    names = tuple(data["features"])
    if names != FEATURES:
        raise ValueError(f"{path}: features {names} do not match the code's {FEATURES}; refit with "
                         "bench/fit_extractive.py")
    return Model(names, np.array(data["mean"]), np.array(data["scale"]), np.array(data["coef"]),
                 float(data["intercept"]), float(data["abstain_below"]), float(data["confident_from"]),
                 str(data["version"]), str(data.get("embedder", "")))


def candidates(sources: dict[int, str]) -> list[Candidate]:
    out = []
    for n, src in sources.items():
        for i, u in enumerate(units(src)):
            text = clean(_MARKERS.sub("", src[u.start:u.end]))
            if text:
                out.append(Candidate(n, i, u.kind, text, u.start, u.end))
    return out


def answerable(c: Candidate) -> bool:
    """Headings and questions are context, not answers."""
    return c.kind != "heading" and not c.text.rstrip("\"')").endswith("?") and len(c.text.split()) >= 3


def _answer_type(question: str) -> re.Pattern[str] | None:
    q = question.lower()
    if re.search(r"\b(when|what year|which year|what date|what century|which century|what decade)\b", q):
        return _YEAR
    if re.search(r"\bhow (many|much|long|old|far|large|big|tall|high|often)\b|\bwhat (percentage|percent|number|"
                 r"amount)\b", q):
        return _NUMBER
    if re.search(r"\b(who|whom|whose|where)\b", q):
        return _CAPITAL
    return None


def features(question: str, cands: list[Candidate], embedder: Any, *, max_embed: int = MAX_EMBED,
             qvec: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """(feature matrix, candidate indices it covers): answerable candidates, the best `max_embed` by wording."""
    qtoks = [t for t in analyze(question) if t not in QUESTION_WORDS]
    terms = set(qtoks)
    qbigrams = set(zip(qtoks, qtoks[1:], strict=False))
    bags = [analyze(c.text) for c in cands]
    sets = [set(b) for b in bags]
    df = {t: sum(1 for s in sets if t in s) for t in terms}
    idf = {t: math.log(1 + len(sets) / (1 + df[t])) for t in terms}
    total = sum(idf.values()) or 1.0

    def cov(words: set[str]) -> float:
        return sum(idf[t] for t in terms & words) / total

    by_pos = {(c.n, c.index): i for i, c in enumerate(cands)}
    covs = [cov(s) for s in sets]
    heading_of: dict[int, int | None] = {}
    last: dict[int, int | None] = {}
    for i, c in enumerate(cands):
        heading_of[i] = last.get(c.n)
        if c.kind == "heading":
            last[c.n] = i
    pool = [i for i, c in enumerate(cands) if answerable(c)]
    if not pool:
        return np.zeros((0, len(FEATURES))), []

    def neighbour(i: int, step: int) -> int | None:
        """The sentence before or after in the same source; a heading is not one (it has its own feature)."""
        j = by_pos.get((cands[i].n, cands[i].index + step))
        return None if j is None or cands[j].kind == "heading" else j

    def win(i: int) -> float:
        words = set(sets[i])
        for j in (neighbour(i, -1), neighbour(i, 1)):
            if j is not None:
                words |= sets[j]
        return cov(words)

    def lead(i: int) -> str:
        """The heading (or definition term) a unit sits under, as a lead-in: "Supported formats: PDF (.pdf), ..."."""
        h = heading_of[i]
        return "" if h is None else cands[h].text.rstrip(" :") + ": "

    pre = {i: covs[i] + 0.5 * win(i) + 0.5 * (covs[h] if (h := heading_of[i]) is not None else 0.0)
           + 0.25 / cands[i].n + 0.1 / (1 + cands[i].index) for i in pool}
    ranked = sorted(pool, key=lambda i: -pre[i])
    pool = ranked[:max_embed]
    for n in sorted({cands[i].n for i in ranked} - {cands[i].n for i in pool}):  # every source is read by meaning
        pool.append(next(i for i in ranked if cands[i].n == n))
    need = sorted(pool)  # one batch; a neighbour outside the pool gets the pool's lowest cosine
    vecs = SHARED.encode(embedder, [lead(i) + cands[i].text for i in need])
    q = qvec if qvec is not None else np.asarray(embedder.encode_query(question), dtype=np.float32)
    cos_of = dict(zip(need, (vecs @ q).tolist(), strict=True))
    fill = min(cos_of.values())
    max_cos = max(cos_of[i] for i in pool)
    max_cov = max(covs[i] for i in pool)
    src_max: dict[int, float] = {}
    for i in pool:
        src_max[cands[i].n] = max(src_max.get(cands[i].n, -1.0), cos_of[i])
    typ = _answer_type(question)
    rows = []
    for i in pool:
        c, prev, nxt, head = cands[i], neighbour(i, -1), neighbour(i, 1), heading_of[i]
        novel = len(sets[i] - terms)
        sb = set(zip(bags[i], bags[i][1:], strict=False))
        match = 0.0
        if typ is not None:
            found = [m.group(0) for m in typ.finditer(" " + c.text)]
            match = float(bool(found) and (typ is not _CAPITAL or
                                           any(w.lower() not in question.lower() for w in found)))
        rows.append([
            cos_of[i], cos_of[i] - max_cos, covs[i], covs[i] - max_cov, win(i),
            covs[prev] if prev is not None else 0.0, covs[nxt] if nxt is not None else 0.0,
            cos_of.get(prev, fill) if prev is not None else fill,
            covs[head] if head is not None else 0.0, src_max[c.n], 1.0 / c.n, 1.0 / (1 + c.index),
            float(typ is not None), match, math.log1p(novel), math.log1p(len(c.text.split())),
            float(c.kind == "row"), len(qbigrams & sb) / len(qbigrams) if qbigrams else 0.0,
        ])
    x = np.array(rows, dtype=np.float64)
    return np.hstack([x, _relative(x[:, 0], x[:, 2])]), pool


def _relative(cos: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Where a unit stands among this question's candidates (1/rank by meaning and by wording), and both at once."""
    def inv_rank(v: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.argsort(np.argsort(-v, kind="stable"), kind="stable"))

    return np.column_stack([inv_rank(cos), inv_rank(cov), cos * cov])
