"""Offline OCR for scanned PDF pages and image files, one page at a time, only where needed.

Two engines behind one Protocol, picked by `OcrSettings.engine` (`auto`: tesseract
when installed, else rapidocr):
- `rapidocr`: PP-OCRv4 detection + recognition as ONNX models shipped
  inside the `rapidocr-onnxruntime` wheel, so nothing downloads and no system
  package is needed (`pip install 'rag-platform[ocr]'`).
- `tesseract`: the system `tesseract` binary (`apt-get install tesseract-ocr`).
bench/ocr.py compares them (speed, character error rate, retrieval).

The time limit per page is kept between steps: rapidocr recognises the
detected lines in small batches and stops when the page's time is up (the
lines read so far are kept); tesseract's process is killed. Either way the
page is listed under `ocr.timed_out` in the document's metadata.

What a chunk records: the document's metadata holds `ocr` =
`{"engine", "pages": {"<page>": mean confidence}, "timed_out": [...]}`; a hit
on page p came from OCR when `str(p)` is in `ocr.pages` (see `ocr_confidence`).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from rag import registry
from rag.config import OcrSettings
from rag.errors import LoaderError, RagError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'rag-platform[ocr]'"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_REC_BATCH = 12  # lines recognised between two looks at the clock


@dataclass(frozen=True)
class OcrPage:
    """One page read by OCR: its text (lines, blank line between blocks) and mean confidence."""

    text: str
    confidence: float
    seconds: float
    timed_out: bool = False


class OcrEngine(Protocol):
    """Reads one page image (H x W x 3 uint8 RGB) before `deadline` (time.monotonic())."""

    name: str

    def read(self, image: np.ndarray, deadline: float, min_confidence: float) -> OcrPage: ...


class OcrUnavailable(RagError):
    """The chosen OCR engine is not installed (the message says how to install it)."""


def _join_lines(lines: list[tuple[float, float, float, str]]) -> str:
    """(top, bottom, left, text) lines in reading order -> text; a tall gap starts a new paragraph."""
    if not lines:
        return ""
    heights = sorted(b - t for t, b, _l, _x in lines)
    h = max(heights[len(heights) // 2], 1.0)
    out: list[str] = []
    prev: tuple[float, float, float, str] | None = None
    for line in lines:
        if prev is not None:
            same_row = abs((line[0] + line[1]) / 2 - (prev[0] + prev[1]) / 2) < h / 2
            out.append(" " if same_row else "\n\n" if line[0] - prev[1] > 0.9 * h else "\n")
        out.append(line[3])
        prev = line
    return "".join(out)


def _mean_confidence(lines: Iterable[tuple[str, float]]) -> float:
    pairs = [(len(t), c) for t, c in lines if t]
    total = sum(n for n, _ in pairs)
    return round(sum(n * c for n, c in pairs) / total, 4) if total else 0.0


class RapidOcrEngine:
    """PP-OCRv4 via rapidocr-onnxruntime; models load once per process (~0.5 s)."""

    name = "rapidocr"

    def __init__(self) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise OcrUnavailable(f"OCR engine rapidocr is not installed: {INSTALL_HINT}") from exc
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        # Detection at most 1600 px on the long side: its default ("at least 736 px on the short
        # side") blows a wide strip of text up several times and costs seconds for nothing.
        self._ocr = RapidOCR(det_limit_type="max", det_limit_side_len=1600)

    def read(self, image: np.ndarray, deadline: float, min_confidence: float) -> OcrPage:
        t0 = time.monotonic()
        ocr = self._ocr
        img = np.ascontiguousarray(image[:, :, ::-1])  # RGB -> BGR, as cv2 loads images
        img, _rh, _rw = ocr.preprocess(img)
        img, _rec = ocr.maybe_add_letterbox(img, {})
        boxes, _ = ocr.auto_text_det(img)
        if not boxes:
            return OcrPage("", 0.0, time.monotonic() - t0)
        crops = ocr.get_crop_img_list(img, boxes)
        read: list[tuple[str, float]] = []
        timed_out = False
        for i in range(0, len(crops), _REC_BATCH):
            if time.monotonic() > deadline:
                timed_out = True
                break
            batch = crops[i:i + _REC_BATCH]
            if ocr.use_cls:
                batch, _cls, _ = ocr.text_cls(batch)
            res, _ = ocr.text_rec(batch, False)
            read += [(str(r[0]), float(r[1])) for r in res]
        lines = [(float(b[:, 1].min()), float(b[:, 1].max()), float(b[:, 0].min()), t.strip())
                 for b, (t, c) in zip(boxes, read, strict=False) if c >= min_confidence and t.strip()]
        kept = [(t, c) for t, c in read if c >= min_confidence and t.strip()]
        return OcrPage(_join_lines(lines), _mean_confidence(kept), time.monotonic() - t0, timed_out)


class TesseractEngine:
    """The system `tesseract` binary (English), one process per page, killed at the deadline.

    It runs with one OpenMP thread (`OMP_THREAD_LIMIT=1` unless the environment
    sets it): its default threads spin-wait, and on 2 busy cores a page took
    4x the wall time and 4.4x the CPU time (bench/ocr.py notes).
    """

    name = "tesseract"

    def __init__(self, lang: str = "eng") -> None:
        self.binary = shutil.which("tesseract")
        if self.binary is None:
            raise OcrUnavailable("OCR engine tesseract is not installed: apt-get install tesseract-ocr, "
                                 "or set RAG_OCR__ENGINE=rapidocr")
        self.lang = lang
        self.env = {**os.environ, "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}

    def read(self, image: np.ndarray, deadline: float, min_confidence: float) -> OcrPage:
        from PIL import Image

        t0 = time.monotonic()
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        try:
            out = subprocess.run([str(self.binary), "stdin", "stdout", "-l", self.lang, "tsv"],
                                 input=buf.getvalue(), capture_output=True, env=self.env,
                                 timeout=max(deadline - time.monotonic(), 0.1), check=True)
        except subprocess.TimeoutExpired:
            return OcrPage("", 0.0, time.monotonic() - t0, timed_out=True)
        words: dict[tuple[int, int, int], list[tuple[str, float, float, float, float]]] = {}
        for row in out.stdout.decode("utf-8", "replace").splitlines()[1:]:
            f = row.split("\t")
            if len(f) == 12 and f[0] == "5" and f[11].strip() and float(f[10]) >= 0:
                key = (int(f[2]), int(f[3]), int(f[4]))  # block, paragraph, line
                top, height, left = float(f[7]), float(f[9]), float(f[6])
                words.setdefault(key, []).append((f[11], float(f[10]) / 100, top, top + height, left))
        lines, kept = [], []
        for ws in words.values():
            text = " ".join(w[0] for w in ws)
            conf = sum(w[1] * len(w[0]) for w in ws) / max(sum(len(w[0]) for w in ws), 1)
            if conf >= min_confidence:
                lines.append((min(w[2] for w in ws), max(w[3] for w in ws), min(w[4] for w in ws), text))
                kept.append((text, conf))
        return OcrPage(_join_lines(lines), _mean_confidence(kept), time.monotonic() - t0)


def resolve(name: str) -> str:
    """`auto` -> tesseract when its binary is on PATH, else rapidocr."""
    if name != "auto":
        return name
    return "tesseract" if shutil.which("tesseract") else "rapidocr"


@functools.lru_cache(maxsize=4)
def engine(name: str) -> OcrEngine:
    """The named engine, built once per process (models stay loaded)."""
    return cast(OcrEngine, registry.create("ocr", resolve(name)))  # registered by ingest.plugin


def read_images(images: Iterable[tuple[int, Any]], settings: OcrSettings, source: str) -> dict[int, OcrPage]:
    """OCR each (page number, PIL image) with the page time limit; page -> result."""
    try:
        eng = engine(settings.engine)
    except OcrUnavailable as exc:
        raise LoaderError(source, str(exc)) from exc
    out: dict[int, OcrPage] = {}
    for number, img in images:
        arr = np.asarray(img.convert("RGB"))
        page = eng.read(arr, time.monotonic() + settings.page_timeout_s, settings.min_confidence)
        if page.timed_out:
            log.warning("%s: OCR of page %d stopped after %.0f s (RAG_OCR__PAGE_TIMEOUT_S); "
                        "lines not read by then are left out", source, number, page.seconds)
        out[number] = page
    return out


def _pdf_page_images(data: bytes, pages: list[int], dpi: int) -> Iterator[tuple[int, Any]]:
    """Render the given 1-based pages that hold an image (a blank page is not worth OCR)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = pdfium.PdfDocument(data)
    try:
        for number in pages:
            page = pdf[number - 1]
            try:
                if not any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3)):
                    continue
                yield number, page.render(scale=dpi / 72).to_pil()
            finally:
                page.close()
    finally:
        pdf.close()


