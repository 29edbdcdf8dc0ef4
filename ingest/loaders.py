"""Turn a file (or uploaded bytes) into a `ParsedDocument`: text plus segments.

One registry maps a suffix to a loader `(data, source) -> ParsedDocument`.
Every loader ends in `_assemble`, which normalises each section's text and
joins the sections with blank lines, so segment offsets are computed in one
place. Whatever goes wrong, callers get a `LoaderError` naming the file and
the reason, never a raw library exception: one bad file must not stop a batch.

Example:
    >>> doc = load_file(Path("samples/hybrid-retrieval.pdf"), max_bytes=50 << 20)
    >>> doc.segments[1].page
    2
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
from collections.abc import Callable
from pathlib import Path

from rag.config import LimitsSettings, OcrSettings
from rag.errors import LoaderError
from rag.types import ParsedDocument, Segment
from rag_platform.ingest import html, office
from rag_platform.ingest import limits as file_limits
from rag_platform.ingest.office import Block, Extracted

Loader = Callable[..., ParsedDocument]
"""(data, source, ocr: OcrSettings | None = None) -> ParsedDocument"""
Extractor = Callable[[bytes, str], Extracted]

_CLEAN = str.maketrans({"\x00": "", "\x0b": "\n", "\x0c": "\n", "\u2028": "\n", "\u2029": "\n",
                        "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi",
                        "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"})
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_MANY_NEWLINES = re.compile(r"\n{3,}")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def normalise(text: str) -> str:
    """Unify line ends, drop NULs and ligatures, trim line ends, cap blank runs at one.

    Ligatures ("ﬁ") come out of many PDFs and would otherwise break both
    BM25 term matching and tokenisation.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_CLEAN)
    text = _TRAILING_SPACE.sub("", text)
    return _MANY_NEWLINES.sub("\n\n", text).strip("\n")


def _assemble(found: Extracted, source: str, media_type: str) -> ParsedDocument:
    """Join normalised sections with blank lines; whitespace-only ones are skipped."""
    parts: list[str] = []
    segments: list[Segment] = []
    pos = 0
    for raw, page, path, *kind in found.sections:
        text = normalise(raw)
        if not text.strip():
            continue
        pos += 2 if parts else 0
        path = tuple(" ".join(h.translate(_CLEAN).split()) for h in path)
        segments.append(Segment(pos, pos + len(text), page, path, *kind))
        parts.append(text)
        pos += len(text)
        file_limits.check_chars(pos)
    if not parts:
        raise LoaderError(source, "empty file: no text found")
    title = " ".join(found.title.translate(_CLEAN).split()) if found.title else None
    return ParsedDocument(source=source, media_type=media_type, text="\n\n".join(parts),
                          segments=tuple(segments), title=title, metadata=found.metadata)


