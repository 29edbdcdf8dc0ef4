"""Evaluation: paired bootstrap on data with known answers, splits, and a tiny real RAG-versus-fine-tuning run.

The end-to-end part trains a LoRA adapter for two steps on the real SmolLM2
(prepared once into a session home, ~30 s), compares three arms on three
questions over a five-passage corpus, resumes a partial run, and diffs two runs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rag_platform.eval.datasets import QAData, QAItem
from rag_platform.eval.stats import interval, paired_bootstrap

PASSAGES = {
    "p1": ("Paris", "Paris is the capital of France. The Eiffel Tower was finished in 1889."),
    "p2": ("Nile", "The Nile is a river in Africa. It flows north into the Mediterranean Sea."),
    "p3": ("Mars", "Mars is the fourth planet from the Sun. It is often called the Red Planet."),
    "p4": ("Python", "Python is a programming language created by Guido van Rossum."),
    "p5": ("Everest", "Mount Everest is the highest mountain on Earth, in the Himalayas."),
}
ITEMS = [
    QAItem("q1", "What is the capital of France?", ("Paris",), "p1"),
    QAItem("q2", "When was the Eiffel Tower finished?", ("1889",), "p1"),
    QAItem("q3", "Into which sea does the Nile flow?", ("the Mediterranean Sea", "Mediterranean"), "p2"),
    QAItem("q4", "Which planet is called the Red Planet?", ("Mars",), "p3"),
    QAItem("q5", "Who created Python?", ("Guido van Rossum",), "p4"),
    QAItem("q6", "What is the highest mountain on Earth?", ("Mount Everest",), "p5"),
]
DATA = QAData(PASSAGES, ITEMS)
ARMS = ("rag-extractive", "closed-base", "closed-ft")


# -- statistics on synthetic data ------------------------------------------------------------------
def test_bootstrap_separates_always_right_from_always_wrong() -> None:
    s = paired_bootstrap({"a": [1.0] * 30, "b": [0.0] * 30}, metric="em")
    assert s.arms["a"].mean == 1.0 and s.arms["b"].mean == 0.0
    (pair,) = s.pairs
    assert (pair.a, pair.b, pair.significant) == ("a", "b", True)
    assert pair.diff.low == pair.diff.high == 1.0


def test_identical_arms_are_not_significantly_different() -> None:
    scores = [0.0, 1.0, 1.0, 0.0, 1.0] * 8
    s = paired_bootstrap({"a": scores, "b": list(scores)})
    assert s.pairs[0].diff.mean == 0.0 and not s.pairs[0].significant
    assert s.pairs[0].diff.low <= 0.0 <= s.pairs[0].diff.high


def test_interval_covers_the_mean_and_is_seeded() -> None:
    values = [0.0, 1.0] * 50
    iv = interval(values, seed=3)
    assert iv.mean == 0.5 and 0.35 < iv.low < 0.5 < iv.high < 0.65
    assert interval(values, seed=3) == iv


def test_noisy_small_difference_is_not_significant_and_missing_values_are_skipped() -> None:
    a = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    b = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    s = paired_bootstrap({"a": a, "b": b, "c": [None, 1.0, None, 1.0, None, 1.0, None, 1.0]})
    assert not s.pairs[0].significant
    assert s.arms["c"].n == 4 and s.arms["c"].mean == 1.0


# -- splits ----------------------------------------------------------------------------------------
def test_split_is_disjoint_and_marks_unanswerable() -> None:
    from rag_platform.eval.harness import make_split

    split = make_split(ITEMS, 3, 2, unanswerable=1, seed=5)
    ids = split.ids()
    assert not set(ids["train"]) & set(ids["eval"])
    assert len(ids["unanswerable"]) == 1 and len(split.removed_passages) == 1
    answerable_passages = {i.passage_id for i in split.evaluate if i.answerable}
    assert split.removed_passages[0] not in answerable_passages
    assert make_split(ITEMS, 3, 2, unanswerable=1, seed=5).ids() == ids


def test_adapter_trained_on_an_evaluated_question_is_refused(tmp_path: Path) -> None:
    from rag.errors import RagError
    from rag_platform.eval.harness import Split, _check_adapter

    (tmp_path / "training.json").write_text(json.dumps({"split": {"train_ids": ["q1"], "val_ids": []}}))
    _check_adapter(tmp_path, Split([], [ITEMS[1]]))
    with pytest.raises(RagError, match="trained on 1 evaluated"):
        _check_adapter(tmp_path, Split([], [ITEMS[0]]))


# -- a tiny real run -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def eval_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import shutil

    home = tmp_path_factory.mktemp("eval-home")
    yield home
    shutil.rmtree(home / "models", ignore_errors=True)  # 0.5 GB


@pytest.fixture(scope="session")
def tiny_runs(eval_home: Path, embedder: Any) -> dict[str, Any]:
    """Run 1 stopped after 2 questions and resumed; run 2 reuses run 1's adapter."""
    from rag import RAG
    from rag_platform.eval.finetune import FinetuneConfig
    from rag_platform.eval.harness import CompareConfig, compare

    rag = RAG.open(eval_home, embedder=embedder)
    cfg = CompareConfig(questions=3, train=3, arms=ARMS, max_tokens=8, collection="tiny", dataset="tiny",
                        resamples=200, corpus_text=2, finetune=FinetuneConfig(max_steps=2, batch_size=1, threads=1))
    partial = compare(rag, DATA, replace(cfg, limit=2))
    resumed = compare(rag, DATA, cfg, resume=partial.run_id)
    adapter = rag.settings.home.resolve() / "eval" / f"run-{partial.run_id}" / "adapter"
    second = compare(rag, DATA, replace(cfg, arms=("rag-extractive", "closed-ft"), adapter=str(adapter)))
    return {"rag": rag, "partial": partial, "first": resumed, "second": second, "adapter": adapter}


