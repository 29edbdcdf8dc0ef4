"""Retrieval metrics over ranked id lists and graded judgements. Pure functions.

`ranked` is a list of ids best first; `relevant` maps id -> grade (> 0 relevant).
Definitions follow trec_eval / BEIR (nDCG with linear gains and log2 discount).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    if not rel:
        return 0.0
    return len(rel & set(ranked[:k])) / len(rel)


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    return sum(1 for d in ranked[:k] if d in rel) / k if k else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k], 1):
        if relevant.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 1) for i, d in enumerate(ranked[:k], 1))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


def average_precision(ranked: Sequence[str], relevant: Mapping[str, int], k: int | None = None) -> float:
    rel = {d for d, g in relevant.items() if g > 0}
    if not rel:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked[:k] if k else ranked, 1):
        if d in rel:
            hits += 1
            total += hits / i
    return total / len(rel)


def dedupe(ranked: Sequence[str]) -> list[str]:
    """First occurrence order: chunk hits -> document ranking (a document scores as its best chunk)."""
    seen: set[str] = set()
    return [d for d in ranked if not (d in seen or seen.add(d))]  # type: ignore[func-returns-value]


def evaluate_run(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]],
                 ks: Sequence[int] = (10, 100)) -> dict[str, float]:
    """Mean of each metric over the judged queries (a query with no result scores 0)."""
    names: dict[str, list[float]] = {}
    for qid, rel in qrels.items():
        ranked = list(run.get(qid, []))
        for k in ks:
            names.setdefault(f"ndcg@{k}", []).append(ndcg_at_k(ranked, rel, k))
            names.setdefault(f"recall@{k}", []).append(recall_at_k(ranked, rel, k))
            names.setdefault(f"precision@{k}", []).append(precision_at_k(ranked, rel, k))
            names.setdefault(f"mrr@{k}", []).append(mrr_at_k(ranked, rel, k))
        names.setdefault("map", []).append(average_precision(ranked, rel))
    return {name: sum(v) / len(v) for name, v in names.items()} if qrels else {}


# -- answers (SQuAD v1.1 normalisation) ------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, articles and extra spaces (the official SQuAD script's rules)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 against any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = Counter(pred) & Counter(ref)
        same = sum(common.values())
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        if same:
            p, r = same / len(pred), same / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (one row of the DP table kept)."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(prediction: str, golds: Sequence[str]) -> float:
    """Best ROUGE-L F1 (longest common subsequence) against any gold, on SQuAD-normalised tokens.

    Unlike token F1 it rewards words in the gold's order, which separates a fluent answer
    from a bag of the right words.
    """
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        lcs = _lcs(pred, ref)
        if lcs:
            p, r = lcs / len(pred), lcs / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether a passage holds a gold answer (normalised substring)."""
    norm = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(g)} " in norm for g in golds if normalize_answer(g))
