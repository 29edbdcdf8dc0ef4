"""Table rows as chunks of their own, with their column names: CSV, XLSX, HTML, DOCX, PDF (made here)."""

from __future__ import annotations

import csv
from pathlib import Path

from rag_platform.ingest.loaders import load_bytes, load_file
from rag_platform.ingest.tables import row_line, table_sections

MB = 1 << 20
HEADER = ["part number", "description", "supplier", "warehouse", "unit price", "stock"]
ROWS = [
    ["P-100", "stainless steel hex bolt", "Acme Fasteners", "Rotterdam", "0.35 EUR", "12000"],
    ["P-200", "aluminium mounting bracket", "Nordic Metals", "Oslo", "4.20 EUR", "800"],
    ["P-300", "nitrile rubber gasket", "Sealtech", "Lyon", "1.10 EUR", "5600"],
    ["P-400", "brass ball valve", "Hydro Parts", "Gdansk", "18.90 EUR", "240"],
]


def simple_pdf(rows: list[list[str]]) -> bytes:
    """A one-page PDF with a ruled table (grid lines + Helvetica text), written by hand."""
    x0, y0, w, h = 40, 700, 130, 20
    ops = ["0.5 w"]
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            x, y = x0 + c * w, y0 - r * h
            ops.append(f"{x} {y} {w} {h} re S")
            ops.append(f"BT /F1 8 Tf {x + 3} {y + 6} Td ({cell}) Tj ET")
    stream = "\n".join(ops).encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def rows_of(doc) -> list[str]:  # type: ignore[no-untyped-def]
    return [doc.text[s.start:s.end] for s in doc.segments if s.kind == "row"]


def test_row_line_contract() -> None:
    """Each row is ONE line `Header: value; ...` (the answer side splits sentences on it)."""
    assert row_line(["a", "b", ""], ["1", "", "label"]) == "a: 1; label"
    secs = table_sections([[], HEADER, ROWS[0], ["", ""]], ("Sheet",), page=2)
    assert secs == [(row_line(HEADER, ROWS[0]), 2, ("Sheet",), "row")]
    assert table_sections([["only", "headers"]], ()) == [("only | headers", None, (), "row")]


def test_pdf_table_rows_keep_their_headers() -> None:
    doc = load_bytes(simple_pdf([HEADER[:4], *(r[:4] for r in ROWS)]), filename="parts.pdf", max_bytes=MB)
    rows = rows_of(doc)
    assert doc.metadata["tables"] == 1 and len(rows) == 4
    assert rows[1] == "part number: P-200; description: aluminium mounting bracket; supplier: Nordic Metals; " \
                      "warehouse: Oslo"
    assert all(s.page == 1 for s in doc.segments)


def test_html_and_docx_tables(tmp_path: Path) -> None:
    cells = "".join(f"<tr>{''.join(f'<td>{c}</td>' for c in r)}</tr>" for r in ROWS)
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    html = (f"<html><head><title>Parts</title></head><body><h1>Parts list</h1><p>Our stock of spare parts, "
            f"updated weekly by the purchasing team.</p><table><tr>{head}</tr>{cells}</table></body></html>")
    doc = load_bytes(html.encode(), filename="parts.html", max_bytes=MB)
    assert rows_of(doc)[2] == row_line(HEADER, ROWS[2])

    import docx

    d = docx.Document()
    d.add_heading("Parts", level=1)
    table = d.add_table(rows=len(ROWS) + 1, cols=len(HEADER))
    for r, row in enumerate([HEADER, *ROWS]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.save(tmp_path / "parts.docx")
    doc = load_file(tmp_path / "parts.docx", max_bytes=MB)
    assert rows_of(doc) == [row_line(HEADER, r) for r in ROWS]
    assert {s.heading_path for s in doc.segments if s.kind == "row"} == {("Parts",)}


def test_one_csv_row_is_answered_and_cited_with_its_header(tmp_path: Path, rag) -> None:  # type: ignore[no-untyped-def]
    with open(tmp_path / "parts.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([HEADER, *ROWS])
    report = rag.ingest([tmp_path / "parts.csv"], collection="parts")
    assert report.chunks_added == len(ROWS)  # one chunk per row
    answer = rag.ask("Which supplier delivers the nitrile rubber gasket?", collection="parts",
                     providers=["extractive"], stream=False, use_cache=False)
    assert answer.citations, answer.text
    cited = answer.sources[answer.citations[0].n - 1]
    assert cited.text == row_line(HEADER, ROWS[2])  # the row alone, with its column names
    assert "supplier: Sealtech" in answer.text and "Acme" not in answer.text
    assert answer.citations[0].supported
