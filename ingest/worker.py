"""One file's load with its library warnings captured, and the worker process that runs it.

`load_captured` is what both paths call: the bounded worker processes
(`ingest.workers`, the default) and the in-process path (`limits.isolate=false`).
Warnings the parsers emit (pypdf's "EOF marker not found", bs4's
XMLParsedAsHTMLWarning) become the file's `note` in the report instead of
lines on the terminal.

The worker (`python -m ingest.worker PARENT_PID`) talks to its parent in
length-prefixed JSON frames over its stdin and a private copy of its stdout
(never pickle: the worker parses hostile input). It caps its own address space
(`RLIMIT_AS`, above what it holds after importing the parsers), dies with its
parent (`PR_SET_PDEATHSIG`), and leaves after a `MemoryError`; the parent
enforces the wall-clock limit by killing it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

if __name__ == "__main__" and "rag" not in sys.modules:
    # The worker needs only rag's leaf modules (config, errors, types): register the package without
    # running rag/__init__ (the API, SQLAlchemy, the stores), which halves a worker's start-up.
    import importlib.util
    import types

    _spec = importlib.util.find_spec("rag")
    if _spec is not None and _spec.submodule_search_locations is not None:
        _pkg = types.ModuleType("rag")
        _pkg.__path__ = list(_spec.submodule_search_locations)
        _pkg.__spec__ = _spec
        sys.modules["rag"] = _pkg

from rag.config import LimitsSettings, OcrSettings  # noqa: E402
from rag.errors import LoaderError, RagError  # noqa: E402
from rag.types import ParsedDocument, Segment  # noqa: E402

_LIBRARY_LOGGERS = ("pypdf", "trafilatura", "htmldate", "courlan", "charset_normalizer", "docx", "pptx",
                    "openpyxl", "bs4", "PIL", "lxml")
MAX_NOTES = 3


@dataclass
class Loaded:
    """What loading one file gave: the document, or why not; notes; its time and peak memory."""

    doc: ParsedDocument | None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_mb: float = 0.0
    memory: bool = False  # failed for want of memory: the worker leaves after reporting it

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) if self.notes else None

    def to_json(self) -> dict[str, Any]:
        d = self.doc
        doc = None if d is None else {
            "source": d.source, "media_type": d.media_type, "text": d.text, "title": d.title,
            "metadata": d.metadata, "segments": [[s.start, s.end, s.page, list(s.heading_path)] for s in d.segments]}
        return {"doc": doc, "reason": self.reason, "notes": self.notes, "seconds": self.seconds,
                "peak_mb": self.peak_mb, "memory": self.memory}

    @classmethod
    def from_json(cls, msg: dict[str, Any]) -> Loaded:
        d = msg.get("doc")
        doc = None if d is None else ParsedDocument(
            source=str(d["source"]), media_type=str(d["media_type"]), text=str(d["text"]), title=d.get("title"),
            metadata=dict(d.get("metadata") or {}),
            segments=tuple(Segment(int(a), int(b), p if p is None else int(p), tuple(str(h) for h in path))
                           for a, b, p, path in d["segments"]))
        return cls(doc, msg.get("reason"), [str(n) for n in msg.get("notes") or []][:MAX_NOTES],
                   float(msg.get("seconds") or 0), float(msg.get("peak_mb") or 0), bool(msg.get("memory")))


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name.split('.')[0]}: {record.getMessage()}")


@contextmanager
def captured_notes() -> Iterator[list[str]]:
    """Collect library warnings and WARNING log records instead of printing them; yields the list.

    Not thread-safe (warnings filters are process-wide): fine in a worker, and
    in-process loading happens on one thread at a time.
    """
    notes: list[str] = []
    handler = _Collect(notes)
    saved = []
    for name in _LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.propagate))
        lg.addHandler(handler)
        lg.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield notes
            finally:
                notes.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for lg, propagate in saved:
            lg.removeHandler(handler)
            lg.propagate = propagate
        unique = list(dict.fromkeys(" ".join(n.split())[:200] for n in notes))
        notes[:] = unique[:MAX_NOTES] + ([f"(+{len(unique) - MAX_NOTES} more)"] if len(unique) > MAX_NOTES else [])


def memory_reason(limits: LimitsSettings) -> str:
    mb = limits.file_memory_mb
    size = f"{mb // 1024} GB" if mb % 1024 == 0 else f"{mb:,} MB"
    return (f"needed more than {size} of memory to parse, over limits.file_memory_mb = {mb:,} "
            "(raise RAG_LIMITS__FILE_MEMORY_MB to allow it)")


def _is_memory(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MemoryError) or "memory allocation failed" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def load_captured(path: Path, source: str, max_bytes: int, limits: LimitsSettings,
                  ocr: OcrSettings | None = None) -> Loaded:
    """Load one file with the checks of `limits`; never raises for a bad file."""
    from rag_platform.ingest.loaders import load_file

    t0 = time.perf_counter()
    doc, reason, memory = None, None, False
    with captured_notes() as notes:
        try:
            doc = load_file(path, max_bytes=max_bytes, source=source, limits=limits, ocr=ocr)
        except Exception as exc:  # noqa: BLE001 - a bad file must come back as a reason, whatever broke
            memory = _is_memory(exc)
            reason = (memory_reason(limits) if memory else exc.reason if isinstance(exc, LoaderError)
                      else str(exc) if isinstance(exc, RagError)
                      else f"could not parse: {type(exc).__name__}: {exc}"[:500])
    return Loaded(doc, reason, notes, time.perf_counter() - t0, memory=memory)


# ---- the worker process -------------------------------------------------------------------------

def write_frame(out: BinaryIO, msg: dict[str, Any]) -> None:
    body = json.dumps(msg, ensure_ascii=False, default=str).encode("utf-8")
    out.write(len(body).to_bytes(8, "big") + body)
    out.flush()


def read_frame(inp: BinaryIO) -> dict[str, Any] | None:
    head = inp.read(8)
    if len(head) < 8:
        return None
    body = inp.read(int.from_bytes(head, "big"))
    return json.loads(body)  # type: ignore[no-any-return]


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001, S110 - not Linux: the closed stdin still ends the worker
        pass
    if os.getppid() != parent:
        os._exit(0)


def _vm_kb(field_name: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    try:  # "5" resets VmHWM, so the peak is this file's (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _warm() -> None:
    """Import every parser now, so its memory is part of the baseline the limit is added to."""
    import bs4  # noqa: F401
    import charset_normalizer  # noqa: F401
    import docx  # noqa: F401
    import lxml.etree  # noqa: F401
    import openpyxl  # noqa: F401
    import pptx  # noqa: F401
    import pypdf  # noqa: F401
    import trafilatura  # noqa: F401

    import rag_platform.ingest.loaders  # noqa: F401


def serve(parent: int) -> None:
    """The worker loop: a config frame, then one task frame per file, each answered with a result frame."""
    _die_with_parent(parent)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's print() must not corrupt the frames
    inp = sys.stdin.buffer
    config = read_frame(inp)
    if config is None:
        return
    limits = LimitsSettings(**config["limits"])
    logging.basicConfig(level=logging.WARNING)
    _warm()
    if sys.platform.startswith("linux"):
        import resource

        cap = _vm_kb("VmSize") * 1024 + limits.file_memory_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    write_frame(out, {"ready": True, "pid": os.getpid(), "rss_mb": _vm_kb("VmRSS") / 1024})
    while (task := read_frame(inp)) is not None:
        _reset_peak()
        ocr = OcrSettings(**task["ocr"]) if task.get("ocr") else None
        loaded = load_captured(Path(task["path"]), task["source"], int(task["max_bytes"]), limits, ocr)
        loaded.peak_mb = _vm_kb("VmHWM") / 1024
        msg = loaded.to_json()
        msg["id"], msg["rss_mb"] = task["id"], _vm_kb("VmRSS") / 1024
        loaded = None  # type: ignore[assignment]
        try:
            write_frame(out, msg)
        except MemoryError:
            msg = {"id": task["id"], "doc": None, "reason": memory_reason(limits), "memory": True}
            write_frame(out, msg)
        if msg["memory"]:
            return  # after a MemoryError the heap may be in a poor state: the parent starts a fresh worker


if __name__ == "__main__":
    serve(int(sys.argv[1]))
