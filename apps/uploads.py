"""Uploads as the HTTP API and the Streamlit app both handle them: limits, safe saving, where they live.

Both front ends save uploads the same way (sanitised unique names, type and size checked before
a byte lands, all or nothing) under `<home>/uploads/<collection>/`, and remove a document's
uploaded copy, or a collection's upload folder, with the document or collection. So the code
lives here, above `apps.api` and `apps.ui`, and neither imports the other.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from rag import RAG


class ApiSettings(BaseSettings):
    """HTTP-only settings (env `RAG_API__*`); the library's `Settings` knows nothing of HTTP.

    Example:
        >>> ApiSettings(rate_per_s=5, burst=10).burst
        10
    """

    model_config = SettingsConfigDict(env_prefix="RAG_API__", extra="ignore")

    auth: bool = Field(True, description="Require an API key; false only for local experiments.")
    rate_per_s: float = Field(50.0, gt=0, description="Sustained requests per second per key.")
    burst: int = Field(100, ge=1, description="Requests a key may make at once before it is slowed.")
    max_upload_mb: float = Field(50.0, gt=0, description="Largest single uploaded file.")
    max_files: int = Field(20, ge=1, description="Most files in one upload request.")
    max_json_kb: int = Field(256, ge=1, description="Largest JSON request body.")
    ingest_process: bool = Field(True, description="Ingest uploads in a second process (searches keep their "
                                 "latency while it runs); false: in a thread of the server. A server given an "
                                 "embedder object rather than settings always uses the thread.")
    ingest_nice: int = Field(10, ge=0, le=19, description="OS priority (nice) of that process: it gets the "
                             "cores the searches leave.")
    ingest_idle_s: float = Field(300.0, ge=0, description="That process leaves after this many seconds without a "
                                 "job, returning its memory (a second copy of the embedding model); 0 keeps it.")
    watch_roots: list[Path] = Field(default_factory=list, description="Folders under which a watched folder "
                                    "may be registered (POST /v1/collections/{c}/watches); none refuses all.")


class ApiError(Exception):
    """A refusal with its HTTP status, a machine-readable type and a message a developer can act on."""

    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message}}


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def sanitize_filename(name: str | None, *, max_len: int = 120) -> str:
    """A safe base name: no folders, no `..`, no control or shell characters, no leading dot.

    Example:
        >>> sanitize_filename("../../etc/passwd")
        'passwd'
        >>> sanitize_filename("C:\\\\x\\\\Report (final).pdf")
        'Report _final_.pdf'
    """
    raw = unicodedata.normalize("NFKC", name or "")
    base = re.split(r"[\\/]", raw)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    stem, dot, suffix = base.rpartition(".")
    if dot and len(base) > max_len:
        base = stem[: max_len - len(suffix) - 1] + "." + suffix
    base = base[:max_len].lstrip(".-_ ")
    return base or "upload"


def check_suffix(name: str, allowed: frozenset[str]) -> str:
    """The lower-case suffix of `name`, or a 415 naming the types we accept."""
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if suffix not in allowed:
        raise ApiError(415, "unsupported_file_type",
                       f"file {name!r} has type {suffix or '(no suffix)'!r}, which cannot be ingested; "
                       f"allowed: {', '.join(sorted(allowed))}")
    return suffix


def save_uploads(files: list[Any], folder: Path, settings: ApiSettings,
                 allowed: frozenset[str]) -> tuple[list[Path], dict[str, str]]:
    """Save uploaded files under `folder` with safe, unique names; all of them or none.

    Every name and type is checked before a byte is written; each file is written to a
    temporary name and counted, so one oversize file (413) leaves nothing behind and never
    replaces an earlier upload of the same name. Returns the paths and path -> original name.
    """
    if len(files) > settings.max_files:
        raise ApiError(413, "payload_too_large", f"{len(files)} files in one upload; the limit is "
                       f"{settings.max_files} (RAG_API__MAX_FILES)")
    planned: list[tuple[Any, str]] = []
    taken: set[str] = set()
    for f in files:
        safe = sanitize_filename(f.filename)
        check_suffix(safe, allowed)
        stem, _, suffix = safe.rpartition(".")
        n = 1
        while safe.lower() in taken:
            n += 1
            safe = f"{stem}-{n}.{suffix}"
        taken.add(safe.lower())
        planned.append((f, safe))
    folder.mkdir(parents=True, exist_ok=True)
    limit = int(settings.max_upload_mb * 1e6)
    parts: list[tuple[Path, Path, str]] = []
    try:
        for f, safe in planned:
            tmp = folder / f".{uuid.uuid4().hex}.part"
            parts.append((tmp, folder / safe, f.filename or safe))
            size = 0
            with tmp.open("wb") as out:
                while chunk := f.file.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise too_large(f"file {safe!r}", size, limit, "RAG_API__MAX_UPLOAD_MB")
                    out.write(chunk)
    except BaseException:
        for tmp, _, _ in parts:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, dest, _ in parts:
        tmp.replace(dest)
    return [dest for _, dest, _ in parts], {str(dest): name for _, dest, name in parts}


def too_large(what: str, size: int, limit: int, setting: str) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"{what} is {size / 1e6:.2f} MB, over the limit of {limit / 1e6:.2f} MB; "
                    f"send less or raise {setting}")


def uploads_root(rag: RAG) -> Path:
    """`<home>/uploads`, resolved: every collection's upload folder lies inside it."""
    return Path(rag.settings.home).resolve() / "uploads"


def upload_folder(rag: RAG, collection: str) -> Path:
    """Where uploads for `collection` are saved (the name is checked, so the path stays inside the root)."""
    from rag.store.base import check_collection_name

    return uploads_root(rag) / check_collection_name(collection)


def delete_collection(rag: RAG, name: str) -> None:
    """The collection, its index and its uploaded files."""
    rag.delete_collection(name)  # checks the name first, so the rmtree stays inside uploads/
    shutil.rmtree(upload_folder(rag, name), ignore_errors=True)


def delete_document(rag: RAG, collection: str, document_id: int) -> str:
    """Remove one document; its uploaded copy goes too (a file elsewhere on disk is left alone). Returns its source."""
    source = rag.delete_document(collection, document_id)
    path = Path(source)
    if path.resolve().is_relative_to(upload_folder(rag, collection)):
        path.unlink(missing_ok=True)
    return source