def test_finetune_saves_adapter_with_its_record(tiny_runs: dict[str, Any]) -> None:
    from rag_platform.eval.finetune import QAPair, corpus_pairs, data_hash

    adapter = tiny_runs["adapter"]
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    record = json.loads((adapter / "training.json").read_text())
    assert record["config"]["r"] == 8 and record["config"]["alpha"] == 16 and record["steps"] == 2
    trained = set(record["split"]["train_ids"]) | set(record["split"]["val_ids"])
    assert not trained & set(record["eval_ids"])
    by_id = {i.id: i for i in ITEMS}
    train_items = [by_id[i] for i in _run(tiny_runs, "partial").split["train"]]
    texts = corpus_pairs(DATA.passages, 2, seed=13)
    assert record["corpus_texts"] == 2 and all(p.text_only and p.answer for p in texts)
    assert record["data_hash"] == data_hash([QAPair(i.id, i.question, i.answers[0]) for i in train_items] + texts)
    assert record["val_loss"] > 0 and record["val_perplexity"] > 1
    curve = json.loads((adapter / "loss_curve.json").read_text())
    assert len(curve["train_loss"]) == 2


def _run(tiny_runs: dict[str, Any], key: str) -> Any:
    from rag_platform.eval import runs

    return runs.get_run(tiny_runs["rag"].store.ledger, tiny_runs[key].run_id)


