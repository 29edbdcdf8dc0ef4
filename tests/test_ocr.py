"""OCR of images and scanned PDFs rendered here with Pillow (known text), with both engines.

rapidocr (pip) always runs; the tesseract tests need the system binary (`apt-get install
tesseract-ocr`), which CI's pip install does not bring, so they may skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.config import OcrSettings
from rag.errors import LoaderError
from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES, load_file
from rag_platform.ingest.ocr import ocr_confidence, ocr_note, read_images

pytest.importorskip("rapidocr_onnxruntime")
MB = 1 << 20
DOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "docs"
LINES = ["Invoice 4711 from Acme Corporation", "The warehouse in Rotterdam ships on Tuesday"]
RAPID = OcrSettings(engine="rapidocr")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs apt-get install tesseract-ocr")


def render(lines: list[str], size: tuple[int, int] = (760, 200)):  # type: ignore[no-untyped-def]
    """Black text on white, as a scanner or a screenshot gives it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=30)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((24, 30 + i * 70), line, fill="black", font=font)
    return img


def words(text: str) -> set[str]:
    return set(text.replace(",", " ").split())


def test_png_is_read_by_rapidocr(tmp_path: Path) -> None:
    render(LINES).save(tmp_path / "invoice.png")
    doc = load_file(tmp_path / "invoice.png", max_bytes=MB, ocr=RAPID)
    assert doc.media_type == "image/png" and doc.title == "invoice"
    assert {"Invoice", "4711", "Acme", "Rotterdam", "Tuesday"} <= words(doc.text)
    meta = doc.metadata["ocr"]
    assert meta["engine"] == "rapidocr" and meta["timed_out"] == []
    assert 0.8 < meta["pages"]["1"] <= 1.0
    assert [s.page for s in doc.segments] == [1]


def test_scanned_pdf_pages_are_read_only_where_needed(tmp_path: Path) -> None:
    """A two-page PDF of images (no text layer): each page OCR'd, page numbers kept."""
    first, second = render(LINES[:1]), render(["Page two lists the Berlin office"])
    first.save(tmp_path / "scan.pdf", save_all=True, append_images=[second], resolution=100)
    doc = load_file(tmp_path / "scan.pdf", max_bytes=MB, ocr=RAPID.model_copy(update={"dpi": 100}))
    assert doc.metadata["pages_without_text"] == [1, 2]
    assert set(doc.metadata["ocr"]["pages"]) == {"1", "2"}
    assert [s.page for s in doc.segments] == [1, 2]
    page2 = doc.text[doc.segments[1].start:doc.segments[1].end]
    assert "Berlin" in page2 and "Acme" not in page2


def test_blank_pdf_page_is_not_ocrd(tmp_path: Path) -> None:
    """Pages with text keep their text layer; a page with no image is not worth OCR."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.write(tmp_path / "blank.pdf")
    with pytest.raises(LoaderError, match="OCR found no text"):
        load_file(tmp_path / "blank.pdf", max_bytes=MB, ocr=RAPID)


def test_ocr_off_refuses_images_and_reports_scans(tmp_path: Path) -> None:
    off = OcrSettings(enabled=False)
    render(LINES).save(tmp_path / "a.png")
    with pytest.raises(LoaderError, match="RAG_OCR__ENABLED"):
        load_file(tmp_path / "a.png", max_bytes=MB, ocr=off)
    with pytest.raises(LoaderError, match="no text layer; OCR is off"):
        load_file(DOCS / "non_text_searchable.pdf", max_bytes=10 * MB, ocr=off)
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(LoaderError, match="not a readable image"):
        load_file(tmp_path / "junk.jpg", max_bytes=MB, ocr=RAPID)
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff"} <= SUPPORTED_SUFFIXES


def test_page_time_limit_keeps_going(tmp_path: Path) -> None:
    """A page over its time limit is cut short and recorded, not a crash."""
    read = read_images([(1, render(LINES))], RAPID.model_copy(update={"page_timeout_s": 1e-6}), "x.png")
    assert read[1].timed_out and read[1].text == ""


@needs_tesseract
@pytest.mark.may_skip
def test_jpeg_and_multipage_tiff_with_tesseract(tmp_path: Path) -> None:
    tess = OcrSettings(engine="tesseract")
    render(LINES).save(tmp_path / "note.jpg", quality=90)
    doc = load_file(tmp_path / "note.jpg", max_bytes=MB, ocr=tess)
    assert {"Acme", "Rotterdam"} <= words(doc.text) and doc.metadata["ocr"]["engine"] == "tesseract"
    render(LINES[:1]).save(tmp_path / "fax.tiff", save_all=True, append_images=[render(["Second frame: Oslo"])])
    doc = load_file(tmp_path / "fax.tiff", max_bytes=MB, ocr=tess)
    assert [s.page for s in doc.segments] == [1, 2] and "Oslo" in doc.text


@needs_tesseract
@pytest.mark.may_skip
def test_tesseract_runs_one_openmp_thread_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its default OpenMP threads spin on busy cores (bench/ocr.py); a user's own setting wins."""
    from rag_platform.ingest.ocr import TesseractEngine

    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    assert TesseractEngine().env["OMP_THREAD_LIMIT"] == "1"
    monkeypatch.setenv("OMP_THREAD_LIMIT", "4")
    assert TesseractEngine().env["OMP_THREAD_LIMIT"] == "4"


@needs_tesseract
@pytest.mark.may_skip
def test_shared_scanned_pdf_is_now_readable() -> None:
    doc = load_file(DOCS / "non_text_searchable.pdf", max_bytes=10 * MB, ocr=OcrSettings(engine="tesseract"))
    assert "Non-text-searchable PDF" in doc.text and "rendered as plain text" in doc.text


def test_ocr_chunks_say_so_in_hits(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """Ingested end to end: the hit knows its text came from OCR, and with what confidence."""
    from rag import RAG

    render(LINES).save(tmp_path / "invoice.png")
    rag = RAG.open(tmp_path / "home", embedder=embedder, ocr=RAPID)
    report = rag.ingest([tmp_path / "invoice.png"], collection="scans")
    assert report.summary()["ok"] == 1
    hit = rag.search("Which city is the warehouse in?", collection="scans", k=1)[0]
    assert "Rotterdam" in hit.text and hit.page == 1
    conf = ocr_confidence(hit.metadata, hit.page)
    assert conf is not None and conf > 0.8
    assert ocr_note(hit.metadata, hit.page).startswith(" · OCR ")
    assert ocr_note({}, 3) == ""
