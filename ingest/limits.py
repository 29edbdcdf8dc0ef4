"""Checks that refuse a hostile file before a parser expands it, each one a setting it names.

The format libraries (python-docx, openpyxl, pypdf, BeautifulSoup) trust their
input: a 4 MB DOCX whose XML inflates to gigabytes, a page tree that loops, an
HTML page nested 200,000 deep all cost time and memory before any error. So
`check_before_parse` reads only the cheap parts first (a ZIP's central
directory, a PDF's page tree, the tags of a page) and the loaders call
`check_chars` and `bounded_rows` while they extract. The limits in force and the
file being loaded travel in a context variable set by `applied`, so the
extractors keep their `(data, source)` signature.

Example:
    >>> with applied(LimitsSettings(max_zip_ratio=50), "report.docx"):
    ...     check_before_parse(data, ".docx")      # doctest: +SKIP
    LoaderError: report.docx: entry 'word/document.xml' expands 370x (...), over limits.max_zip_ratio = 50 ...
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import numpy as np

from rag.config import LimitsSettings
from rag.errors import LoaderError

T = TypeVar("T", bound=Sequence[Any])
_MB = 1 << 20
RATIO_GRACE_BYTES = _MB  # entries smaller than this may compress as well as they like (as Apache POI)
_ZIP_SUFFIXES = frozenset({".docx", ".xlsx", ".pptx"})
_HTML_SUFFIXES = frozenset({".html", ".htm"})


@dataclass(frozen=True)
class _Scope:
    limits: LimitsSettings
    source: str


_SCOPE: ContextVar[_Scope] = ContextVar("rag_ingest_limits", default=_Scope(LimitsSettings(), "(file)"))


@contextmanager
def applied(limits: LimitsSettings | None, source: str) -> Iterator[LimitsSettings]:
    """Make `limits` (default: the defaults) the ones in force while `source` is loaded."""
    token = _SCOPE.set(_Scope(limits or LimitsSettings(), source))
    try:
        yield _SCOPE.get().limits
    finally:
        _SCOPE.reset(token)


def current() -> LimitsSettings:
    """The limits in force (the defaults outside any `applied` block)."""
    return _SCOPE.get().limits


def fail(setting: str, what: str) -> NoReturn:
    """Raise the LoaderError for the file in scope; the message names the setting and how to raise it."""
    scope = _SCOPE.get()
    value = getattr(scope.limits, setting)
    value = int(value) if isinstance(value, float) and value.is_integer() else value
    raise LoaderError(scope.source, f"{what}, over limits.{setting} = {value:,} "
                                    f"(raise RAG_LIMITS__{setting.upper()} to allow it)")


def check_before_parse(data: bytes, suffix: str) -> None:
    """The checks that need only the raw bytes, by format; a file that passes goes to its parser."""
    suffix = suffix.lower()
    if suffix in _ZIP_SUFFIXES:
        check_zip(data, suffix)
    elif suffix == ".pdf":
        check_pdf_pages(data)
    elif suffix in _HTML_SUFFIXES:
        check_html(data)


def check_chars(count: int) -> None:
    """Called as extracted text accumulates: stop once a file yields more than max_text_chars."""
    if count > _SCOPE.get().limits.max_text_chars:
        fail("max_text_chars", f"more than {count:,} characters of text extracted")


def bounded_rows(rows: Iterable[T]) -> Iterator[T]:
    """Pass table rows through, refusing a row too wide or a table with too many cells (CSV, XLSX)."""
    limits = _SCOPE.get().limits
    cells = 0
    for number, row in enumerate(rows, start=1):
        if len(row) > limits.max_table_columns:
            fail("max_table_columns", f"row {number:,} has {len(row):,} columns")
        cells += len(row)
        if cells > limits.max_table_cells:
            fail("max_table_cells", f"more than {cells:,} table cells (rows x columns) by row {number:,}")
        yield row


def check_csv_width(text: str, delimiter: str) -> None:
    """Refuse a CSV by its first line's width before the reader builds a row that wide."""
    end = text.find("\n")
    first = text[: end if end >= 0 else len(text)]
    width = first.count(delimiter) + 1
    if width > _SCOPE.get().limits.max_table_columns:
        fail("max_table_columns", f"the first line has {width:,} columns")


def check_zip(data: bytes, suffix: str = ".docx") -> None:
    """Refuse a DOCX/XLSX/PPTX by its central directory: entries, total size, inflation ratio; then depth.

    zipfile stops inflating an entry at its declared size (and then fails its
    CRC), so a directory that lies about sizes cannot expand past them.
    """
    limits = _SCOPE.get().limits
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoaderError(_SCOPE.get().source, f"could not parse as {suffix[1:].upper()} (a ZIP package): "
                                               f"{type(exc).__name__}: {exc}") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_zip_entries:
            fail("max_zip_entries", f"the archive has {len(entries):,} entries")
        total = sum(e.file_size for e in entries)
        if total > limits.max_unzipped_mb * _MB:
            fail("max_unzipped_mb", f"expands to {total / _MB:,.0f} MB uncompressed")
        for e in entries:
            ratio = e.file_size / max(e.compress_size, 1)
            if e.file_size > RATIO_GRACE_BYTES and ratio > limits.max_zip_ratio:
                fail("max_zip_ratio", f"entry {e.filename!r} expands {ratio:,.0f}x "
                                      f"({e.compress_size:,} to {e.file_size:,} bytes)")
        for e in entries:
            if e.filename.endswith((".xml", ".rels")):
                depth = _xml_depth(_blocks(archive, e))
                if depth > limits.max_depth:
                    fail("max_depth", f"XML nested {depth:,} elements deep in {e.filename!r}")
        if suffix == ".pptx" and "ppt/presentation.xml" in archive.namelist():
            slides = len(re.findall(rb"<(?:[\w-]+:)?sldId\b", archive.read("ppt/presentation.xml")))
            if slides > limits.max_slides:
                fail("max_slides", f"{slides:,} slides")


