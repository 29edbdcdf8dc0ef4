"""Each page of the Streamlit app through `AppTest` (headless), on a tmp data home and the real embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from rag_platform.apps.ui.session import share_embedder  # noqa: E402

PAGES = Path(__file__).resolve().parents[1] / "apps" / "ui" / "views"
FUSION = ("# Fusion\n\nReciprocal rank fusion merges the dense and BM25 rankings. Each passage scores one over "
          "sixty plus its rank in each list, and the sums are sorted.\n")
CACHE = "# Answer cache\n\nAnswers are cached by a key built from the question and the retrieved chunks.\n"


@pytest.fixture
def home(tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data home for the app (RAG_HOME), with the extractive provider and the session's model."""
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAG_LLM__PROVIDERS", '[{"name": "extractive", "kind": "extractive"}]')
    share_embedder(embedder)
    return tmp_path / "home"


@pytest.fixture
def kb(home: Path, embedder: Any) -> Path:
    """The home with collection 'kb' holding two Markdown documents."""
    from rag import RAG
    from rag.types import SourceText

    rag = RAG.open(home, embedder=embedder)
    rag.ingest_texts([SourceText("fusion.md", FUSION, media_type="text/markdown"),
                      SourceText("cache.md", CACHE, media_type="text/markdown")], collection="kb")
    return home


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120)
    return at.run()


