"""Loaders against the real mixed-format files in shared/data/docs and small files made here."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from rag.errors import LoaderError
from rag.types import ParsedDocument
from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES, load_bytes, load_file, media_type_for

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO.parent / "shared" / "data" / "docs"
SAMPLES = REPO / "samples"
MB = 1 << 20


def check_segments(doc: ParsedDocument) -> None:
    """Segments are non-empty, ordered, non-overlapping, and joined by blank lines."""
    assert doc.segments, "a document always has at least one segment"
    previous_end = 0
    for i, seg in enumerate(doc.segments):
        assert seg.start < seg.end
        assert seg.start >= previous_end
        piece = doc.text[seg.start:seg.end]
        assert piece.strip() and piece == piece.strip("\n")
        if i:
            assert doc.text[previous_end:seg.start] == "\n\n"
        previous_end = seg.end
    assert doc.segments[0].start == 0 and doc.segments[-1].end == len(doc.text)
    assert "\x00" not in doc.text and "\r" not in doc.text and "\n\n\n" not in doc.text


def load(name: str) -> ParsedDocument:
    doc = load_file(DOCS / name, max_bytes=10 * MB)
    check_segments(doc)
    return doc


def pages_with(doc: ParsedDocument, word: str) -> list[int | None]:
    """Pages of the segments that contain `word`."""
    return [s.page for s in doc.segments if word in doc.text[s.start:s.end]]


def test_pdf_keeps_page_numbers() -> None:
    doc = load("sample_pdf_1.pdf")
    assert doc.media_type == "application/pdf"
    assert doc.source == str((DOCS / "sample_pdf_1.pdf").resolve())
    assert doc.metadata["pages"] == 4 and doc.metadata["pages_without_text"] == [3]
    assert [s.page for s in doc.segments if s.kind == "text"] == [1, 2, 4]  # page 3 is blank
    rows = [(s.page, s.heading_path, doc.text[s.start:s.end]) for s in doc.segments if s.kind == "row"]
    assert doc.metadata["tables"] == 1 and len(rows) == 4  # pdfplumber's table on page 1, one row each
    assert rows[2] == (1, ("Table 1",), "C; Column 1: 23.53%; Column 2: A short string.")
    assert pages_with(doc, "Adobe Systems") == [1]
    assert pages_with(doc, "Page 4 of Sample PDF") == [4]
    assert "specification" in doc.text and "\ufb01" not in doc.text  # ligature undone
    assert doc.title == "sample_pdf"


def test_second_pdf_pages() -> None:
    doc = load("sample_pdf_2.pdf")
    assert [s.page for s in doc.segments] == [1, 2, 3, 4]
    assert pages_with(doc, "First Page") == [1]
    assert pages_with(doc, "wiki engines") == [2]
    assert pages_with(doc, "The Wiki Way") == [3]
    assert pages_with(doc, "backlink") == [4]


def test_pdf_without_text_layer_is_reported_when_ocr_is_off() -> None:
    from rag.config import OcrSettings

    with pytest.raises(LoaderError, match="no text layer; OCR is off"):
        load_file(DOCS / "non_text_searchable.pdf", max_bytes=10 * MB, ocr=OcrSettings(enabled=False))


def test_truncated_pdf_is_an_error() -> None:
    data = (DOCS / "sample_pdf_1.pdf").read_bytes()
    with pytest.raises(LoaderError, match="not a valid PDF"):
        load_bytes(data[: len(data) // 2], filename="half.pdf", max_bytes=10 * MB)


def test_encrypted_pdf_is_an_error(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(DOCS / "sample_pdf_2.pdf").pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(LoaderError, match="encrypted PDF with a password"):
        load_file(tmp_path / "locked.pdf", max_bytes=MB)
    # Encrypted with an empty user password (restrictions only): opens and loads.
    writer = PdfWriter(clone_from=DOCS / "sample_pdf_2.pdf")
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    writer.write(tmp_path / "restricted.pdf")
    assert load_file(tmp_path / "restricted.pdf", max_bytes=MB).metadata["pages"] == 4


def test_docx_headings_and_explicit_page_breaks() -> None:
    doc = load("sample_docx_1.docx")
    assert doc.title == "A sample PDF file"
    assert all(s.heading_path == ("A sample PDF file",) for s in doc.segments)
    assert pages_with(doc, "Adobe Systems") == [1]
    assert pages_with(doc, "Page 2") == [2]
    assert pages_with(doc, "page 3 is blank") == [4]  # two hard breaks in a row


def test_docx_page_breaks_file() -> None:
    doc = load("sample_docx_2_page_breaks.docx")
    assert [s.page for s in doc.segments] == [1, 2]
    # A soft (rendered) page break does not count; the hard one does.
    assert pages_with(doc, "soft page break") == [1]
    assert pages_with(doc, "Hard page break coming up") == [1]
    assert pages_with(doc, "new paragraph on a new page") == [2]
    assert doc.title == "sample_docx_2_page_breaks"  # no core title, no heading: the stem


def test_docx_made_here_sections_tables_and_section_breaks(tmp_path: Path) -> None:
    import docx
    from docx.enum.section import WD_SECTION

    d = docx.Document()
    d.core_properties.title = "Handbook"
    d.add_heading("Intro", level=1)
    d.add_paragraph("Welcome text.")
    d.add_heading("Install", level=2)
    table = d.add_table(rows=3, cols=2)
    for r, row in enumerate([("name", "size"), ("model", "384")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 0).merge(table.cell(2, 1)).text = "merged note"
    d.add_section(WD_SECTION.CONTINUOUS)  # no new page
    d.add_paragraph("Still page one.")
    d.add_section(WD_SECTION.NEW_PAGE)
    d.add_heading("Usage", level=1)
    d.add_paragraph("On page two.")
    path = tmp_path / "made.docx"
    d.save(path)
    doc = load_file(path, max_bytes=MB)
    check_segments(doc)
    assert doc.title == "Handbook"
    assert [(s.heading_path, s.page, s.kind) for s in doc.segments] == [
        (("Intro",), 1, "text"), (("Intro", "Install"), 1, "text"), (("Intro", "Install"), 1, "row"),
        (("Intro", "Install"), 1, "row"), (("Intro", "Install"), 1, "text"), (("Usage",), 2, "text")]
    rows = [doc.text[s.start:s.end] for s in doc.segments if s.kind == "row"]
    assert rows == ["name: model; size: 384", "name: merged note"]  # a merged cell once
    assert pages_with(doc, "Still page one.") == [1]
    assert pages_with(doc, "On page two.") == [2]


def test_markdown_heading_paths() -> None:
    doc = load("sample.md")
    paths = [s.heading_path for s in doc.segments]
    assert ("Quick Demo",) in paths
    assert ("Quick Demo", "2nd level headline for testing purposes",
            "3rd level headline for testing purposes") in paths
    # The `# apt-get ...` lines sit in a fenced block: not headings.
    assert not any("apt-get" in h for p in paths for h in p)
    quick = next(s for s in doc.segments if s.heading_path == ("Quick Demo",))
    assert doc.text[quick.start:quick.end].startswith("## Quick Demo")
    assert "apt-get update" in doc.text[quick.start:quick.end]
    assert "type: intro" not in doc.text and doc.metadata["front_matter"]["type"] == "intro"
    assert doc.title == "sample"  # no H1: the stem
    assert all(s.page is None for s in doc.segments)


def test_markdown_title_and_levels(tmp_path: Path) -> None:
    text = ("# Guide\n\nIntro.\n\n## Install\n\n```\n# not a heading\n```\n\n"
            "## Use\nRun it.\n# Appendix\nEnd.\n")
    (tmp_path / "g.md").write_text(text, encoding="utf-8")
    doc = load_file(tmp_path / "g.md", max_bytes=MB)
    check_segments(doc)
    assert doc.title == "Guide"
    assert [s.heading_path for s in doc.segments] == [
        ("Guide",), ("Guide", "Install"), ("Guide", "Use"), ("Appendix",)]


def test_html_main_text_without_scripts_or_navigation() -> None:
    doc = load("what_is_haystack.html")
    assert doc.title == "What is Haystack? | Haystack"
    assert "open source Python framework by deepset" in doc.text
    assert "gtm.js" not in doc.text and "dataLayer" not in doc.text  # script
    assert "Hacktoberfest" not in doc.text and "Sign up for community updates" not in doc.text
    paths = [s.heading_path for s in doc.segments]
    assert ("What is Haystack?", "Building blocks", "Pipelines") in paths
    assert pages_with(doc, "Retriever and Reader")[0] is None


def test_short_html_keeps_headings_and_drops_boilerplate() -> None:
    html = (b"<html><head><title> Tiny </title><style>p{color:red}</style></head><body>"
            b"<nav>Home | About</nav><h1>Setup</h1><p>Install the package.</p>"
            b"<script>track()</script><footer>Copyright</footer></body></html>")
    doc = load_bytes(html, filename="tiny.html", max_bytes=MB)
    check_segments(doc)
    assert doc.title == "Tiny"
    assert doc.segments[0].heading_path == ("Setup",)
    assert "Install the package." in doc.text
    for junk in ("Home | About", "track()", "Copyright", "color:red"):
        assert junk not in doc.text


def test_xlsx_both_sheets() -> None:
    doc = load("basic_tables_two_sheets.xlsx")
    assert doc.metadata["sheets"] == ["Basic Table", "Table Missing Value"]
    assert [(s.heading_path, s.kind) for s in doc.segments] == [
        (("Basic Table",), "row"), (("Table Missing Value",), "row")]
    assert "col_a: 1.5; col_b: test" in doc.text
    assert "col_c: True" in doc.text and "col_d" not in doc.text  # the missing value is left out


def test_pptx_slides() -> None:
    doc = load("sample_pptx_with_link.pptx")
    assert doc.metadata["slides"] == 2
    assert [(s.page, s.heading_path) for s in doc.segments] == [
        (1, ("Slide With Link",)), (2, ("Slide Without Links",))]
    assert pages_with(doc, "Visit Example for more info.") == [1]
    assert pages_with(doc, "Just plain text here.") == [2]


def test_pptx_groups_tables_and_notes(tmp_path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Results"
    group = slide.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(2), Inches(3), Inches(1))
    box.text_frame.text = "grouped words"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(3), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "metric", "value"
    table.cell(1, 0).text, table.cell(1, 1).text = "recall", "0.91"
    slide.notes_slide.notes_text_frame.text = "speaker notes here"
    path = tmp_path / "deck.pptx"
    deck.save(path)
    doc = load_file(path, max_bytes=MB)
    check_segments(doc)
    for expected in ("grouped words", "metric | value", "recall | 0.91",
                     "Notes: speaker notes here"):
        assert expected in doc.text
    assert doc.segments[0].heading_path == ("Results",) and doc.segments[0].page == 1


def test_csv_rows_carry_headers(tmp_path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(["city", "country", "population"])
    for i in range(120):
        writer.writerow([f"city{i}", "FR", i * 1000])
    (tmp_path / "cities.csv").write_text(buf.getvalue(), encoding="utf-8")
    doc = load_file(tmp_path / "cities.csv", max_bytes=MB)
    check_segments(doc)
    assert doc.media_type == "text/csv"
    assert "city: city7; country: FR; population: 7000" in doc.text
    assert len(doc.segments) == 120 and {s.kind for s in doc.segments} == {"row"}  # one row each
    assert doc.text[doc.segments[7].start:doc.segments[7].end] == "city: city7; country: FR; population: 7000"


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-16-be", "latin-1", "utf-8-sig", "cp1252"])
def test_text_encodings(tmp_path: Path, encoding: str) -> None:
    text = "Un café crème, s'il vous plaît.\r\nÀ bientôt !\n"
    (tmp_path / "note.txt").write_bytes(text.encode(encoding))
    doc = load_file(tmp_path / "note.txt", max_bytes=MB)
    assert doc.text == "Un café crème, s'il vous plaît.\nÀ bientôt !"
    assert doc.segments[0].page is None and doc.title == "note"


def test_short_latin1_word(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes("café".encode("latin-1"))
    assert load_file(tmp_path / "w.txt", max_bytes=MB).text == "café"


def test_text_is_normalised(tmp_path: Path) -> None:
    body = b"a stray NUL is dropped, not a reason to reject the file. " * 3
    (tmp_path / "n.txt").write_bytes(b"one   \r\ntwo\x00\n\n\n\n\nthree\t\rfour\n" + body)
    expected = "one\ntwo\n\nthree\nfour\n" + body.decode().rstrip()
    assert load_file(tmp_path / "n.txt", max_bytes=MB).text == expected


def test_binary_junk_with_text_suffix(tmp_path: Path) -> None:
    (tmp_path / "junk.txt").write_bytes(os.urandom(4000) + b"\x00" * 500 + os.urandom(4000))
    with pytest.raises(LoaderError, match="binary"):
        load_file(tmp_path / "junk.txt", max_bytes=MB)


def test_random_bytes_docx_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "fake.docx").write_bytes(os.urandom(2048))
    with pytest.raises(LoaderError, match="could not parse as DOCX"):
        load_file(tmp_path / "fake.docx", max_bytes=MB)


@pytest.mark.parametrize("name", ["empty.txt", "empty.pdf", "empty.docx", "blank.md"])
def test_empty_files(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"" if name.startswith("empty") else b"  \n\n \t\n")
    with pytest.raises(LoaderError, match="empty file"):
        load_file(tmp_path / name, max_bytes=MB)


def test_html_with_only_boilerplate_is_empty(tmp_path: Path) -> None:
    html = b"<html><body><nav>menu</nav><script>x()</script></body></html>"
    (tmp_path / "x.html").write_bytes(html)
    with pytest.raises(LoaderError, match="empty file"):
        load_file(tmp_path / "x.html", max_bytes=MB)


def test_oversize_file(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"word " * 1000)
    with pytest.raises(LoaderError, match="RAG_INGEST__MAX_FILE_MB") as err:
        load_file(tmp_path / "big.txt", max_bytes=1000)
    assert "5,000 bytes" in err.value.reason and "1,000 bytes" in err.value.reason
    with pytest.raises(LoaderError, match="over the limit"):
        load_bytes(b"word " * 1000, filename="big.txt", max_bytes=1000)


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "image.bmp").write_bytes(b"BM....")
    with pytest.raises(LoaderError, match=r"unsupported file type '\.bmp'.*\.docx.*\.pdf"):
        load_file(tmp_path / "image.bmp", max_bytes=MB)


def test_missing_file_is_a_loader_error(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="cannot read file"):
        load_file(tmp_path / "gone.txt", max_bytes=MB)


def test_load_bytes_source_and_suffix_case() -> None:
    data = (DOCS / "sample_pdf_2.pdf").read_bytes()
    doc = load_bytes(data, filename="Upload.PDF", max_bytes=MB, source="upload://42")
    assert doc.source == "upload://42" and doc.metadata["pages"] == 4


def test_supported_suffixes_and_media_types() -> None:
    assert {".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt", ".text", ".rst",
            ".csv", ".xlsx", ".pptx"} <= SUPPORTED_SUFFIXES
    assert media_type_for(Path("a.PDF")) == "application/pdf"
    assert media_type_for(Path("a.md")) == "text/markdown"
    assert media_type_for(Path("a.xlsx")).endswith("spreadsheetml.sheet")
    assert media_type_for(Path("a.unknownext")) == "application/octet-stream"


@pytest.mark.parametrize(
    "name", ["hybrid-retrieval.pdf", "ingestion-guide.docx", "citations-faq.html"])
def test_shipped_samples_load(name: str) -> None:
    doc = load_file(SAMPLES / name, max_bytes=10 * MB)
    check_segments(doc)
    assert len(doc.segments) >= 3 and doc.title


def test_sample_pdf_page_topics() -> None:
    doc = load_file(SAMPLES / "hybrid-retrieval.pdf", max_bytes=10 * MB)
    assert doc.title == "Hybrid retrieval: BM25, dense embeddings and rank fusion"
    assert [s.page for s in doc.segments] == [1, 2, 3]
    assert pages_with(doc, "Dense embeddings: semantic match") == [1]
    assert pages_with(doc, "Reciprocal rank fusion (RRF)") == [2]
    assert pages_with(doc, "Why over-fetch before fusing") == [2]
    assert pages_with(doc, "Reranking the top N with a cross-encoder") == [3]


def test_sample_docx_sections_and_break() -> None:
    doc = load_file(SAMPLES / "ingestion-guide.docx", max_bytes=10 * MB)
    assert doc.title == "Ingestion guide"
    pages = {s.heading_path: s.page for s in doc.segments}
    assert pages[("Ingesting documents", "Idempotent re-ingestion with content hashes")] == 1
    assert pages[("Chunking", "Boundaries")] == 2
    assert "--prune" in doc.text and "240 tokens" in doc.text


def test_sample_html_drops_nav_script_aside_footer() -> None:
    doc = load_file(SAMPLES / "citations-faq.html", max_bytes=10 * MB)
    assert doc.title == "Citations FAQ"
    for junk in ("Sign in", "Pricing", "analyticsQueue", "trackPageView", "All rights reserved",
                 "five minutes", "font-family"):
        assert junk not in doc.text
    paths = [s.heading_path for s in doc.segments]
    assert ("Citations FAQ", "How are citations verified?") in paths
    assert "[1], [2], [3]" in doc.text