def test_resume_completes_the_run_without_duplicates(tiny_runs: dict[str, Any]) -> None:
    from rag_platform.eval import runs

    assert tiny_runs["partial"].run_id == tiny_runs["first"].run_id
    assert tiny_runs["partial"].summary["questions"] == 2
    rows = runs.results(tiny_runs["rag"].store.ledger, tiny_runs["first"].run_id)
    keys = [(r["question_id"], r["arm"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 * len(ARMS)
    assert _run(tiny_runs, "first").status == "done"


def test_run_stores_what_produced_it_and_never_evaluates_trained_questions(tiny_runs: dict[str, Any]) -> None:
    run = _run(tiny_runs, "first")
    assert not set(run.split["train"]) & set(run.split["eval"]) and len(run.split["eval"]) == 3
    p = run.provenance
    assert p["index_manifest_hash"] and run.index_manifest_hash == p["index_manifest_hash"]
    assert p["embedder"] and p["chunking"]["chunk_tokens"] and p["retrieval"]["k"] == 4
    assert p["adapter"]["training_json_sha256"] and p["dataset_hash"] and p["split_hash"] and p["code_version"]
    assert {pr["name"] for pr in p["providers"]} >= {"rag-extractive", "rag-base", "rag-ft"}


def test_metrics_per_arm_and_report(tiny_runs: dict[str, Any]) -> None:
    out = tiny_runs["first"]
    f1 = out.summary["metrics"]["f1"]
    assert set(f1["arms"]) == set(ARMS) and all(iv["n"] == 3 for iv in f1["arms"].values())
    assert out.summary["metrics"]["gold_retrieved"]["arms"]["rag-extractive"]["n"] == 3
    assert out.summary["metrics"]["citation_recall"]["arms"]["closed-base"]["n"] == 0
    page = out.reports["html"].read_text()
    assert page.startswith("<!doctype html>") and "Paired differences" in page and "Who created Python?" in page
    assert "data:image/png;base64," in page  # matplotlib is installed in the dev environment
    assert "| f1 |" in out.reports["md"].read_text()
    assert json.loads(out.reports["json"].read_text())["run"] == out.run_id


def test_diff_of_two_runs(tiny_runs: dict[str, Any]) -> None:
    from rag_platform.eval import runs

    d = runs.diff(tiny_runs["rag"].store.ledger, tiny_runs["first"].run_id, tiny_runs["second"].run_id,
                  resamples=200)
    assert d["arms"] == ["rag-extractive", "closed-ft"]
    same = d["metrics"]["f1"]["rag-extractive"]  # extractive is deterministic: nothing changes
    assert same["mean"] == 0.0 and not same["significant"]
    assert not [f for f in d["flips"] if f["arm"] == "rag-extractive"]


def test_cli_list_show_diff(tiny_runs: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from rag_platform.apps.cli_eval import eval_app

    home = str(tiny_runs["rag"].settings.home)
    runner = CliRunner()
    first, second = tiny_runs["first"].run_id, tiny_runs["second"].run_id
    listed = runner.invoke(eval_app, ["list", "--home", home])
    assert listed.exit_code == 0, listed.output
    assert "compare" in listed.output
    shown = runner.invoke(eval_app, ["show", str(first), "--home", home])
    assert shown.exit_code == 0 and "closed-ft" in shown.output
    diffed = runner.invoke(eval_app, ["diff", str(first), str(second), "--home", home])
    assert diffed.exit_code == 0 and f"run {second} - run {first}" in diffed.output and "flipped" in diffed.output


def test_retrieval_run_on_a_tiny_beir_set(eval_home: Path, embedder: Any) -> None:
    from rag import RAG
    from rag_platform.eval.datasets import BeirData
    from rag_platform.eval.retrieval_eval import evaluate_retrieval

    data = BeirData(corpus={pid: (t, text) for pid, (t, text) in PASSAGES.items()},
                    queries={"a": "Who made the Python language?", "b": "red planet"},
                    qrels={"a": {"p4": 1}, "b": {"p3": 1}})
    rag = RAG.open(eval_home, embedder=embedder)
    run_id, summary, paths = evaluate_retrieval(rag, data, dataset="tiny-beir", collection="tiny-beir",
                                                modes=("hybrid", "bm25"))
    assert summary["metrics"]["ndcg@10"]["arms"]["hybrid"]["mean"] == 1.0
    assert summary["metrics"]["recall@100"]["arms"]["bm25"]["n"] == 2
    assert paths["html"].is_file()
    from rag_platform.eval import runs

    assert runs.get_run(rag.store.ledger, run_id).kind == "retrieval"


def test_unknown_arm_is_refused_before_any_work(tmp_path: Path, embedder: Any) -> None:
    from rag import RAG
    from rag.errors import RagError
    from rag_platform.eval.harness import CompareConfig, compare

    with pytest.raises(RagError, match="unknown arm 'rag-nope'"):
        compare(RAG.open(tmp_path / "h", embedder=embedder), DATA, CompareConfig(arms=("rag-nope",)))


def test_reused_collection_loses_the_passages_of_unanswerable_questions(rag) -> None:
    from rag.types import SourceText
    from rag_platform.eval.harness import _drop_passages

    rag.ingest_texts([SourceText(source=s, text=f"Passage {s} about topic {s}.") for s in ("p1", "p2", "p3")],
                     collection="qa")
    _drop_passages(rag, "qa", {"p2", "not-there"})
    assert sorted(d.source_uri for d in rag.documents("qa")) == ["p1", "p3"]
    assert all(h.source != "p2" for h in rag.search("Passage p2 about topic p2", collection="qa", k=3))


def test_jsonl_qa_format_and_its_errors(tmp_path) -> None:
    from rag.errors import RagError
    from rag_platform.eval.datasets import load_qa_jsonl

    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "a", "question": "Who?", "answers": ["Ada"], "relevant": ["doc1", "doc2"]}\n'
                  '\n{"question": "Where is the moon base?", "answers": [], "answerable": false}\n')
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "doc1", "title": "T", "text": "Ada wrote it."}\n')
    data = load_qa_jsonl(qa, corpus)
    first, second = data.items
    assert first.gold_sources == {"doc1", "doc2"} and first.answers == ("Ada",)
    assert second.id == "q3" and not second.answerable and second.gold_sources == frozenset()
    assert data.passages == {"doc1": ("T", "Ada wrote it.")}
    for line, needle in [('{"answers": ["x"]}', "non-empty 'question'"),
                         ('{"question": "q", "answers": "x"}', "must be a list"),
                         ('{"question": "q", "answers": []}', "at least one gold answer"),
                         ('{"question": "q", "answers": ["x"]', "not valid JSON")]:
        qa.write_text(line + "\n")
        with pytest.raises(RagError, match=needle) as err:
            load_qa_jsonl(qa)
        assert "qa.jsonl:1" in str(err.value)


def test_scoring_counts_any_relevant_source_as_gold() -> None:
    from types import SimpleNamespace

    from rag_platform.eval.datasets import QAItem
    from rag_platform.eval.scoring import cited_is_gold

    item = QAItem("q", "Who?", ("Ada",), "doc1", True, ("doc2",))
    answer = SimpleNamespace(sources=[SimpleNamespace(source="doc2", text="unrelated"),
                                      SimpleNamespace(source="doc9", text="nothing here")])
    assert cited_is_gold(answer, 1, item) and not cited_is_gold(answer, 2, item)


def test_corpus_text_examples_learn_every_token() -> None:
    from rag_platform.eval.finetune import QAPair, corpus_pairs, encode

    class Tok:
        eos_token = "<e>"

        def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
            return {"input_ids": [len(w) for w in text.split()]}

    ids, labels = encode(Tok(), QAPair("text:p", "", "one three fifteen letters", text_only=True), max_len=3)
    assert ids == labels == [3, 5, 7]  # truncated to max_len, nothing masked
    passages = {"a": ("A", "x"), "b": ("B", "y"), "c": ("C", "z")}
    assert [p.id for p in corpus_pairs(passages, -1, exclude={"b"})] == ["text:a", "text:c"]
    assert corpus_pairs(passages, 2, seed=1) == corpus_pairs(passages, 2, seed=1)