def button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def frame(at: AppTest, column: str) -> Any:
    """The first table on the page with this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]


def test_collections_create_upload_ingest_delete(home: Path) -> None:
    at = page("collections")
    assert "No collections yet" in " ".join(texts(at.info))
    at.text_input[0].input("kb")
    button(at, "Create collection").click().run()
    assert at.selectbox[0].value == "kb" and not at.error

    at.file_uploader[0].set_value([("../../fusion.md", FUSION.encode(), "text/markdown"),
                                   ("cache.md", CACHE.encode(), "text/markdown"),
                                   ("broken.pdf", b"%PDF-1.4 not really a pdf", "application/pdf")])
    button(at.run(), "Ingest").click().run()
    assert not at.error and not at.exception
    report = frame(at, "outcome")
    assert dict(zip(report["file"], report["outcome"], strict=True)) == \
        {"fusion.md": "ok", "cache.md": "ok", "broken.pdf": "failed"}
    assert report.loc[report["file"] == "broken.pdf", "reason"].item()  # the reason is shown
    assert "2 ok" in " ".join(texts(at.markdown)) and "1 failed" in " ".join(texts(at.markdown))
    assert (home / "uploads" / "kb" / "fusion.md").is_file()  # no path traversal

    docs = frame(at, "status")
    assert set(docs["document"]) == {"fusion.md", "cache.md", "broken.pdf"}
    assert set(docs["status"]) == {"ok", "failed"} and docs["chunks"].max() >= 1
    docs_box = next(s for s in at.selectbox if s.label == "Document")
    docs_box.select(next(o for o in docs_box.options if o.startswith("cache.md"))).run()
    button(at, "Delete document").click().run()
    assert "cache.md" not in set(frame(at, "status")["document"])
    docs_box = next(s for s in at.selectbox if s.label == "Document")
    docs_box.select(next(o for o in docs_box.options if o.startswith("fusion.md"))).run()
    button(at, "Re-ingest document").click().run()
    assert not at.error and "1 ok" in " ".join(texts(at.markdown))

    at.checkbox[0].check().run()
    button(at, "Delete collection").click().run()
    assert "No collections yet" in " ".join(texts(at.info)) and not (home / "uploads" / "kb").exists()


def test_uploader_lists_file_endings_and_a_file_from_disk_is_told_apart_from_its_upload(
        home: Path, embedder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag import RAG

    disk = tmp_path / "docs" / "fusion.md"
    disk.parent.mkdir()
    disk.write_text(FUSION)
    monkeypatch.chdir(tmp_path)
    assert RAG.open(home, embedder=embedder).ingest([disk], collection="kb").summary()["ok"] == 1
    at = page("collections")
    assert not at.file_uploader[0].allowed_type, "no type list: Streamlit would show '.text' as a type TEXT"
    accepted = next(c for c in texts(at.caption) if c.startswith("Accepted file endings"))
    assert ".pdf" in accepted and ".txt" in accepted and "TEXT" not in accepted
    at.file_uploader[0].set_value([("fusion.md", FUSION.encode(), "text/markdown")])
    button(at.run(), "Ingest").click().run()
    docs = frame(at, "status")
    assert sorted(docs["document"]) == ["docs/fusion.md", "fusion.md"]
    assert sorted(docs["origin"]) == ["file on disk", "upload"]


def test_upload_refusals_are_short_messages(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_API__MAX_UPLOAD_MB", "0.001")
    at = page("collections")
    at.text_input[0].input("kb")
    button(at, "Create collection").click().run()
    at.file_uploader[0].set_value(("big.md", b"x" * 5000, "text/markdown"))
    button(at.run(), "Ingest").click().run()
    assert "over the limit" in " ".join(texts(at.error)) and not at.exception
    at.text_input[0].input("bad name!")
    button(at, "Create collection").click().run()
    assert "is not allowed" in " ".join(texts(at.error)) and not at.exception


def test_ask_streams_an_answer_with_a_verified_citation_and_rewrites_followups(kb: Path) -> None:
    at = page("ask")
    assert at.sidebar.selectbox[0].value == "kb"
    at.chat_input[0].set_value("How does reciprocal rank fusion merge rankings?").run()
    assert not at.error and not at.exception
    assert any("Reciprocal rank fusion merges the dense and BM25 rankings." in m for m in texts(at.markdown))
    cited = [e for e in at.expander if "fusion.md" in e.label]
    assert cited and "verified" in cited[0].label and "not verified" not in cited[0].label
    passage = " ".join(texts(cited[0].markdown))
    assert "<mark>Reciprocal rank fusion merges the dense and BM25 rankings.</mark>" in passage
    assert any("answered by **extractive**" in c and "tokens" in c and "cost $" in c for c in texts(at.caption))

    at.chat_input[0].set_value("How is it scored?").run()
    assert "searched for: How is reciprocal rank fusion merge rankings scored?" in texts(at.caption)
    assert len(at.chat_message) == 4  # the first turn stayed


def test_search_shows_each_retrievers_rank_and_score(kb: Path) -> None:
    at = page("search")
    at.text_input[0].input("reciprocal rank fusion")
    at.button[0].click().run()
    assert not at.error
    hits = frame(at, "passage")
    assert {"dense rank", "dense score", "bm25 rank", "bm25 score"} <= set(hits.columns)
    assert hits.iloc[0]["document"] == "fusion.md" and hits.iloc[0]["bm25 rank"] == 1
    assert set(hits["page"]) == {""}, "a document without pages shows an empty cell, not None"
    assert any("bm25 #1" in e.label for e in at.expander)


def _stored_runs(home: Path, embedder: Any) -> tuple[int, int]:
    """Two small answer-evaluation runs in the ledger, as `rag eval compare` stores them."""
    from rag import RAG
    from rag_platform.eval import runs

    ledger = RAG.open(home, embedder=embedder).store.ledger
    ids = []
    for f1s in ([1.0, 0.0, 1.0], [1.0, 1.0, 1.0]):
        run_id = ledger.create_eval_run(kind="compare", dataset="tiny-squad", arms=["rag"],
                                        split={"eval": ["q1", "q2", "q3"]}, code_version="test")
        for i, f1 in enumerate(f1s, 1):
            ledger.add_eval_result(run_id, f"q{i}", "rag", f"answer {i}",
                                   {"f1": f1, "em": f1, "latency_s": 0.1 * i},
                                   {"question": f"question {i}?", "gold": [f"answer {i}"], "citations": [],
                                    "sources": []})
        rows = runs.results(ledger, run_id)
        runs.finish(ledger, run_id, runs.summarise(rows, ["rag"], resamples=200), None)
        ids.append(run_id)
    return ids[0], ids[1]


def test_evaluation_lists_runs_opens_a_report_and_compares(home: Path, embedder: Any) -> None:
    first, second = _stored_runs(home, embedder)
    at = page("evaluation")
    assert not at.error and not at.exception
    assert set(frame(at, "kind")["run"]) == {first, second}
    metrics = frame(at, "metric")
    assert "f1" in set(metrics["metric"]) and metrics.loc[metrics["metric"] == "f1", "rag"].item().startswith("1.000")
    assert len(at.image) >= 2  # the report's plots (metrics, latency, F1)
    diff = frame(at, "significant")
    f1 = diff[diff["metric"] == "f1"].iloc[0]
    assert f1["A"] == pytest.approx(2 / 3, abs=1e-3) and f1["B"] == 1.0
    assert "1 question(s) changed outcome" in " ".join(texts(at.markdown))