def _utf16_without_bom(data: bytes) -> str | None:
    """Which UTF-16 byte order fits, judged by NULs in alternating positions (ASCII-heavy text)."""
    if len(data) < 4 or len(data) % 2:
        return None
    even, odd = data[0::2].count(0) / (len(data) / 2), data[1::2].count(0) / (len(data) / 2)
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def _mostly_western(data: bytes) -> str | None:
    """Decode as cp1252 when accented letters are sprinkled in mostly-ASCII words.

    charset-normalizer guesses badly on short Western European text (it calls
    Latin-1 "café" UTF-16-BE, and French text cp1257). Cyrillic or Greek
    codepages decoded as cp1252 give words made wholly of accented letters,
    so a low share of non-ASCII letters tells the two apart.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    letters = [c for c in text[:262144] if c.isalpha()]
    foreign = sum(1 for c in letters if ord(c) > 127)
    return text if letters and foreign / len(letters) < 0.3 else None


def decode_text(data: bytes, source: str) -> str:
    """Bytes of a text file as str: BOM, UTF-8, BOM-less UTF-16, cp1252, a guess, Latin-1."""
    text: str | None = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data.decode(encoding, errors="replace")
            break
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            utf16 = _utf16_without_bom(data)
            if utf16:
                try:
                    text = data.decode(utf16)
                except UnicodeDecodeError:
                    text = None
    if text is None and b"\x00" not in data:
        text = _mostly_western(data)
    if text is None:
        from charset_normalizer import from_bytes

        matches = [m for m in from_bytes(data) if not m.encoding.startswith(("utf_16", "utf_32"))]
        if matches:  # on a tie, a Windows codepage is likelier than a Mac one
            best = next((m for m in matches if m.encoding.startswith("cp125")
                         and m.chaos <= matches[0].chaos), matches[0])
            text = str(best)
    if text is None:
        text = data.decode("latin-1")
    if office.looks_binary(text):
        raise LoaderError(source, "looks binary, not text (control characters or NUL bytes)")
    return text


def extract_text(data: bytes, source: str) -> Extracted:
    """Plain text: one section; the chunker splits it further."""
    return Extracted([(decode_text(data, source), None, ())])


def _front_matter(lines: list[str]) -> tuple[int, dict[str, str]]:
    """Length of a leading YAML front-matter block and its simple `key: value` pairs."""
    if not lines or lines[0].strip() != "---":
        return 0, {}
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in ("---", "..."):
            pairs = [ln.split(":", 1) for ln in lines[1:end] if ":" in ln]
            return end + 1, {k.strip(): v.strip() for k, v in pairs if k.strip()}
    return 0, {}


def extract_markdown(data: bytes, source: str) -> Extracted:
    """One section per ATX heading; `#` lines inside fenced code are not headings."""
    lines = decode_text(data, source).replace("\r\n", "\n").split("\n")
    skip, meta = _front_matter(lines)
    blocks: list[Block] = []
    fence = ""
    title = None
    for line in lines[skip:]:
        marker = found.group(1) if (found := _FENCE.match(line)) else ""
        if marker and (not fence or (marker[0] == fence[0] and len(marker) >= len(fence))):
            fence = "" if fence else marker  # a closing fence matches the opening one
        heading = None if fence else _ATX.match(line)
        if heading and heading.group(2):
            level, name = len(heading.group(1)), heading.group(2).strip()
            title = title or (name if level == 1 else None)
            blocks.append((level, name, line, None))
        else:
            blocks.append((0, "", line, None))
    metadata = {"front_matter": meta} if meta else {}
    return Extracted(office.sections_by_heading(blocks), title, metadata)


def extract_csv(data: bytes, source: str) -> Extracted:
    """Rows as "header: value" lines, delimiter sniffed (",", ";", tab or "|")."""
    text = decode_text(data, source)
    try:
        delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    file_limits.check_csv_width(text, delimiter)
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    return Extracted(office.rows_to_sections(rows, ()))


def extract_image(data: bytes, source: str, ocr: OcrSettings | None = None) -> Extracted:
    """PNG, JPEG or TIFF (one page per frame) read by OCR (ingest.ocr)."""
    ocr = ocr or OcrSettings()
    if not ocr.enabled:
        raise LoaderError(source, "an image is read by OCR, which is off (RAG_OCR__ENABLED=false)")
    from rag_platform.ingest import ocr as reader

    read = reader.read_images(reader.image_pages(data, source), ocr, source)
    if not any(r.text.strip() for r in read.values()):
        raise LoaderError(source, "OCR found no text in the image")
    return Extracted([(r.text, p, ()) for p, r in read.items()], None,
                     {"pages": len(read), "ocr": reader.metadata(read, ocr)})


def _loader(kind: str, media_type: str, extract: Extractor) -> Loader:
    """Wrap an extractor so library errors become `LoaderError`s naming the format."""

    def load(data: bytes, source: str, ocr: OcrSettings | None = None) -> ParsedDocument:
        try:
            found = extract(data, source, ocr) if extract in _OCR_AWARE else extract(data, source)  # type: ignore[call-arg]
        except LoaderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every library error means "cannot parse"
            reason = f"could not parse as {kind}: {type(exc).__name__}: {exc}"
            raise LoaderError(source, reason) from exc
        return _assemble(found, source, media_type)

    return load


_OOXML = "application/vnd.openxmlformats-officedocument."
_MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".docx": _OOXML + "wordprocessingml.document",
    ".pptx": _OOXML + "presentationml.presentation",
    ".xlsx": _OOXML + "spreadsheetml.sheet",
    ".csv": "text/csv",
    ".html": "text/html", ".htm": "text/html",
    ".md": "text/markdown", ".markdown": "text/markdown",
    ".txt": "text/plain", ".text": "text/plain",
    ".rst": "text/x-rst",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff",
}
_FORMATS: dict[str, tuple[str, Extractor]] = {
    ".pdf": ("PDF", office.extract_pdf),
    ".docx": ("DOCX", office.extract_docx),
    ".pptx": ("PPTX", office.extract_pptx),
    ".xlsx": ("XLSX", office.extract_xlsx),
    ".csv": ("CSV", extract_csv),
    ".html": ("HTML", html.extract_html), ".htm": ("HTML", html.extract_html),
    ".md": ("Markdown", extract_markdown), ".markdown": ("Markdown", extract_markdown),
    ".txt": ("text", extract_text), ".text": ("text", extract_text),
    ".rst": ("reStructuredText", extract_text),
    ".png": ("PNG", extract_image), ".jpg": ("JPEG", extract_image), ".jpeg": ("JPEG", extract_image),
    ".tif": ("TIFF", extract_image), ".tiff": ("TIFF", extract_image),
}
_OCR_AWARE: tuple[Callable[..., Extracted], ...] = (office.extract_pdf, extract_image)
LOADERS: dict[str, Loader] = {
    suffix: _loader(kind, _MEDIA_TYPES[suffix], extract)
    for suffix, (kind, extract) in _FORMATS.items()
}
"""The registry: suffix -> loader. A new format is one extractor plus one line in `_FORMATS`."""
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(LOADERS)


def media_type_for(path: Path) -> str:
    """The MIME type we record for a file, from its suffix (octet-stream if unknown)."""
    import mimetypes

    suffix = path.suffix.lower()
    guessed = mimetypes.guess_type(path.name)[0]
    return _MEDIA_TYPES.get(suffix) or guessed or "application/octet-stream"


def _check_suffix(suffix: str, source: str) -> Loader:
    loader = LOADERS.get(suffix.lower())
    if loader is None:
        raise LoaderError(source, f"unsupported file type {suffix or '(no suffix)'!r}; "
                                  f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    return loader


def _check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        raise LoaderError(source, f"file is {size:,} bytes ({size / 2**20:.1f} MB), over the "
                                  f"limit of {max_bytes:,} bytes ({max_bytes / 2**20:.1f} MB); "
                                  "raise RAG_INGEST__MAX_FILE_MB to ingest it")


def load_bytes(
    data: bytes, *, filename: str, max_bytes: int, source: str | None = None,
    limits: LimitsSettings | None = None, ocr: OcrSettings | None = None,
) -> ParsedDocument:
    """Parse uploaded bytes; `filename` picks the format and the fallback title; `ocr` as configured.

    `limits` (default: those in force, see `ingest.limits`) bound what the
    file may expand to; they are checked before the parser sees the bytes.

    Raises:
        LoaderError: unsupported suffix, too large, empty, binary, unparsable or over a limit.
    """
    source = source or filename
    loader = _check_suffix(Path(filename).suffix, source)
    _check_size(len(data), max_bytes, source)
    if not data.strip():
        raise LoaderError(source, "empty file")
    with file_limits.applied(limits or file_limits.current(), source):
        file_limits.check_before_parse(data, Path(filename).suffix)
        doc = loader(data, source, ocr)
    return doc if doc.title else dataclasses.replace(doc, title=Path(filename).stem)


def load_file(path: Path, *, max_bytes: int, source: str | None = None,
              limits: LimitsSettings | None = None, ocr: OcrSettings | None = None) -> ParsedDocument:
    """Parse a file on disk; `source` defaults to its resolved path.

    The suffix and size are checked before reading, so a huge or unsupported
    file costs nothing.

    Raises:
        LoaderError: unreadable, unsupported suffix, too large, empty, binary or unparsable.
    """
    path = Path(path)
    source = source or str(path.resolve())
    _check_suffix(path.suffix, source)
    try:
        _check_size(path.stat().st_size, max_bytes, source)
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(source, f"cannot read file: {exc.strerror or exc}") from exc
    return load_bytes(data, filename=path.name, max_bytes=max_bytes, source=source, limits=limits, ocr=ocr)
