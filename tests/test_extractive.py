"""The extractive answerer (sentence selection by meaning, calibrated abstention, low-confidence middle)
and an answer cache that never serves stale text. Real embedder, real SQLite/FAISS, real documents."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rag import RAG, registry
from rag.cite import claims, strip_markers
from rag.config import CitationSettings, LLMSettings, ProviderSettings, Settings
from rag.llm.evidence import load_model
from rag.llm.extractive import ExtractiveAnswerer
from rag.prompt import LOW_CONFIDENCE, NO_ANSWER
from rag.text import clean

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO.parent / "shared" / "data" / "docs"


def _unsure(cfg: ProviderSettings, home: Path) -> ExtractiveAnswerer:
    """The real answerer with thresholds that make every answer low-confidence (not a fake: same model)."""
    return ExtractiveAnswerer(cfg, home, model=replace(load_model(), abstain_below=0.0, confident_from=1.01))


registry.register("llm", "extractive-unsure", _unsure)


def _settings(home: Path, *providers: ProviderSettings, **kw: object) -> Settings:
    return Settings(home=home, llm=LLMSettings(providers=list(providers) or
                                               [ProviderSettings(name="ex", kind="extractive")]), **kw)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory, embedder) -> RAG:
    home = tmp_path_factory.mktemp("docs-home")
    rag = RAG.open(settings=_settings(home, ProviderSettings(name="ex", kind="extractive"),
                                      ProviderSettings(name="unsure", kind="extractive-unsure")), embedder=embedder)
    rag.ingest([DOCS], collection="docs")
    return rag


@pytest.fixture
def answerer(embedder) -> ExtractiveAnswerer:
    ex = ExtractiveAnswerer()
    ex.use_embedder(embedder)
    return ex


def _quotes_its_sources(answer) -> None:
    """Every answer sentence is a quote of the source it cites."""
    assert answer.citations and not answer.uncited_sentences
    for c in answer.citations:
        assert c.supported
        claim = clean(strip_markers(c.sentence))
        lead, _sep, rest = claim.partition(": ")
        src = clean(answer.sources[c.n - 1].text)
        assert claim in src or (rest and lead in src and rest in src)


def test_adobe_question_answers_1993_citing_the_pdf_history(docs: RAG) -> None:
    a = docs.ask("In which year did Adobe make the PDF specification available free of charge?",
                 collection="docs", providers=["ex"], use_cache=False)
    assert not a.abstained and "1993" in a.text
    assert {Path(a.sources[c.n - 1].source).stem for c in a.citations} & {"sample_docx_1", "sample_pdf_1"}
    _quotes_its_sources(a)
    assert a.groundedness == 1.0


def test_abstains_without_a_groundedness_figure(docs: RAG) -> None:
    a = docs.ask("What is the boiling point of liquid nitrogen at sea level?", collection="docs",
                 providers=["ex"], use_cache=False)
    assert a.abstained and a.text == NO_ANSWER and a.citations == [] and a.groundedness is None
    assert a.to_json()["groundedness"] is None and not a.low_confidence


def test_low_confidence_answer_is_marked_and_still_quotes(docs: RAG) -> None:
    a = docs.ask("In which year did Adobe make the PDF specification available free of charge?",
                 collection="docs", providers=["unsure"], use_cache=False)
    assert a.low_confidence and not a.abstained and a.text.startswith(LOW_CONFIDENCE)
    _quotes_its_sources(a)
    # unsure, it quotes the closest passage: the best unit, with at most two more units of the same source
    quoted = claims(a.text[len(LOW_CONFIDENCE):])
    assert "1993" in a.text and 1 <= len(quoted) <= 3 and len({n for _, ns in quoted for n in ns}) == 1
    assert a.to_json()["low_confidence"] is True


def test_paraphrase_is_answered_by_meaning(answerer: ExtractiveAnswerer) -> None:
    sources = {1: "Paid annual leave\nFull-time employees receive 25 days of paid annual leave each calendar year. "
                  "Part-time staff receive a pro-rata share.",
               2: "Expenses\nTravel costs are reimbursed within 30 days of the claim."}
    text = answerer.answer("How many days of paid holiday do I get per year?", sources)
    assert text != NO_ANSWER and "25 days" in text and "[1]" in text


def test_the_answer_next_to_the_matching_sentence_comes_along(answerer: ExtractiveAnswerer) -> None:
    sources = {1: "timeout\n    How long the client waits for a reply from the server. The default is 30 seconds.\n"
                  "retries\n    How many times a failed request is sent again. The default is 3.",
               2: "The client logs every request it sends."}
    text = answerer.answer("What is the default timeout of the client?", sources)
    assert "30 seconds" in text and "The default is 3." not in text


def test_every_source_is_read_by_meaning_even_without_the_questions_words(embedder) -> None:
    """A source that shares no word with the question still has a unit scored by the embedder (its heading
    read with it), so wording alone cannot keep a paraphrased answer out of the candidates."""
    from rag.llm.evidence import candidates, features

    sources = {n: f"Release notes {n}\nThe build for version {n} fixes the login page and the export button."
               for n in range(1, 5)}
    sources[5] = "Supported formats\nPDF, Word, PowerPoint, Excel, CSV, HTML, Markdown and plain text."
    cands = candidates(sources)
    _x, pool = features("Which file types can I upload?", cands, embedder, max_embed=2)
    assert {cands[i].n for i in pool} == {1, 2, 3, 4, 5}
    assert len(pool) == 5  # the 2 best by wording, then one unit for each source not among them


def test_a_low_confidence_passage_stays_in_its_section(answerer: ExtractiveAnswerer) -> None:
    """Unsure, the answer quotes more sentences of the best unit's section, never the next entry's."""
    from rag.llm.extractive import closest

    src = ("timeout\n    How long the client waits for a reply. It is counted from the last byte sent. "
           "The default is 30 seconds.\nretries\n    How many times a failed request is sent again. "
           "The default is 3. Retries wait one second.")
    cands, pool, probs = answerer.score("What is the default timeout?", {1: src})
    groups = closest(cands, pool, probs, answerer._model, 3)
    texts = [cands[i].text for i in groups[0]]
    assert any("30 seconds" in t for t in texts) and len(groups) == 1
    assert "The default is 3." not in texts and "Retries wait one second." not in texts


def test_a_faq_heading_that_asks_the_question_answers_it(answerer: ExtractiveAnswerer) -> None:
    """Help pages put the reader's question in a heading and the answer under it, often in other words."""
    faq = ("Our community\n\nAt the heart of Acme is the open source community that shapes it.\n\n"
           "What is Acme?\n\nAcme is a Python framework by Example Corp for building search apps. "
           "It runs on a laptop. Its community meets monthly.\n\nWho's it for?\n\nEveryone who writes Python.")
    text = answerer.answer("what's acme?", {1: "Acme's community channel is open to everyone.", 2: faq})
    assert text == ("Acme is a Python framework by Example Corp for building search apps. [2] "
                    "It runs on a laptop. [2]")
    from rag.llm.extractive import faq_section

    assert faq_section("What is Acme written in?", {2: faq}) is None  # a related question is not the heading's
    prose = "People ask: what is Acme? Acme is a Python framework. It runs on a laptop."
    assert faq_section("What is Acme?", {1: prose}) is None  # a question inside a paragraph is not a heading
    assert faq_section("What is Acme?", {1: "What is Acme?\nAcme is a Python framework."}) is not None


