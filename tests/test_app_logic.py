"""The app's plain logic: follow-up rewriting, citation cards, upload checks, deleting one document, `rag app`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llm_server import llm_server_fixture  # noqa: E402,F401 - registers `llm_server`

from rag.config import LLMSettings, ProviderSettings, Settings  # noqa: E402
from rag.errors import NotFoundError  # noqa: E402
from rag_platform.apps.api.limits import ApiSettings  # noqa: E402
from rag_platform.apps.rewrite import is_followup, rewrite_followup, rewrite_with_llm, topic  # noqa: E402
from rag_platform.apps.ui import uploads  # noqa: E402
from rag_platform.apps.ui.format import citation_cards, highlight, hit_rows  # noqa: E402
from rag_platform.apps.ui.session import user_message  # noqa: E402

FUSION = ("# Fusion\n\nReciprocal rank fusion merges the dense and BM25 rankings. Each passage scores one over "
          "sixty plus its rank in each list, and the sums are sorted.\n")
CACHE = "# Answer cache\n\nAnswers are cached by a key built from the question and the retrieved chunks.\n"
PREVIOUS = ["How does reciprocal rank fusion work?"]


@dataclass
class Upload:
    """Stands in for Streamlit's UploadedFile (a name and the bytes)."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


@pytest.fixture
def rag(tmp_path: Path, embedder):
    from rag import RAG

    settings = Settings(home=tmp_path / "home",
                        llm=LLMSettings(providers=[ProviderSettings(name="extractive", kind="extractive")]))
    return RAG.open(settings=settings, embedder=embedder)


# -- follow-up rewriting -------------------------------------------------------------------------------
@pytest.mark.parametrize(("question", "expected"), [
    ("What is its default k?", "What is reciprocal rank fusion's default k?"),
    ("Does it need a GPU?", "Does reciprocal rank fusion need a GPU?"),
    ("What about convex fusion?", "How does convex fusion work?"),
    ("And for dense retrieval?", "How does dense retrieval work?"),
    ("k?", "k (reciprocal rank fusion)?"),
])
def test_followups_become_standalone_with_the_previous_topic(question: str, expected: str) -> None:
    assert is_followup(question)
    assert rewrite_followup(question, PREVIOUS) == expected


def test_standalone_questions_and_first_questions_are_left_alone() -> None:
    assert not is_followup("How is the BM25 index stored on disk?")
    assert rewrite_followup("How is the BM25 index stored on disk?", PREVIOUS) == "How is the BM25 index stored on disk?"
    assert rewrite_followup("What is its default k?", []) == "What is its default k?"
    assert topic("How are PDF files scored?") == "PDF files"


def test_rewriting_with_a_configured_llm_and_falling_back_to_the_heuristic(llm_server) -> None:
    from rag.llm.providers import make_provider

    llm = make_provider(ProviderSettings(name="oa", kind="openai", model="gpt-test", base_url=llm_server.openai_url,
                                         api_key="sk-test", timeout_s=2.0, max_output_tokens=64), Path("."))
    llm_server.reply = "Rewritten question: What is the default k of reciprocal rank fusion?\n(explanation)"
    assert rewrite_with_llm("What is its default k?", PREVIOUS, llm) == \
        "What is the default k of reciprocal rank fusion?"
    sent = llm_server.requests[-1].body["messages"]
    assert "How does reciprocal rank fusion work?" in sent[-1]["content"]
    llm_server.fail(("status", 400))
    assert rewrite_with_llm("What is its default k?", PREVIOUS, llm) == "What is reciprocal rank fusion's default k?"
    llm_server.reply = "x" * 500  # an answer, not a question: ignored
    assert rewrite_with_llm("What is its default k?", PREVIOUS, llm) == "What is reciprocal rank fusion's default k?"


# -- formatting ------------------------------------------------------------------------------------------
def test_highlight_escapes_document_text_and_clamps_the_span() -> None:
    assert highlight("<script>x</script> ok", 19, 21) == "&lt;script&gt;x&lt;/script&gt; <mark>ok</mark>"
    assert highlight("abc", 2, 99) == "ab<mark>c</mark>"
    assert "<mark>" not in highlight("abc", 1, 1)


def test_citation_cards_show_the_cited_span_and_whether_it_was_verified(rag) -> None:
    from rag.types import SourceText

    rag.ingest_texts([SourceText("fusion.md", FUSION, media_type="text/markdown"),
                      SourceText("cache.md", CACHE, media_type="text/markdown")], collection="kb")
    answer = rag.ask("How does reciprocal rank fusion merge rankings?", collection="kb", use_cache=False)
    cards = citation_cards(answer)
    assert cards and cards[0].verified is True
    assert cards[0].label.startswith(f"[{cards[0].n}] fusion.md") and "verified" in cards[0].label
    assert "<mark>Reciprocal rank fusion merges the dense and BM25 rankings.</mark>" in cards[0].passage_html
    rows = hit_rows(rag.search("rank fusion", collection="kb", k=2))
    assert {"dense rank", "dense score", "bm25 rank", "bm25 score"} <= set(rows[0])
    assert rows[0]["document"] == "fusion.md" and rows[0]["bm25 rank"] == 1


