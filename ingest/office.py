"""Extraction for the office formats parsed by a library: PDF, DOCX, PPTX and XLSX.

Each extractor turns bytes into an `Extracted`: ordered sections of raw text,
each with a page and a heading path. `ingest.loaders` normalises the text and
joins the sections into a `ParsedDocument`, so the offset bookkeeping lives in
one place. The heading and row helpers here are shared with the text formats.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.config import OcrSettings
from rag.errors import LoaderError
from rag_platform.ingest.limits import bounded_rows
from rag_platform.ingest.tables import ROW, TableSection, cell_text, pdf_row_sections, pdf_tables, table_sections

log = logging.getLogger(__name__)

Section = tuple[str, int | None, tuple[str, ...]] | TableSection
"""Raw text of one segment, its 1-based page (or None) and its heading path (+ ROW for a table row)."""

Block = tuple[int, str, str, int | None]
"""(heading level, 0 for body text or TABLE for table rows one per line, heading title, text, page)."""

TABLE = -1
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_PAGE_SECTION_TYPES = {None, "nextPage", "evenPage", "oddPage"}  # nextPage is the default
_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_ALLOWED_CONTROLS = "\t\n\r\x0b\x0c\x1b"  # tab, line ends, form feed, ANSI escape


@dataclass
class Extracted:
    """What a format extractor found, before normalisation and offsets."""

    sections: list[Section]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def sections_by_heading(blocks: Iterable[Block], sep: str = "\n") -> list[Section]:
    """Group blocks into one section per heading (and per page), tracking the heading path.

    A heading closes every open heading of the same or a deeper level, so
    the path always reads from the top level down. The heading's own text
    stays at the start of its section.
    """
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    parts: list[str] = []
    page: int | None = None
    path: tuple[str, ...] = ()
    for level, title, text, block_page in blocks:
        if level == TABLE:  # each row its own section, under the current heading
            if parts:
                sections.append((sep.join(parts), page, path))
                parts = []
            page = block_page
            sections += [(line, page, path, ROW) for line in text.split("\n") if line.strip()]
            continue
        is_heading = level > 0 and bool(title.strip())
        if is_heading or block_page != page:
            if parts:
                sections.append((sep.join(parts), page, path))
                parts = []
            page = block_page
        if is_heading:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(title.split())))
            path = tuple(t for _, t in stack)
        parts.append(text)
    if parts:
        sections.append((sep.join(parts), page, path))
    return sections


def looks_binary(text: str) -> bool:
    """True when control characters (NUL included) are more than 2% of the text (and 3+)."""
    sample = text[:65536]
    bad = sum(1 for c in sample if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS)
    return bad > 2 and bad / len(sample) > 0.02


def rows_to_sections(rows: Iterable[Sequence[object]], path: tuple[str, ...]) -> list[Section]:
    """Tabular rows as one "header: value; ..." row section each (see ingest.tables); bounded in cells."""
    return list(table_sections(bounded_rows(rows), path))


def _decrypt(reader: Any, source: str) -> None:
    """Open a PDF encrypted with an empty user password (common: "no copying" flags only)."""
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # noqa: BLE001 - AES needs the optional `cryptography` package
        raise LoaderError(source, f"encrypted PDF that cannot be opened: {exc}") from exc
    if not opened:
        raise LoaderError(source, "encrypted PDF with a password; save an unencrypted copy")


def extract_pdf(data: bytes, source: str, ocr: OcrSettings | None = None) -> Extracted:
    """One section per page that has text (or, with OCR, an image of text); page numbers kept for citations."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _decrypt(reader, source)
        pages = list(reader.pages)
    except PdfReadError as exc:
        raise LoaderError(source, f"not a valid PDF: {exc}") from exc
    sections: list[Section] = []
    empty: list[int] = []
    failed: dict[int, str] = {}
    for number, page in enumerate(pages, start=1):
        try:  # one broken page should not cost the whole document
            text = page.extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on bad content streams
            failed[number] = f"{type(exc).__name__}: {exc}"
            continue
        if text.strip():
            sections.append((text, number, ()))
        else:
            empty.append(number)
    if failed and not sections:
        first = next(iter(failed.values()))
        raise LoaderError(source, f"not a valid PDF: no page could be read ({first})")
    read = _ocr_pages(data, empty, ocr, source, required=bool(pages and not sections))
    tables = pdf_tables(data, [s[1] for s in sections if s[1] is not None])
    if tables:  # each page's table rows right after its text
        sections = [x for s in sections for x in [s, *pdf_row_sections(tables.get(s[1] or 0, []), s[1] or 0)]]
    title = str((reader.metadata or {}).get("/Title") or "").strip()
    meta: dict[str, Any] = {"pages": len(pages), "pages_without_text": empty}
    if tables:
        meta["tables"] = sum(len(t) for t in tables.values())
    if read:
        from rag_platform.ingest.ocr import metadata as ocr_metadata

        meta["ocr"] = ocr_metadata(read, ocr or OcrSettings())
        sections = sorted(sections + [(r.text, p, ()) for p, r in read.items() if r.text.strip()],
                          key=lambda s: s[1] or 0)
    if failed:
        meta["pages_failed"] = sorted(failed)
    return Extracted(sections, None if title.lower() in ("", "untitled") else title, meta)


