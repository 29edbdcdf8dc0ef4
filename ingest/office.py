"""Extraction for the office formats parsed by a library: PDF, DOCX, PPTX and XLSX.

Each extractor turns bytes into an `Extracted`: ordered sections of raw text,
each with a page and a heading path. `ingest.loaders` normalises the text and
joins the sections into a `ParsedDocument`, so the offset bookkeeping lives in
one place. The heading and row helpers here are shared with the text formats.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from ingest.limits import bounded_rows
from rag.errors import LoaderError

Section = tuple[str, int | None, tuple[str, ...]]
"""Raw text of one segment, its 1-based page (or None) and its heading path."""

Block = tuple[int, str, str, int | None]
"""(heading level or 0 for body text, heading title, text, page)."""

ROWS_PER_SEGMENT = 50
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


def cell_text(value: object) -> str:
    """One spreadsheet or CSV cell as short text (2.0 -> "2", dates in ISO form)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return " ".join(str(value).split())


def rows_to_sections(rows: Iterable[Sequence[object]], path: tuple[str, ...]) -> list[Section]:
    """Tabular rows as "header: value; ..." lines, ROWS_PER_SEGMENT rows per section.

    The first non-empty row is the header. Every row repeats the header names
    so that a chunk cut from the middle of a table still says what each value
    means.
    """
    headers: list[str] | None = None
    lines: list[str] = []
    sections: list[Section] = []
    for row in bounded_rows(rows):
        cells = [cell_text(v) for v in row]
        if not any(cells):
            continue
        if headers is None:
            headers = [c or f"column {i + 1}" for i, c in enumerate(cells)]
            continue
        names = headers + [f"column {i + 1}" for i in range(len(headers), len(cells))]
        lines.append("; ".join(f"{n}: {c}" for n, c in zip(names, cells, strict=False) if c))
        if len(lines) == ROWS_PER_SEGMENT:
            sections.append(("\n".join(lines), None, path))
            lines = []
    if lines:
        sections.append(("\n".join(lines), None, path))
    elif headers is not None and not sections:
        sections.append((" | ".join(headers), None, path))  # a header-only table
    return sections


def _decrypt(reader: Any, source: str) -> None:
    """Open a PDF encrypted with an empty user password (common: "no copying" flags only)."""
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # noqa: BLE001 - AES needs the optional `cryptography` package
        raise LoaderError(source, f"encrypted PDF that cannot be opened: {exc}") from exc
    if not opened:
        raise LoaderError(source, "encrypted PDF with a password; save an unencrypted copy")


def extract_pdf(data: bytes, source: str) -> Extracted:
    """One section per page that has text; page numbers kept for citations."""
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
    if pages and not sections:
        raise LoaderError(source, "no text layer; OCR not available")
    title = str((reader.metadata or {}).get("/Title") or "").strip()
    meta: dict[str, Any] = {"pages": len(pages), "pages_without_text": empty}
    if failed:
        meta["pages_failed"] = sorted(failed)
    return Extracted(sections, None if title.lower() in ("", "untitled") else title, meta)


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
    from docx.table import Table

    lines = []
    for row in Table(tbl, parent).rows:
        cells: list[str] = []
        seen: list[Any] = []  # holding the elements keeps lxml's proxies (and identity) stable
        for cell in row.cells:
            if not any(cell._tc is tc for tc in seen):  # a merged cell repeats per grid column
                seen.append(cell._tc)
                cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


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
            blocks.append((0, "", _docx_table(el, parent), page))
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