def test_sources_come_from_the_packed_message_not_from_parsing_it(answerer: ExtractiveAnswerer) -> None:
    """A document that writes our own tags is neutralised in the prompt's text; the extractive answerer reads the
    sources `pack` attached to the message, so it quotes the document as written (what the citation check reads)."""
    from rag.llm.base import GenerationParams
    from rag.prompt import pack
    from rag.types import Hit

    text = "Release notes\nThe <source> element of the exporter was removed in version 4 of the schema."
    hit = Hit(chunk_id=1, score=1.0, text=text, document_id=1, source="notes.md", title=None, page=None,
              heading_path=(), char_start=0, char_end=len(text), media_type="text/markdown")
    question = "Which element of the exporter was removed in version 4 of the schema?"
    packed = pack(question, [hit], answerer, 256)
    user = packed.messages[-1]
    assert user.sources == (text,) and user.question == question
    assert "&lt;source>" in user.content  # the prose that API models read is neutralised
    done = answerer.complete(packed.messages, GenerationParams())
    assert "The <source> element" in done.text and "[1]" in done.text
    plain = answerer.complete([packed.messages[0], type(user)("user", user.content)], GenerationParams())
    assert "The &lt;source> element" in plain.text  # a text-only transcript is still parsed, as it reads


def test_a_table_row_is_quoted_whole(answerer: ExtractiveAnswerer) -> None:
    rows = "\n".join(["Product: Widget; Price: 9.99; Stock: 120", "Product: Gadget; Price: 24.50; Stock: 8",
                      "Product: Doohickey; Price: 3.75; Stock: 0"])
    text = answerer.answer("What is the price of the Gadget?", {1: rows})
    assert "Product: Gadget; Price: 24.50; Stock: 8 [1]" in text and "Widget" not in text