def _ocr_pages(data: bytes, pages: list[int], ocr: OcrSettings | None, source: str,
               required: bool) -> dict[int, Any]:
    """OCR of the pages without a text layer (ingest.ocr), when on; `required`: nothing else has text."""
    ocr = ocr or OcrSettings()
    if not pages or not ocr.enabled:
        if required:
            raise LoaderError(source, "no text layer; OCR is off (RAG_OCR__ENABLED=false)")
        return {}
    from rag_platform.ingest.ocr import ocr_pdf_pages

    try:
        read = ocr_pdf_pages(data, pages, ocr, source)
    except LoaderError:
        if required:
            raise
        log.warning("%s: pages %s have no text layer and OCR is not available", source, pages)
        return {}
    if required and not any(r.text.strip() for r in read.values()):
        raise LoaderError(source, "no text layer, and OCR found no text on its pages")
    return read


def _docx_pieces(paragraph: Any) -> list[str]:
    """A paragraph's text split at explicit page breaks (`w:br w:type="page"`)."""
    pieces = [""]

    def walk(el: Any) -> None:
        for child in el:
            tag = child.tag
            if tag in (_MC_FALLBACK, _W + "pPr", _W + "rPr"):
                continue  # Fallback repeats an AlternateContent's text
            if tag == _W + "t":
                pieces[-1] += child.text or ""
            elif tag == _W + "tab":
                pieces[-1] += "\t"
            elif tag in (_W + "br", _W + "cr"):
                if child.get(_W + "type") == "page":
                    pieces.append("")
                else:
                    pieces[-1] += "\n"
            else:
                if tag == _W + "p":  # a text box's paragraph
                    pieces[-1] += "\n"
                walk(child)

    walk(paragraph)
    return pieces


def _docx_body(el: Any) -> Iterator[Any]:
    """Body paragraphs and tables in order, looking inside content controls."""
    for child in el:
        if child.tag in (_W + "p", _W + "tbl"):
            yield child
        elif child.tag in (_W + "sdt", _W + "sdtContent"):
            yield from _docx_body(child)


def _docx_table(tbl: Any, parent: Any) -> str:
    """A table's rows as row lines under its first row's names, one per line (see ingest.tables)."""
    from docx.table import Table

    rows = []
    for row in Table(tbl, parent).rows:
        cells: list[str] = []
        seen: list[Any] = []  # holding the elements keeps lxml's proxies (and identity) stable
        for cell in row.cells:
            if not any(cell._tc is tc for tc in seen):  # a merged cell repeats per grid column
                seen.append(cell._tc)
                cells.append(cell_text(cell.text))
        rows.append(cells)
    return "\n".join(s[0] for s in table_sections(rows, ()))


def extract_docx(data: bytes, source: str) -> Extracted:
    """Sections by "Heading N"/"Title" styles; pages counted from explicit breaks only.

    Word's `lastRenderedPageBreak` marks depend on the last renderer and are
    often missing or stale, so only hard page breaks and new-page section
    breaks advance the page number.
    """
    import docx
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    body = document.element.body
    parent = document._body
    sect_types = [s.find(_W + "type") for s in body.iter(_W + "sectPr")
                  if s.getparent().tag in (_W + "pPr", _W + "body")]
    types = [None if t is None else t.get(_W + "val") for t in sect_types]
    blocks: list[Block] = []
    page, section_index, first_heading = 1, 0, None
    for el in _docx_body(body):
        if el.tag == _W + "tbl":
            blocks.append((TABLE, "", _docx_table(el, parent), page))
            continue
        style = Paragraph(el, parent).style
        name = style.name if style is not None and style.name else ""
        match = _HEADING_STYLE.match(name)
        level = 1 if name.lower() == "title" else int(match.group(1)) if match else 0
        for i, piece in enumerate(_docx_pieces(el)):
            page += 1 if i else 0
            blocks.append((level if i == 0 else 0, piece, piece, page))
            if level and first_heading is None and piece.strip():
                first_heading = " ".join(piece.split())
        ppr = el.find(_W + "pPr")
        if ppr is not None and ppr.find(_W + "sectPr") is not None:
            section_index += 1
            next_type = types[section_index] if section_index < len(types) else None
            page += 1 if next_type in _PAGE_SECTION_TYPES else 0
    title = (document.core_properties.title or "").strip() or first_heading
    return Extracted(sections_by_heading(blocks), title, {"pages": page})


def _pptx_lines(shapes: Iterable[Any]) -> Iterator[str]:
    """Text of every shape, descending into groups and reading tables row by row."""
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _pptx_lines(shape.shapes)
        elif shape.has_text_frame:
            yield shape.text_frame.text
        elif getattr(shape, "has_table", False):
            for row in shape.table.rows:
                yield " | ".join(" ".join(c.text.split()) for c in row.cells)


def extract_pptx(data: bytes, source: str) -> Extracted:
    """One section per slide (page = slide number), speaker notes included."""
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    sections: list[Section] = []
    first_title: str | None = None
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        first_title = first_title or title or None
        lines = list(_pptx_lines(slide.shapes))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text
            if notes.strip():
                lines.append(f"Notes: {notes}")
        sections.append(("\n".join(lines), number, (title,) if title else ()))
    doc_title = (deck.core_properties.title or "").strip() or first_title
    return Extracted(sections, doc_title, {"slides": len(deck.slides)})


def extract_xlsx(data: bytes, source: str) -> Extracted:
    """Per sheet, rows under the sheet's first non-empty row as headers."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sections: list[Section] = []
        names = []
        for sheet in book.worksheets:
            names.append(sheet.title)
            if hasattr(sheet, "reset_dimensions"):
                sheet.reset_dimensions()  # a stale dimension would pad with empty rows
            sections += rows_to_sections(sheet.iter_rows(values_only=True), (sheet.title,))
        title = (book.properties.title or "").strip() or None
    finally:
        book.close()
    return Extracted(sections, title, {"sheets": names})
