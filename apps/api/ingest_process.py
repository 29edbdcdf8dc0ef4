"""The server's ingestion process: uploads and watched folders are chunked, embedded and written beside the server.

An ingest in a thread of the server shares its interpreter lock with every search, and on 2 cores
a search's p99 rose 5-6x while a 10k-chunk upload ran (`bench/ingest_beside_search.py`). In a
second process at a lower OS priority (`RAG_API__INGEST_NICE`, default 10) it was 1.6-2.1x: the
searches keep the interpreter and get the cores first, and the ingest still uses every cycle
they leave. The process opens the same data home (the ledger and the index are built for
several processes) and the server's searches pick its segments up when it publishes them.

One long-lived process serves every job in turn (an upload's ingest, a watched folder's sync
pass), so the embedding model loads once. It starts with the first job and leaves after
`RAG_API__INGEST_IDLE_S` without one (it holds a second copy of the model: about 470 MB RSS
beside a 500 MB server here). It speaks length-prefixed JSON frames over stdin and a private
copy of stdout (never pickle), dies with the server (`PR_SET_PDEATHSIG`), and is started again
after it dies; the job it was running fails with a message, and the ledger keeps what was
committed before. The settings travel in the first frame, secrets included: a pipe between
the two processes, never a command line or a log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr

import rag_platform

from rag.config import Settings
from rag.errors import RagError
from rag.report import FileResult, IngestReport
from rag_platform.ingest.sources import FileItem
from rag_platform.ingest.sync import SyncReport, sync_changed
from rag_platform.ingest.worker import read_frame, write_frame

log = logging.getLogger("rag.api.ingest")
_ROOT = str(Path(rag_platform.__file__).resolve().parent.parent)  # where `rag_platform` imports from


def _secret(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def settings_frame(settings: Settings) -> dict[str, Any]:
    """Settings as JSON the child validates back, secrets in clear (they travel over a private pipe)."""
    return {"settings": json.loads(json.dumps(settings.model_dump(mode="python"), default=_secret))}


def report_to_json(report: IngestReport) -> dict[str, Any]:
    out = {f.name: getattr(report, f.name) for f in fields(report)}
    return {**out, "files": [vars(f) for f in report.files], "stage_seconds": dict(report.stage_seconds)}


def report_from_json(msg: dict[str, Any]) -> IngestReport:
    return IngestReport(**{**msg, "files": [FileResult(**f) for f in msg["files"]],
                           "stage_seconds": Counter(msg["stage_seconds"])})


def sync_to_json(report: SyncReport) -> dict[str, Any]:
    out = {f.name: getattr(report, f.name) for f in fields(report)}
    out["ingest"] = report_to_json(report.ingest) if report.ingest is not None else None
    return out


def sync_from_json(msg: dict[str, Any]) -> SyncReport:
    return SyncReport(**{**msg, "moved": [tuple(m) for m in msg["moved"]],
                         "failed": [tuple(f) for f in msg["failed"]],
                         "ingest": report_from_json(msg["ingest"]) if msg["ingest"] is not None else None})


class IngestProcess:
    """Runs `RAG.ingest` jobs in one child process at OS priority `nice`; one job at a time."""

    def __init__(self, settings: Settings, *, nice: int = 10, idle_s: float = 300.0) -> None:
        self.settings = settings
        self.nice = nice
        self.idle_s = idle_s  # the child leaves after this long without a job (0: it stays)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._idle: threading.Timer | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["HF_HUB_OFFLINE"] = "1"
        nice = self.nice
        proc = subprocess.Popen([sys.executable, "-m", "rag_platform.apps.api.ingest_process", str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
                                preexec_fn=(lambda: os.nice(nice)) if nice > 0 else None)  # noqa: PLW1509
        assert proc.stdin is not None
        write_frame(proc.stdin, settings_frame(self.settings))
        return proc

    def ingest(self, paths: list[Path], *, collection: str) -> IngestReport:
        """Ingest `paths` into `collection` in the child; its RagError comes back as one."""
        answer = self._call({"collection": collection, "paths": [str(p) for p in paths]})
        return report_from_json(answer["report"])

    def sync(self, files: list[FileItem], roots: list[Path], collection: str) -> SyncReport:
        """One watched-folder pass (`ingest.sync.sync_changed`) in the child."""
        answer = self._call({"collection": collection, "sync": [[str(f.path), f.source] for f in files],
                             "roots": [str(r) for r in roots]})
        return sync_from_json(answer["sync"])

    def _call(self, job: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._idle is not None:
                self._idle.cancel()
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                write_frame(proc.stdin, job)
                answer = read_frame(proc.stdout)
            except (BrokenPipeError, OSError, ValueError):
                answer = None
            if answer is None:
                code = proc.wait(timeout=30)
                self._proc = None
                raise RagError(f"the ingestion process ended (exit code {code}) while writing into "
                               f"{job['collection']!r}; documents committed before that are kept, and the "
                               f"next job starts a new process (see the server log)")
            if self.idle_s > 0:  # its memory (a second copy of the model) goes back while nobody uploads
                self._idle = threading.Timer(self.idle_s, self._retire, args=(proc,))
                self._idle.daemon = True
                self._idle.start()
        if "error" in answer:
            raise RagError(answer["error"])
        return answer

    def _retire(self, proc: subprocess.Popen[bytes]) -> None:
        """The idle timer: close the child if it is still the one that went idle (no job came since)."""
        with self._lock:
            if self._proc is not proc:
                return
            self._proc = None
        _end(proc, 30.0)

    def close(self, timeout_s: float = 30.0) -> None:
        """Let the child finish its job and leave; killed after `timeout_s`."""
        with self._lock:
            proc, self._proc = self._proc, None
            if self._idle is not None:
                self._idle.cancel()
        if proc is not None:
            _end(proc, timeout_s)


def _end(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Close the child's stdin (it leaves after its job) and wait; kill it after `timeout_s`."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def serve(parent: int, inp: IO[bytes], out: IO[bytes]) -> None:
    """The child: open the home once, then one job per frame until stdin closes."""
    from rag import RAG
    from rag_platform.ingest.worker import _die_with_parent

    _die_with_parent(parent)
    first = read_frame(inp)
    if first is None:
        return
    rag = RAG.open(settings=Settings.model_validate(first["settings"]))
    while (job := read_frame(inp)) is not None:
        try:
            if "sync" in job:
                files = [FileItem(Path(p), src) for p, src in job["sync"]]
                synced = sync_changed(rag, files, [Path(r) for r in job["roots"]], collection=job["collection"])
                write_frame(out, {"sync": sync_to_json(synced)})
                continue
            report = rag.ingest([Path(p) for p in job["paths"]], collection=job["collection"])
            write_frame(out, {"report": report_to_json(report)})
        except RagError as e:
            write_frame(out, {"error": str(e)})
        except Exception:
            log.exception("ingestion into %r failed", job.get("collection"))
            write_frame(out, {"error": "internal error during ingestion; see the server log"})


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="ingest process: %(levelname)s %(name)s: %(message)s")
    out = os.fdopen(os.dup(1), "wb")  # the frames' channel: a library printing to stdout cannot corrupt it
    os.dup2(2, 1)
    serve(int(sys.argv[1]), sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
