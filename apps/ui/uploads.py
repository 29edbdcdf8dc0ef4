"""Uploads in the app: the HTTP API's checks (safe names, type allow-list, size limits), then ingestion.

Uploaded files are saved under `<home>/uploads/<collection>/`, the same place
the HTTP API uses, by `apps.uploads.save_uploads`: names are sanitised (no
folders, no `..`), every type and size is checked before anything is kept, and
one bad file refuses the whole upload with a message that names it. Limits
are the API's (`RAG_API__MAX_UPLOAD_MB`, `RAG_API__MAX_FILES`). Deleting a document or a
collection removes its uploaded files the API's way too (`apps.uploads`, re-exported here).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag import IngestReport
from rag.errors import ConfigError, NotFoundError, RagError
from rag_platform.apps.uploads import (
    ApiError,
    ApiSettings,
    delete_collection,
    delete_document,
    save_uploads,
    upload_folder,
)

__all__ = ["CallbackProgress", "UploadRefused", "Uploaded", "accepted_caption", "create_collection",
           "delete_collection", "delete_document", "document_label", "document_rows", "reingest_document",
           "report_rows", "save"]


class UploadRefused(RagError):
    """An upload broke a limit or the type allow-list; nothing of it was kept."""


class Uploaded(Protocol):
    """What Streamlit's `UploadedFile` offers (and a test's stand-in)."""

    name: str

    def getvalue(self) -> bytes: ...


@dataclass(frozen=True)
class _ApiUpload:
    """The shape `save_uploads` reads: `.filename` and a binary `.file`."""

    filename: str
    file: io.BytesIO


def save(rag: Any, collection: str, files: Sequence[Uploaded], limits: ApiSettings | None = None) -> list[Path]:
    """Save `files` for `collection` (all or none); raises `UploadRefused` with a message for the user."""
    from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES

    if not files:
        raise UploadRefused("choose at least one file to upload")
    wrapped = [_ApiUpload(f.name, io.BytesIO(f.getvalue())) for f in files]
    try:
        paths, _names = save_uploads(wrapped, upload_folder(rag, collection), limits or ApiSettings(),
                                     SUPPORTED_SUFFIXES)
    except ApiError as e:
        raise UploadRefused(e.message) from None
    return paths


class CallbackProgress:
    """`rag.report.Progress` that reports a 0..1 fraction and a line of text to `update`."""

    def __init__(self, update: Callable[[float, str], None]) -> None:
        self.update = update
        self.total = 0
        self.done = 0
        self.chunks = 0

    def start(self, total: int) -> None:
        self.total = total
        self.update(0.0, f"0 of {total} files")

    def file_done(self, result: Any) -> None:
        self.done += 1
        self.chunks += result.chunks
        self.update(self.done / max(1, self.total), f"{self.done} of {self.total} files · {self.chunks} chunks")

    def embedded(self, texts: int, tokens: int, seconds: float) -> None:
        pass

    def stage(self, name: str) -> None:
        self.update(self.done / max(1, self.total), f"{self.done} of {self.total} files · {name}")


def accepted_caption(suffixes: Iterable[str]) -> str:
    """The file endings ingestion reads, e.g. `Accepted: .csv, .docx, ... .txt`."""
    return "Accepted file endings: " + ", ".join(sorted(suffixes))


def document_label(rag: Any, collection: str, source: str) -> str:
    """An upload by its uploaded name; any other file by its path (relative to the working folder when
    under it), so the same file ingested from disk and uploaded is two rows one can tell apart."""
    path = Path(source)
    try:
        return str(path.resolve().relative_to(upload_folder(rag, collection)))
    except ValueError:
        pass
    cwd = Path.cwd().resolve()
    return str(path.relative_to(cwd)) if path.is_absolute() and path.is_relative_to(cwd) else source


def report_rows(report: IngestReport) -> list[dict[str, Any]]:
    """The per-file report: file, outcome (ok / skipped / failed / removed), chunks, reason."""
    return [{"file": Path(f.source).name, "outcome": f.outcome, "chunks": f.chunks,
             "reason": f.reason or (f"note: {f.note}" if f.note else "")} for f in report.files]


def document_rows(rag: Any, collection: str) -> list[dict[str, Any]]:
    """Every document of `collection` with its status, chunk count and (for failures) the reason."""
    return [{"id": d.id, "document": document_label(rag, collection, d.source_uri),
             "origin": "upload" if _is_upload(rag, collection, d.source_uri) else "file on disk",
             "status": d.status, "chunks": d.chunk_count, "type": d.media_type,
             "updated": d.updated_at.strftime("%Y-%m-%d %H:%M"), "error": d.error or "", "source": d.source_uri}
            for d in rag.documents(collection)]


def _is_upload(rag: Any, collection: str, source: str) -> bool:
    return Path(source).resolve().is_relative_to(upload_folder(rag, collection))


def create_collection(rag: Any, name: str) -> str:
    name = name.strip()
    if name in rag.store.collection_names():
        raise ConfigError(f"a collection named {name!r} already exists")
    return str(rag.store.collection(name, create=True).name)


def reingest_document(rag: Any, collection: str, document_id: int, progress: Any = None) -> Any:
    """Load, chunk and embed one document again from its file (after a fix, or a changed loader)."""
    doc = next((d for d in rag.documents(collection) if d.id == document_id), None)
    if doc is None:
        raise NotFoundError(f"no document with id {document_id} in collection {collection!r}")
    if not Path(doc.source_uri).is_file():
        raise NotFoundError(f"the file of {Path(doc.source_uri).name!r} is no longer at {doc.source_uri}; "
                            "upload it again")
    return rag.ingest([doc.source_uri], collection=collection, force=True, progress=progress)
