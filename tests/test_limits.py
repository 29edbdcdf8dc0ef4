"""Checks before parsing (ingest.limits): each cap triggers on a file made here and names its setting."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hostile_files import (
    docx_deep,
    docx_paragraph_bomb,
    good_markdown,
    nested_html,
    pdf_page_tree_loop,
    pdf_with_pages,
    pptx_with_slides,
    wide_csv,
    xlsx_with_cells,
)

from rag.config import LimitsSettings
from rag.errors import LoaderError
from rag_platform.ingest.limits import _xml_depth
from rag_platform.ingest.loaders import load_file

DOCS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "docs"
MAX = 50 << 20


def refused(path: Path, **limits: object) -> str:
    with pytest.raises(LoaderError) as err:
        load_file(path, max_bytes=MAX, limits=LimitsSettings(**limits))
    return err.value.reason


def test_zip_ratio_and_size_are_read_from_the_central_directory(tmp_path: Path) -> None:
    bomb = docx_paragraph_bomb(tmp_path / "bomb.docx", expanded_mb=8)
    assert bomb.stat().st_size < 200_000
    reason = refused(bomb)
    assert "word/document.xml" in reason and "limits.max_zip_ratio = 100" in reason
    assert "RAG_LIMITS__MAX_ZIP_RATIO" in reason
    reason = refused(bomb, max_unzipped_mb=4, max_zip_ratio=10_000)
    assert "MB uncompressed" in reason and "limits.max_unzipped_mb = 4" in reason
    assert "RAG_LIMITS__MAX_ZIP_ENTRIES" in refused(bomb, max_zip_entries=3)


def test_a_lying_central_directory_cannot_expand_past_its_claim(tmp_path: Path) -> None:
    bomb = docx_paragraph_bomb(tmp_path / "bomb.docx", expanded_mb=8)
    data = bytearray(bomb.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("word/document.xml")
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:  # claim 1 KB for the 8 MB entry, in the central directory
        name_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + name_len] == b"word/document.xml":
            data[pos + 24:pos + 28] = (1024).to_bytes(4, "little")
        pos = data.find(b"PK\x01\x02", pos + 4)
    liar = tmp_path / "liar.docx"
    liar.write_bytes(bytes(data))
    assert info.file_size > 7 << 20
    reason = refused(liar, max_zip_ratio=10_000)
    assert "word/document.xml" in reason or "DOCX" in reason


def test_rows_and_columns(tmp_path: Path) -> None:
    wide = wide_csv(tmp_path / "wide.csv", columns=200, rows=3)
    reason = refused(wide, max_table_columns=100)
    assert "200 columns" in reason and "limits.max_table_columns = 100" in reason
    reason = refused(wide, max_table_cells=300)
    assert "limits.max_table_cells = 300" in reason and "RAG_LIMITS__MAX_TABLE_CELLS" in reason
    sheet = xlsx_with_cells(tmp_path / "cells.xlsx", rows=50, columns=10)
    assert "limits.max_table_cells = 200" in refused(sheet, max_table_cells=200)
    assert "limits.max_table_columns = 5" in refused(sheet, max_table_columns=5)
    assert "h9: 499" in load_file(sheet, max_bytes=MAX).text


def test_depth_of_html_and_of_office_xml(tmp_path: Path) -> None:
    deep = nested_html(tmp_path / "deep.html", depth=300)
    assert "limits.max_depth = 256" in refused(deep)
    assert "deep text" in load_file(deep, max_bytes=MAX, limits=LimitsSettings(max_depth=400)).text
    flat = tmp_path / "flat.html"  # void elements and implied ends do not count as nesting
    flat.write_text("<html><body>" + "<p>para<br><img src=x>" * 300 + "<ul>" + "<li>item" * 300 + "</ul>"
                    + "<script>" + "<div>" * 500 + "</script></body></html>")
    assert "para" in load_file(flat, max_bytes=MAX).text
    doc = docx_deep(tmp_path / "deep.docx", depth=300)
    reason = refused(doc)
    assert "word/document.xml" in reason and "limits.max_depth = 256" in reason
    assert "RAG_LIMITS__MAX_MARKUP_MB" in refused(deep, max_markup_mb=0.001, max_depth=400)


@pytest.mark.parametrize("name", ["sample_docx_1.docx", "sample_pptx_with_link.pptx",
                                  "basic_tables_two_sheets.xlsx"])
def test_xml_depth_matches_lxml(name: str) -> None:
    from lxml import etree

    with zipfile.ZipFile(DOCS / name) as z:
        for entry in z.namelist():
            if entry.endswith((".xml", ".rels")):
                data = z.read(entry)
                depth = best = 0
                for event, _el in etree.iterparse(io.BytesIO(data), events=("start", "end")):
                    depth += 1 if event == "start" else -1
                    best = max(best, depth)
                assert _xml_depth([data]) == best, entry
                blocks = [data[i:i + 7] for i in range(0, len(data), 7)]  # tags cut across blocks
                assert _xml_depth(blocks) == best, entry


def test_pages_slides_and_a_page_tree_that_contains_itself(tmp_path: Path) -> None:
    pdf = pdf_with_pages(tmp_path / "five.pdf", 5)
    assert "limits.max_pdf_pages = 3" in refused(pdf, max_pdf_pages=3)
    assert load_file(pdf, max_bytes=MAX).metadata["pages"] == 5
    assert "contains itself" in refused(pdf_page_tree_loop(tmp_path / "loop.pdf"))
    deck = pptx_with_slides(tmp_path / "deck.pptx", 4)
    assert "4 slides" in refused(deck, max_slides=3)
    assert "Slide 4" in load_file(deck, max_bytes=MAX).text


def test_characters_of_extracted_text(tmp_path: Path) -> None:
    md = good_markdown(tmp_path / "good.md")
    md.write_text(md.read_text() + "\n\nmore words " * 200)
    reason = refused(md, max_text_chars=1000)
    assert "limits.max_text_chars = 1,000" in reason and "RAG_LIMITS__MAX_TEXT_CHARS" in reason


@pytest.mark.parametrize("path", sorted(DOCS.iterdir()), ids=lambda p: p.name)
def test_real_documents_pass_the_default_checks(path: Path) -> None:
    try:
        load_file(path, max_bytes=MAX, limits=LimitsSettings())
    except LoaderError as exc:
        assert "limits." not in exc.reason, exc.reason


def test_an_inflated_page_fails_fast_on_its_size(tmp_path: Path) -> None:
    """The fuzz run's slowest mutants: a real page repeated ~55 times (3-10 MB) took 60 s in bs4.

    Not quadratic, just ~6 s/MB of tree building with 2-3 KB class attributes; the size cap refuses
    it before any parsing, with a reason that names the cap.
    """
    page = (DOCS / "what_is_haystack.html").read_bytes()
    inflated = tmp_path / "inflated.html"
    inflated.write_bytes(page * (5 * (1 << 20) // len(page)))  # ~5 MB, over the 3 MB default
    reason = refused(inflated)
    assert "limits.max_markup_mb = 3" in reason and "RAG_LIMITS__MAX_MARKUP_MB" in reason