def test_edited_document_is_never_answered_from_the_cache(tmp_path: Path, embedder) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zorbia.txt").write_text("The capital of Zorbia is Alphaville. Zorbia is a small country.\n")
    rag = RAG.open(settings=_settings(tmp_path / "home"), embedder=embedder)
    rag.ingest([folder], collection="c")
    first = rag.ask("What is the capital of Zorbia?", collection="c")
    assert "Alphaville" in first.text and not first.cached
    assert rag.ask("What is the capital of Zorbia?", collection="c").cached
    (folder / "zorbia.txt").write_text("The capital of Zorbia is Betatown. Zorbia is a small country.\n")
    rag.ingest([folder], collection="c")
    second = rag.ask("What is the capital of Zorbia?", collection="c")
    assert not second.cached and "Betatown" in second.text and "Alphaville" not in second.text


def test_provider_model_and_citation_settings_are_part_of_the_cache_key(tmp_path: Path, embedder) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zorbia.txt").write_text("The capital of Zorbia is Alphaville. Zorbia is a small country.\n")
    home = tmp_path / "home"
    q = "What is the capital of Zorbia?"
    a = RAG.open(settings=_settings(home, ProviderSettings(name="ex", kind="extractive", model="m1")),
                 embedder=embedder)
    a.ingest([folder], collection="c")
    assert not a.ask(q, collection="c").cached and a.ask(q, collection="c").cached
    b = RAG.open(settings=_settings(home, ProviderSettings(name="ex", kind="extractive", model="m2")),
                 embedder=embedder)
    assert not b.ask(q, collection="c").cached
    c = RAG.open(settings=_settings(home, ProviderSettings(name="ex", kind="extractive", model="m1"),
                                    citations=CitationSettings(min_lexical=0.9)), embedder=embedder)
    assert not c.ask(q, collection="c").cached
    assert RAG.open(settings=_settings(home, ProviderSettings(name="ex", kind="extractive", model="m1")),
                    embedder=embedder).ask(q, collection="c").cached
    # new weights or new code of the answerer (its instance's model name) are a new model too
    d = RAG.open(settings=_settings(home, ProviderSettings(name="ex", kind="extractive", model="m1")),
                 embedder=embedder)
    d.answerer.chain(None).providers[0].model += "-next"
    assert not d.ask(q, collection="c").cached


class NoEncode:
    """An embedder that must not be called: proves a verbatim quote is checked without embedding."""

    model_id, dim = "none", 384

    def encode(self, texts, *, batch_size=None):
        raise AssertionError(f"encoded {texts!r}")


def test_a_verbatim_quote_is_supported_without_embedding() -> None:
    from rag.cite import check
    from rag.types import Hit

    text = "Adobe Systems made the PDF specifi-\ncation available free of charge in 1993.\nIt was a big step."
    hit = Hit(chunk_id=1, score=1.0, text=text, document_id=1, source="a.pdf", title=None, page=2,
              heading_path=(), char_start=0, char_end=len(text), media_type="application/pdf")
    report = check("Adobe Systems made the PDF specification available free of charge in 1993. [1]", [hit],
                   NoEncode(), CitationSettings())
    (c,) = report.citations
    assert c.supported and c.similarity == 1.0 and report.groundedness == 1.0
    assert text[c.evidence_start:c.evidence_end] == c.evidence and c.evidence.endswith("1993.")


def test_cli_and_app_show_abstentions_and_low_confidence_as_such() -> None:
    from rag.answer import Answer
    from rag_platform.apps.cli import console
    from rag_platform.apps.output import Paths, print_answer_details
    from rag_platform.apps.ui.format import answer_meta

    abstained = Answer("q?", NO_ANSWER, [], [], "ex", "extractive", groundedness=None, abstained=True)
    unsure = Answer("q?", f"{LOW_CONFIDENCE} A quote. [1]", [], [], "ex", "extractive", groundedness=1.0,
                    low_confidence=True)
    with console.capture() as cap:
        print_answer_details(console, abstained, Paths())
    assert "abstained" in cap.get() and "groundedness" not in cap.get()
    with console.capture() as cap:
        print_answer_details(console, unsure, Paths())
    assert "low confidence" in cap.get() and "groundedness 1.00" in cap.get()
    assert "abstained" in answer_meta(abstained) and "groundedness" not in answer_meta(abstained)
    assert "low confidence" in answer_meta(unsure)
