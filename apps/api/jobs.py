"""Background ingestion jobs: an upload returns at once, a client polls `GET /v1/jobs/{id}`.

One worker thread runs the jobs in order, so two uploads never write the same
collection's ledger and index at once (the index swap itself is atomic, and
readers keep searching the previous version while a job runs). The thread hands
each job to the server's ingestion process (`ingest_process.IngestProcess`) when
there is one, so the ingest does not compete with searches for the interpreter. Jobs live in
memory: the durable record of every run is the ledger's `ingest_runs` table,
whose id each finished job reports as `run_id`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rag.errors import NotFoundError, RagError
from rag.report import IngestReport
from rag_platform.apps.api.ingest_process import IngestProcess

log = logging.getLogger("rag.api.jobs")

Status = Literal["queued", "running", "done", "failed"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    """One ingestion of uploaded files; `report` holds the per-file outcomes once done."""

    id: str
    collection: str
    files: list[str]
    status: Status = "queued"
    report: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "collection": self.collection, "status": self.status, "files": self.files,
                "report": self.report, "error": self.error, "created_at": self.created_at.isoformat(),
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


def report_json(report: IngestReport, names: dict[str, str]) -> dict[str, Any]:
    """An IngestReport as JSON; `names` maps saved paths back to the uploaded file names."""
    files = [{"file": names.get(f.source, Path(f.source).name), "source": f.source, "outcome": f.outcome,
              "reason": f.reason, "note": f.note, "chunks": f.chunks,
              "seconds": round(f.seconds, 4)} for f in report.files]
    return {"run_id": report.run_id, "summary": report.summary(), "files": files,
            "chunks_added": report.chunks_added, "index_rebuilt": report.index_rebuilt,
            "seconds": round(report.seconds, 3)}


class JobRunner:
    """Runs ingestion jobs one at a time on a background thread; keeps the last `keep` jobs."""

    def __init__(self, rag: Any, *, on_report: Callable[[Any], None] | None = None, keep: int = 1000,
                 process: IngestProcess | None = None) -> None:
        self.rag = rag
        self.process = process  # None: jobs run in the worker thread itself
        self.on_report = on_report
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-ingest")
        self.writes = threading.Lock()  # held by each job and each watched folder's sync pass

    def submit(self, collection: str, paths: list[Path], names: dict[str, str]) -> Job:
        """Queue `paths` (already saved and checked) for ingestion into `collection`."""
        job = Job(id=uuid.uuid4().hex, collection=collection, files=[names.get(str(p), p.name) for p in paths])
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job, paths, names)
        return job

    def _run(self, job: Job, paths: list[Path], names: dict[str, str]) -> None:
        job.status, job.started_at = "running", _now()
        try:
            with self.writes:
                if self.process is not None:
                    report = self.process.ingest(paths, collection=job.collection)
                else:
                    report = self.rag.ingest(paths, collection=job.collection)
            job.report = report_json(report, names)
            if self.on_report is not None:
                self.on_report(report)
            job.status = "done"
        except RagError as e:
            job.status, job.error = "failed", str(e)
        except Exception:
            log.exception("ingestion job %s into %r failed", job.id, job.collection)
            job.status, job.error = "failed", "internal error during ingestion; see the server log"
        finally:
            job.finished_at = _now()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r} (jobs are kept in memory for the last {self.keep} "
                                f"uploads; a finished run's report is also in the ledger's ingest_runs)")
        return job

    def wait(self, job_id: str, timeout_s: float = 60.0) -> Job:
        """Block until the job ends (tests and scripts)."""
        import time

        deadline = time.monotonic() + timeout_s
        job = self.get(job_id)
        while job.status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
        if self.process is not None:
            self.process.close()
