"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rag_platform.eval.metrics import (
    average_precision,
    dedupe,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

RANKED = ["d3", "d1", "d7", "d2", "d9"]
REL = {"d1": 1, "d2": 2, "d5": 1}


def test_recall_precision_mrr() -> None:
    assert recall_at_k(RANKED, REL, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, REL, 5) == pytest.approx(2 / 3)
    assert precision_at_k(RANKED, REL, 5) == pytest.approx(2 / 5)
    assert mrr_at_k(RANKED, REL, 10) == pytest.approx(1 / 2)
    assert mrr_at_k(RANKED, REL, 1) == 0.0


def test_ndcg_graded_hand_computed() -> None:
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, REL, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["d2", "d1", "d5"], REL, 3) == pytest.approx(1.0)
    assert ndcg_at_k(RANKED, {}, 5) == 0.0


def test_average_precision() -> None:
    assert average_precision(RANKED, REL) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_dedupe_keeps_first_occurrence() -> None:
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_evaluate_run_averages_and_counts_missing_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    out = evaluate_run({"q1": ["a", "x"]}, qrels, ks=(1,))
    assert out["ndcg@1"] == pytest.approx(0.5) and out["recall@1"] == pytest.approx(0.5)


def test_matches_reference_implementation_when_installed() -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = {"q1": REL, "q2": {"a": 1, "b": 1}}
    run = {"q1": {d: 10.0 - i for i, d in enumerate(RANKED)}, "q2": {"b": 3.0, "c": 2.0, "a": 1.0}}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.5", "recall.5", "map"}).evaluate(run)
    ours = evaluate_run({q: sorted(r, key=lambda d: -r[d]) for q, r in run.items()}, qrels, ks=(5,))
    assert ours["ndcg@5"] == pytest.approx(sum(v["ndcg_cut_5"] for v in ref.values()) / 2)
    assert ours["recall@5"] == pytest.approx(sum(v["recall_5"] for v in ref.values()) / 2)
    assert ours["map"] == pytest.approx(sum(v["map"] for v in ref.values()) / 2)


def test_squad_normalisation_em_f1() -> None:
    from rag_platform.eval.metrics import contains_answer, exact_match, normalize_answer, token_f1

    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert exact_match("the Denver Broncos.", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Broncos of Denver", ["Denver Broncos"]) == 0.0
    # pred "denver broncos won" vs gold "denver broncos": p=2/3, r=1 -> f1=0.8
    assert token_f1("Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    assert token_f1("nothing", ["Denver Broncos"]) == 0.0
    assert contains_answer("In 2016 the Denver Broncos beat Carolina.", ["Denver Broncos"])
    assert not contains_answer("Denverite fans", ["Denver"])


def test_rouge_l_hand_computed() -> None:
    from rag_platform.eval.metrics import rouge_l, token_f1

    # normalised: "cat sat on mat" vs "cat was on mat": LCS 3 of 4 each way.
    assert rouge_l("The cat sat on the mat.", ["a cat was on the mat"]) == pytest.approx(0.75)
    # Same bag of words, reversed order: token F1 is perfect, ROUGE-L is not (LCS = 1 of 3).
    assert token_f1("mat on cat", ["cat on mat"]) == pytest.approx(1.0)
    assert rouge_l("mat on cat", ["cat on mat"]) == pytest.approx(1 / 3)
    # Best over golds; precision and recall differ: LCS 2, P 2/2, R 2/5 -> F 4/7.
    assert rouge_l("Denver Broncos", ["Carolina Panthers", "the Denver Broncos of Colorado USA"]) == pytest.approx(4 / 7)
    assert rouge_l("", [""]) == 1.0
    assert rouge_l("something", ["other"]) == 0.0