def _blocks(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, size: int = 4 * _MB) -> Iterator[bytes]:
    try:
        with archive.open(entry) as fh:
            while block := fh.read(size):
                yield block
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:  # also zlib.error below
        raise LoaderError(_SCOPE.get().source, f"corrupt ZIP entry {entry.filename!r}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - zlib.error and friends: a damaged entry
        raise LoaderError(_SCOPE.get().source, f"corrupt ZIP entry {entry.filename!r}: "
                                               f"{type(exc).__name__}: {exc}") from exc


def _xml_depth(blocks: Iterable[bytes]) -> int:
    """Deepest element nesting of an XML stream, counted from its tags with numpy (no tree is built).

    `<x` opens, `</` closes, `/>` closes what it opened; `<?` and `<!` are neither.
    Each block is read with the previous block's last byte in front: a `<` is
    judged when the byte after it is in view, a `>` when the byte before it is.
    """
    depth = best = 0
    carry = b""
    for block in blocks:
        a = np.frombuffer(carry + block, np.uint8)
        carry = (carry + block)[-1:]
        if len(a) < 2:
            continue
        lt = np.flatnonzero(a[:-1] == 60)
        after = a[lt + 1]
        opens = lt[(after != 47) & (after != 63) & (after != 33)]
        closes = lt[after == 47]
        gt = np.flatnonzero(a[1:] == 62) + 1
        selfclose = gt[a[gt - 1] == 47]
        pos = np.concatenate([opens, closes, selfclose])
        if not len(pos):
            continue
        steps = np.concatenate([np.ones(len(opens), np.int64), -np.ones(len(closes) + len(selfclose), np.int64)])
        running = depth + np.cumsum(steps[np.argsort(pos, kind="stable")])
        best = max(best, int(running.max()))
        depth = int(running[-1])
    return best


def check_pdf_pages(data: bytes) -> None:
    """Walk the page tree once, each object at most once: a loop or too many pages fails here.

    A file pypdf cannot open at all is left to the loader, which reports it.
    """
    from pypdf import PdfReader
    from pypdf.generic import IndirectObject

    limits = _SCOPE.get().limits
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return  # objects are readable only after decryption; pypdf's own walk detects cycles then
        stack: list[Any] = [reader.trailer["/Root"].get_object().raw_get("/Pages")]
    except Exception:  # noqa: BLE001 - the loader reports an unreadable PDF with the library's words
        return
    seen: set[tuple[int, int]] = set()
    pages = 0
    while stack:
        ref = stack.pop()
        if isinstance(ref, IndirectObject):
            if (ref.idnum, ref.generation) in seen:
                raise LoaderError(_SCOPE.get().source, f"PDF page tree refers to object {ref.idnum} again "
                                                       "(it contains itself); the file is malformed")
            seen.add((ref.idnum, ref.generation))
        try:
            node = ref.get_object()
            kids = node.get("/Kids") if hasattr(node, "get") else None
            kids = kids.get_object() if kids is not None else None
        except Exception:  # noqa: BLE001 - a broken node: the loader's own walk decides
            continue
        if kids is None or node.get("/Type") == "/Page":
            pages += 1
            if pages > limits.max_pdf_pages:
                fail("max_pdf_pages", f"more than {limits.max_pdf_pages:,} pages")
        elif isinstance(kids, list):
            stack.extend(reversed(kids))


_VOID = frozenset(b"area base br col embed hr img input link meta param source track wbr basefont bgsound "
                  b"frame keygen isindex".split())
_AUTOCLOSE = frozenset(b"p li dt dd tr td th option optgroup thead tbody tfoot colgroup rb rt rp".split())
_HTML_TOKEN = re.compile(
    rb"<!--.*?(?:-->|\Z)|<(script|style|textarea|title)\b.*?(?:</\1\s*>|\Z)"
    rb"|<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*?(/?)>", re.S | re.I)


def check_html(data: bytes) -> None:
    """Size, then nesting depth from a scan of the tags (void elements and implied ends understood)."""
    limits = _SCOPE.get().limits
    if len(data) > limits.max_markup_mb * _MB:
        fail("max_markup_mb", f"the page is {len(data) / _MB:,.2f} MB")
    stack: list[bytes] = []
    open_count: Counter[bytes] = Counter()
    for m in _HTML_TOKEN.finditer(data):
        name = m.group(3)
        if name is None:
            continue  # a comment, or a script/style/textarea/title and its content
        name = name.lower()
        if m.group(2):  # an end tag closes up to its open element, if there is one
            if open_count[name]:
                while stack:
                    top = stack.pop()
                    open_count[top] -= 1
                    if top == name:
                        break
            continue
        if name in _VOID or m.group(4):
            continue
        if name in _AUTOCLOSE and open_count[name]:
            while stack:  # a new <p>/<li>/<td> ends the open one
                top = stack.pop()
                open_count[top] -= 1
                if top == name:
                    break
        stack.append(name)
        open_count[name] += 1
        if len(stack) > limits.max_depth:
            fail("max_depth", f"HTML nested more than {limits.max_depth:,} elements deep")
