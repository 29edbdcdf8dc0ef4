"""Tables as rows that stand alone: one row, one segment, one chunk.

A question about one row of a price list should retrieve that row and cite
it, not a block of fifty rows. So every table (CSV, XLSX sheets, HTML, DOCX
and PDF tables) becomes one segment per row, and each row is ONE line that
repeats the column names: `Header: value; Header2: value2`. The answer
side relies on that shape (a table row is one sentence), and the chunker
never merges a row segment with its neighbours (`Segment.kind == "row"`).

PDF tables are found by pdfplumber (ruled and aligned tables); the page
text from pypdf stays as it is, the rows are added after it on the same page.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time

log = logging.getLogger(__name__)

ROW = "row"
"""`Segment.kind` of a table row (rag.types.Segment); the chunker keeps each one whole and alone."""

TableSection = tuple[str, int | None, tuple[str, ...], str]
"""(one row line, page, heading path, ROW): a section `ingest.loaders._assemble` marks as a row."""


def cell_text(value: object) -> str:
    """One spreadsheet or CSV cell as short text (2.0 -> "2", dates in ISO form)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return " ".join(str(value).split())


def row_line(headers: Sequence[str], cells: Sequence[str]) -> str:
    """`Header: value; Header2: value2` (the answer side's contract); empty cells left out.

    A column without a name (often the row labels) gives its value alone.
    """
    names = list(headers) + [""] * (len(cells) - len(headers))
    return "; ".join(f"{n}: {c}" if n else c for n, c in zip(names, cells, strict=False) if c)


def table_sections(rows: Iterable[Sequence[object]], path: tuple[str, ...],
                   page: int | None = None) -> list[TableSection]:
    """One row section per data row, under the first non-empty row as headers.

    A header-only table becomes one section with its column names.
    """
    headers: list[str] | None = None
    out: list[TableSection] = []
    for row in rows:
        cells = [cell_text(v) for v in row]
        if not any(cells):
            continue
        if headers is None:
            headers = cells
            continue
        out.append((row_line(headers, cells), page, path, ROW))
    if not out and headers is not None:
        out.append((" | ".join(h for h in headers if h), page, path, ROW))
    return out


def pdf_tables(data: bytes, pages: Iterable[int]) -> dict[int, list[list[list[str | None]]]]:
    """Tables found by pdfplumber on the given 1-based pages: page -> tables -> rows -> cells.

    Only tables of at least two rows and two columns count (a ruled box
    around a paragraph is not a table). Without pdfplumber, or on a page it
    cannot read, there are simply no tables: the page text is still indexed.
    """
    try:
        import pdfplumber
    except ImportError:  # pragma: no cover - a core dependency; kept soft for slim installs
        return {}
    wanted = set(pages)
    found: dict[int, list[list[list[str | None]]]] = {}
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for number, page in enumerate(pdf.pages, start=1):
                if number not in wanted:
                    continue
                try:
                    tables = [t for t in page.extract_tables()
                              if len(t) >= 2 and max(len(r) for r in t) >= 2]
                except Exception as exc:  # noqa: BLE001 - pdfminer raises many kinds on odd pages
                    log.debug("pdfplumber could not read page %d: %s", number, exc)
                    continue
                if tables:
                    found[number] = tables
                page.close()
    except Exception as exc:  # noqa: BLE001 - pypdf read it; pdfplumber failing costs only the rows
        log.debug("pdfplumber could not open the PDF: %s", exc)
    return found


def pdf_row_sections(tables: list[list[list[str | None]]], page: int) -> list[TableSection]:
    """Rows of one page's tables, each table under its own heading path ("Table 2")."""
    out: list[TableSection] = []
    for k, table in enumerate(tables, start=1):
        out += table_sections(table, (f"Table {k}",), page)
    return out

