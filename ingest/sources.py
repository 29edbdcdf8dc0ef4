"""Things to ingest: files on disk and already-loaded texts, behind one shape."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rag.config import OcrSettings
from rag.errors import LoaderError, RagError
from rag.types import ParsedDocument, Segment, SourceText


class Item(Protocol):
    source: str

    def content_hash(self) -> str: ...

    def size(self) -> int: ...

    def load(self, max_bytes: int) -> ParsedDocument: ...


@dataclass
class FileItem:
    path: Path
    source: str
    ocr: OcrSettings | None = None  # None: OCR as by default (on when installed)

    def size(self) -> int:
        return self.path.stat().st_size

    def content_hash(self) -> str:
        h = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def load(self, max_bytes: int) -> ParsedDocument:
        from rag_platform.ingest.loaders import load_file

        return load_file(self.path, max_bytes=max_bytes, source=self.source, ocr=self.ocr)


@dataclass
class TextItem:
    doc: SourceText

    @property
    def source(self) -> str:
        return self.doc.source

    def size(self) -> int:
        return len(self.doc.text.encode("utf-8"))

    def content_hash(self) -> str:
        blob = json.dumps([self.doc.title, self.doc.text, self.doc.metadata], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def load(self, max_bytes: int) -> ParsedDocument:
        d = self.doc
        if not d.text.strip():
            raise LoaderError(d.source, "empty text")
        text = f"{d.title}\n\n{d.text}" if d.title else d.text
        return ParsedDocument(source=d.source, media_type=d.media_type, text=text,
                              segments=(Segment(0, len(text)),), title=d.title, metadata=dict(d.metadata))


def discover(paths: Iterable[str | Path], glob: str | None = None) -> tuple[list[FileItem], list[Path]]:
    """Files to ingest under `paths` (recursively), and the roots they came from.

    A file named explicitly is taken whatever its suffix (so an unsupported one
    gets a clear per-file error); inside folders only supported suffixes are
    taken, hidden files and folders skipped.
    """
    items: dict[str, FileItem] = {}
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise RagError(f"path {raw!s} does not exist")
        roots.append(path)
        for file in _walk(path, glob):
            items.setdefault(str(file), FileItem(file, str(file)))
    return sorted(items.values(), key=lambda i: i.source), roots


def _walk(path: Path, glob: str | None) -> Iterator[Path]:
    from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES

    if path.is_file():
        yield path
        return
    for file in sorted(path.rglob("*")):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or not file.is_file():
            continue
        if glob and not (fnmatch.fnmatch(rel.as_posix(), glob) or fnmatch.fnmatch(file.name, glob)):
            continue
        if file.suffix.lower() in SUPPORTED_SUFFIXES:
            yield file


def under_roots(source: str, roots: list[Path]) -> bool:
    """Whether a ledger source lies under one of this run's roots (prune only touches those).

    A string prefix test: sources and roots are both `str(Path)`, so normalised. A sync
    asks this of every document of the collection, and `Path.parents` cost 0.9 s of a
    2.4 s one-file pass over 10,000 documents.
    """
    for r in roots:
        root = str(r)
        if source == root or source.startswith(root if root.endswith(os.sep) else root + os.sep):
            return True
    return False