def ocr_pdf_pages(data: bytes, pages: list[int], settings: OcrSettings, source: str) -> dict[int, OcrPage]:
    """OCR the pages without a text layer that hold an image; page -> result."""
    try:
        import pypdfium2  # noqa: F401
    except ImportError as exc:
        raise LoaderError(source, f"no text layer; OCR not available ({INSTALL_HINT})") from exc
    return read_images(_pdf_page_images(data, pages, settings.dpi), settings, source)


def image_pages(data: bytes, source: str) -> Iterator[tuple[int, Any]]:
    """Each frame of an image file (a multi-page TIFF has several) as (page, PIL image)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise LoaderError(source, f"not a readable image: {exc}") from exc
    for number, frame in enumerate(ImageSequence.Iterator(img), start=1):
        yield number, frame.copy()


def metadata(pages: dict[int, OcrPage], settings: OcrSettings) -> dict[str, Any]:
    """What the document records: engine, per-page confidence (str keys for JSON), pages cut short."""
    return {"engine": resolve(settings.engine),
            "pages": {str(p): r.confidence for p, r in sorted(pages.items()) if r.text.strip()},
            "timed_out": sorted(p for p, r in pages.items() if r.timed_out),
            "seconds": round(sum(r.seconds for r in pages.values()), 2)}


def ocr_confidence(metadata: dict[str, Any], page: int | None) -> float | None:
    """The OCR confidence of a hit's page, or None when its text came from a text layer."""
    pages = (metadata.get("ocr") or {}).get("pages") or {}
    value = pages.get(str(page if page is not None else 1))
    return float(value) if value is not None else None


def ocr_note(metadata: dict[str, Any], page: int | None) -> str:
    """" · OCR 93%" for a hit whose page was read by OCR (the sources table and the app show it), else ""."""
    conf = ocr_confidence(metadata, page)
    return "" if conf is None else f" · OCR {conf:.0%}"
