"""Hostile files made on the spot (tests and bench/hostile_folder.py, bench/fuzz_loaders.py).

Each writer streams its output, so making a 1.4 GB-expanding DOCX costs
seconds and little memory. Sizes are parameters: tests make small ones and
lower the limit to match.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_DOC_HEAD = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {_W}><w:body>'.encode()
_DOC_TAIL = b"</w:body></w:document>"


def _docx_skeleton() -> bytes:
    """A real, tiny DOCX from python-docx's template."""
    import docx

    buf = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("skeleton")
    d.save(buf)
    return buf.getvalue()


def _rewrite_docx(path: Path, body_chunks: object, level: int = 9) -> Path:
    """Copy the skeleton with word/document.xml replaced by the streamed chunks."""
    src = zipfile.ZipFile(io.BytesIO(_docx_skeleton()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as out:
        for info in src.infolist():
            if info.filename == "word/document.xml":
                with out.open("word/document.xml", "w", force_zip64=True) as fh:
                    for chunk in body_chunks:  # type: ignore[attr-defined]
                        fh.write(chunk)
            else:
                out.writestr(info.filename, src.read(info.filename))
    return path


def docx_paragraph_bomb(path: Path, expanded_mb: float = 1400) -> Path:
    """A DOCX whose document.xml is `expanded_mb` of ordinary paragraphs."""
    para = b"<w:p><w:r><w:t>All work and no play makes a dull parser. </w:t></w:r></w:p>"
    block = para * ((1 << 20) // len(para) + 1)
    n = int(expanded_mb * (1 << 20) / len(block))

    def chunks():  # noqa: ANN202
        yield _DOC_HEAD
        for _ in range(n):
            yield block
        yield _DOC_TAIL
    return _rewrite_docx(path, chunks())


def docx_text_node_bomb(path: Path, expanded_mb: float = 1500) -> Path:
    """A DOCX whose body is one paragraph with one text node of `expanded_mb`."""
    block = b"a" * (1 << 20)

    def chunks():  # noqa: ANN202
        yield _DOC_HEAD + b"<w:p><w:r><w:t>"
        for _ in range(int(expanded_mb)):
            yield block
        yield b"</w:t></w:r></w:p>" + _DOC_TAIL
    return _rewrite_docx(path, chunks())


def docx_deep(path: Path, depth: int = 5000) -> Path:
    """A small DOCX whose paragraph nests `depth` run properties (XML depth)."""
    return _rewrite_docx(path, [_DOC_HEAD, b"<w:p>" + b"<w:r>" * depth + b"</w:r>" * depth + b"</w:p>",
                                _DOC_TAIL])


def nested_html(path: Path, depth: int = 200_000) -> Path:
    path.write_bytes(b"<html><head><title>deep</title></head><body>" + b"<div>" * depth + b"deep text"
                     + b"</div>" * depth + b"</body></html>")
    return path


def wide_csv(path: Path, columns: int = 2_000_000, rows: int = 3) -> Path:
    with open(path, "wb") as fh:
        for r in range(rows):
            fh.write(b",".join(b"c%d" % (i % 10) if r else b"h%d" % i for i in range(columns)) + b"\n")
    return path


def long_csv(path: Path, rows: int = 300_000, columns: int = 5) -> Path:
    """An ordinary but large table: slow and memory-hungry to turn into text, under the cell cap."""
    with open(path, "w") as fh:
        fh.write(",".join(f"col{i}" for i in range(columns)) + "\n")
        for r in range(rows):
            fh.write(",".join(f"value {r} {i}" for i in range(columns)) + "\n")
    return path


def truncated_pptx(path: Path, source: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def pptx_with_slides(path: Path, slides: int) -> Path:
    from pptx import Presentation

    deck = Presentation()
    for i in range(slides):
        s = deck.slides.add_slide(deck.slide_layouts[1])
        s.shapes.title.text = f"Slide {i + 1}"
    deck.save(str(path))
    return path


def xlsx_with_cells(path: Path, rows: int, columns: int) -> Path:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append([f"h{c}" for c in range(columns)])
    for r in range(rows):
        sheet.append([r * columns + c for c in range(columns)])
    book.save(str(path))
    return path


def _pdf(objects: list[bytes]) -> bytes:
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def _pdf_page_objects(kids: bytes, count: int, pages: int = 1) -> list[bytes]:
    content = b"BT /F1 12 Tf 72 720 Td (Hello from a page) Tj ET"
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for _ in range(pages):
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
                    b"/Resources << /Font << /F1 4 0 R >> >> >>")
    return objs


def pdf_page_tree_loop(path: Path) -> Path:
    """A PDF whose page tree lists itself among its kids."""
    path.write_bytes(_pdf(_pdf_page_objects(b"5 0 R 2 0 R", 2)))
    return path


def pdf_with_pages(path: Path, pages: int) -> Path:
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    path.write_bytes(_pdf(_pdf_page_objects(kids, pages, pages)))
    return path


def good_markdown(path: Path) -> Path:
    path.write_text("# Zanzibar heron survey\n\nThe heron survey of 2025 counted 412 grey herons nesting on "
                    "the eastern shore of Zanzibar, mostly in mangroves near Chwaka Bay.\n")
    return path


def hostile_folder(folder: Path, *, scale: float = 1.0, sample_pptx: Path | None = None) -> dict[str, Path]:
    """The folder of issue 15: the bombs plus one good Markdown file (scale < 1 makes smaller bombs)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "docx_paragraphs": docx_paragraph_bomb(folder / "paragraph-bomb.docx", 1400 * scale),
        "docx_text_node": docx_text_node_bomb(folder / "text-node-bomb.docx", 1500 * scale),
        "html_nested": nested_html(folder / "nested.html", int(200_000 * max(scale, 0.01))),
        "csv_wide": wide_csv(folder / "wide.csv", int(2_000_000 * max(scale, 0.01))),
        "pdf_loop": pdf_page_tree_loop(folder / "page-loop.pdf"),
        "good": good_markdown(folder / "good.md"),
    }
    if sample_pptx is not None and sample_pptx.exists():
        files["pptx_truncated"] = truncated_pptx(folder / "truncated.pptx", sample_pptx)
    return files