# -- uploads ---------------------------------------------------------------------------------------------
def test_uploads_are_saved_under_safe_names_and_ingested(rag) -> None:
    rag.store.collection("kb", create=True)
    paths = uploads.save(rag, "kb", [Upload("../../etc/fusion.md", FUSION.encode()),
                                     Upload("C:\\x\\cache (final).md", CACHE.encode())])
    folder = rag.settings.home.resolve() / "uploads" / "kb"
    assert sorted(p.name for p in paths) == ["cache _final_.md", "fusion.md"]
    assert all(p.parent == folder for p in paths)
    seen: list[float] = []
    report = rag.ingest(paths, collection="kb", progress=uploads.CallbackProgress(lambda f, _t: seen.append(f)))
    assert seen[-1] == 1.0
    assert {r["file"]: r["outcome"] for r in uploads.report_rows(report)} == {"fusion.md": "ok",
                                                                               "cache _final_.md": "ok"}


def test_uploads_over_the_limits_or_of_unknown_types_are_refused_whole(rag) -> None:
    rag.store.collection("kb", create=True)
    folder = rag.settings.home.resolve() / "uploads" / "kb"
    with pytest.raises(uploads.UploadRefused, match=r"over the limit of 0\.00 MB"):
        uploads.save(rag, "kb", [Upload("a.md", b"x" * 5000)], ApiSettings(max_upload_mb=0.001))
    with pytest.raises(uploads.UploadRefused, match=r"'\.exe', which cannot be ingested"):
        uploads.save(rag, "kb", [Upload("ok.md", b"fine"), Upload("tool.exe", b"MZ")])
    with pytest.raises(uploads.UploadRefused, match="3 files in one upload; the limit is 2"):
        uploads.save(rag, "kb", [Upload(f"{i}.md", b"x") for i in range(3)], ApiSettings(max_files=2))
    assert not folder.exists() or not any(folder.iterdir())


def test_delete_one_document_and_reingest_another(rag) -> None:
    rag.store.collection("kb", create=True)
    paths = uploads.save(rag, "kb", [Upload("fusion.md", FUSION.encode()), Upload("cache.md", CACHE.encode())])
    rag.ingest(paths, collection="kb")
    docs = {d["document"]: d for d in uploads.document_rows(rag, "kb")}
    uploads.delete_document(rag, "kb", docs["cache.md"]["id"])
    assert [d["document"] for d in uploads.document_rows(rag, "kb")] == ["fusion.md"]
    assert not Path(docs["cache.md"]["source"]).exists()  # the uploaded copy went too
    assert all(h.source.endswith("fusion.md") for h in rag.search("answer cache key", collection="kb"))
    report = uploads.reingest_document(rag, "kb", docs["fusion.md"]["id"])
    assert report.summary()["ok"] == 1  # forced, not skipped as unchanged
    with pytest.raises(NotFoundError, match="no document with id 999"):
        rag.delete_document("kb", 999)


def test_delete_collection_removes_its_uploads(rag) -> None:
    uploads.create_collection(rag, "kb")
    uploads.save(rag, "kb", [Upload("fusion.md", FUSION.encode())])
    uploads.delete_collection(rag, "kb")
    assert "kb" not in rag.store.collection_names()
    assert not (rag.settings.home.resolve() / "uploads" / "kb").exists()


def test_user_messages_never_carry_a_trace() -> None:
    assert user_message(NotFoundError("no collection named 'x'")) == "no collection named 'x'"
    msg = user_message(ZeroDivisionError("division by zero"))
    assert "ZeroDivisionError" in msg and "server log" in msg and "Traceback" not in msg


def test_rag_app_runs_streamlit_headless_without_telemetry() -> None:
    from typer.testing import CliRunner

    from rag_platform.apps.cli import app
    from rag_platform.apps.cli_app import SCRIPT, streamlit_argv

    argv = streamlit_argv(8600, "127.0.0.1", 50.0)
    assert argv[1:5] == ["-m", "streamlit", "run", str(SCRIPT)] and SCRIPT.is_file()
    pairs = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert pairs["--server.headless"] == "true" and pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8600"
    assert pairs["--server.maxUploadSize"] == "50"
    out = CliRunner().invoke(app, ["app", "--help"])
    assert out.exit_code == 0 and "--port" in out.output and "--host" in out.output


def test_answer_meta_counts_retries_instead_of_repeating_them() -> None:
    from types import SimpleNamespace

    from rag.llm.fallback import Attempt
    from rag_platform.apps.ui.format import answer_meta

    tries = [Attempt("oa", False, 0.1, "oa: connection failed: refused") for _ in range(3)]
    answer = SimpleNamespace(provider="extractive", model="extractive", latency_s=0.2, ttft_s=None, tokens_in=1,
                             tokens_out=1, cost_usd=0.0, groundedness=1.0, cached=False, abstained=False,
                             attempts=[*tries, Attempt("cl", False, 0.0, "skipped: no API key", skipped=True),
                                       Attempt("extractive", True, 0.1)])
    meta = answer_meta(answer)
    assert "failed before: oa: connection failed: refused (3 tries); cl: skipped: no API key" in meta
    assert "oa: oa:" not in meta
