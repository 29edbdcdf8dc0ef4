"""A pool of loader processes, so one hostile file costs at most its own time and memory limit.

Each worker (`ingest.worker`) is a fresh interpreter (`python -m`, like
multiprocessing's "spawn": nothing is forked from a process holding torch's
threads), parses one file at a time and answers in JSON. A thread in the parent
hands out files, reads answers and kills a worker whose file has run past
`limits.file_timeout_s`; a killed or dead worker is replaced and the batch goes
on. Workers start once per process and are shared by every ingestion in it
(the CLI, each HTTP API job, the app), so a server never parses an upload in
its own process.

Example:
    >>> pool = shared_pool(settings.limits)
    >>> fut = pool.submit(Path("big.docx"), "big.docx", max_bytes=50 << 20)
    >>> fut.result().reason
    'entry word/document.xml expands 370x (...), over limits.max_zip_ratio = 100 (...)'
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import rag_platform
from rag.config import LimitsSettings, OcrSettings
from rag.errors import LoaderError, RagError
from rag_platform.ingest.sources import FileItem, Item
from rag_platform.ingest.worker import Loaded, load_captured, memory_reason

log = logging.getLogger(__name__)
RECYCLE_RSS_MB = 1024  # a worker left this large by one file is replaced, returning the memory
_ROOT = str(Path(rag_platform.__file__).resolve().parent.parent)  # where `rag_platform` imports from


@dataclass
class _Task:
    id: int
    path: str
    source: str
    max_bytes: int
    future: Future[Loaded]
    ocr: dict[str, Any] | None = None  # OcrSettings as JSON; None: OCR as by default


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]
    buf: bytearray = field(default_factory=bytearray)
    ready: bool = False
    task: _Task | None = None
    deadline: float = 0.0

    @property
    def fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LoaderPool:
    """Worker processes that load files under `limits`; `submit` returns a Future of `Loaded`."""

    def __init__(self, limits: LimitsSettings, size: int | None = None) -> None:
        self.limits = limits
        self.size = max(1, size or limits.workers or cores())
        self._pending: deque[_Task] = deque()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._ids = 0
        self._closed = False
        self._startup_failures = 0
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="rag-loader-pool", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, path: Path, source: str, max_bytes: int, ocr: OcrSettings | None = None) -> Future[Loaded]:
        fut: Future[Loaded] = Future()
        with self._lock:
            if self._closed:
                raise RagError("the loader pool is closed")
            self._ids += 1
            self._pending.append(_Task(self._ids, str(path), source, max_bytes, fut,
                                       ocr.model_dump(mode="json") if ocr is not None else None))
        os.write(self._wake_w, b"x")
        return fut

    def close(self) -> None:
        """Stop the workers (their stdin closes, a straggler is killed) and the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=10)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers]

    # ---- the dispatcher thread ----

    def _loop(self) -> None:
        try:
            while not self._closed:
                self._dispatch()
                busy = [w.deadline for w in self._workers if w.task is not None]
                timeout = max(0.0, min(busy) - time.monotonic()) if busy else None
                for key, _ in self._sel.select(timeout):
                    if key.data is None:
                        os.read(self._wake_r, 4096)
                    else:
                        self._readable(key.data)
                self._expire()
        except BaseException as exc:  # noqa: BLE001 - never leave a caller waiting on a dead thread
            log.exception("loader pool stopped")
            self._fail_all(f"the loader pool stopped: {type(exc).__name__}: {exc}")
        finally:
            for w in list(self._workers):
                self._finish(w, Loaded(None, "the loader pool stopped before this file was parsed"))
                self._stop(w)
            self._fail_all("the loader pool was closed")

    def _dispatch(self) -> None:
        with self._lock:
            if self._startup_failures >= 3:
                self._fail_all_locked("loader worker processes fail to start; see the log")
                return
            while self._pending and len(self._workers) < self.size and \
                    sum(1 for w in self._workers if w.task is None) < len(self._pending):
                self._spawn()
            for w in self._workers:
                if not self._pending:
                    break
                if w.ready and w.task is None:
                    task = self._pending.popleft()
                    if not task.future.set_running_or_notify_cancel():
                        continue  # cancelled: the caller gave up on it
                    self._send(w, task)

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2",
                   TOKENIZERS_PARALLELISM="false")
        err = tempfile.TemporaryFile()
        proc = subprocess.Popen([sys.executable, "-m", "rag_platform.ingest.worker", str(os.getpid())], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, env=env, close_fds=True)
        w = _Worker(proc, err)
        os.set_blocking(w.fd, False)
        self._workers.append(w)
        self._sel.register(w.fd, selectors.EVENT_READ, w)
        self._write(w, {"limits": self.limits.model_dump()})

    def _write(self, w: _Worker, msg: dict[str, Any]) -> None:
        body = json.dumps(msg).encode("utf-8")
        try:
            assert w.proc.stdin is not None
            w.proc.stdin.write(len(body).to_bytes(8, "big") + body)
            w.proc.stdin.flush()
        except OSError:
            pass  # it died; its closed stdout tells the loop

    def _send(self, w: _Worker, task: _Task) -> None:
        w.task, w.deadline = task, time.monotonic() + self.limits.file_timeout_s
        self._write(w, {"id": task.id, "path": task.path, "source": task.source, "max_bytes": task.max_bytes,
                        "ocr": task.ocr})

    def _readable(self, w: _Worker) -> None:
        try:
            chunk = os.read(w.fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._died(w)
            return
        w.buf += chunk
        limit = 16 * self.limits.max_text_chars + (16 << 20)  # JSON of the text, escaped, plus segments
        while len(w.buf) >= 8:
            size = int.from_bytes(w.buf[:8], "big")
            if size > limit:
                self._finish(w, Loaded(None, "the loader returned an oversized result"))
                self._stop(w)
                return
            if len(w.buf) < 8 + size:
                return
            msg = json.loads(bytes(w.buf[8:8 + size]))
            del w.buf[:8 + size]
            if msg.get("ready"):
                w.ready = True
                self._startup_failures = 0
                continue
            loaded = Loaded.from_json(msg)
            self._finish(w, loaded)
            if loaded.memory or float(msg.get("rss_mb") or 0) > RECYCLE_RSS_MB:
                self._stop(w)
                return

    def _finish(self, w: _Worker, loaded: Loaded) -> None:
        task, w.task = w.task, None
        if task is not None and not task.future.done():
            task.future.set_result(loaded)

    def _expire(self) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            if w.task is not None and now >= w.deadline:
                t = self.limits.file_timeout_s
                self._finish(w, Loaded(None, f"took longer than {t:g} s to parse, over limits.file_timeout_s = "
                                             f"{t:g} (raise RAG_LIMITS__FILE_TIMEOUT_S to allow more)", seconds=t))
                self._stop(w)

    def _died(self, w: _Worker) -> None:
        code = self._stop(w)
        if not w.ready:
            self._startup_failures += 1
            w.stderr.seek(0)
            tail = w.stderr.read()[-2000:].decode("utf-8", "replace")
            log.error("a loader worker exited during startup (code %s): %s", code, tail)
        if w.task is not None:
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            self._finish(w, Loaded(None, f"the loader process died ({how}) while parsing it: a parser crashed "
                                         f"or ran out of memory ({memory_reason(self.limits)})", memory=True))

    def _stop(self, w: _Worker) -> int | None:
        """Kill and reap a worker; the caller answers its file, if it had one."""
        if w in self._workers:
            self._workers.remove(w)
            self._sel.unregister(w.fd)
        if w.proc.poll() is None:
            w.proc.kill()
        code = w.proc.wait()
        for fh in (w.proc.stdin, w.proc.stdout, w.stderr):
            try:
                if fh is not None:
                    fh.close()
            except OSError:
                pass
        return code

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._fail_all_locked(reason)

    def _fail_all_locked(self, reason: str) -> None:
        while self._pending:
            task = self._pending.popleft()
            if task.future.set_running_or_notify_cancel():
                task.future.set_result(Loaded(None, reason))


Pending = Future[Loaded] | None
"""A file handed to the pool, or None: loaded in this process when its result is asked for."""


class FileLoading:
    """Where one ingestion's items are loaded: the shared pool (files), or this process.

    Already-loaded texts (`TextItem`) and every item when `limits.isolate` is
    false are loaded in this process, with the same checks and captured notes.
    """

    def __init__(self, limits: LimitsSettings, max_bytes: int) -> None:
        self.limits, self.max_bytes = limits, max_bytes

    def start(self, group: list[tuple[Item, str, int]]) -> list[Pending]:
        files = [item for item, _h, _s in group if isinstance(item, FileItem)]
        pool = shared_pool(self.limits) if self.limits.isolate and files else None
        return [pool.submit(item.path, item.source, self.max_bytes, item.ocr) if pool and isinstance(item, FileItem)
                else None for item, _h, _s in group]

    def result(self, item: Item, pending: Pending) -> Loaded:
        if pending is not None:
            return pending.result()
        if isinstance(item, FileItem):
            return load_captured(item.path, item.source, self.max_bytes, self.limits, item.ocr)
        t0 = time.perf_counter()
        try:
            return Loaded(item.load(self.max_bytes), seconds=time.perf_counter() - t0)
        except LoaderError as exc:
            return Loaded(None, exc.reason, seconds=time.perf_counter() - t0)
        except RagError as exc:
            return Loaded(None, str(exc), seconds=time.perf_counter() - t0)

    @staticmethod
    def cancel(pending: list[Pending]) -> None:
        """Drop files not yet handed to a worker (the run stopped early)."""
        for fut in pending:
            if fut is not None:
                fut.cancel()


_POOLS: dict[str, LoaderPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(limits: LimitsSettings) -> LoaderPool:
    """The process's pool for these limits, started on first use and kept for later ingestions."""
    key = limits.model_dump_json()
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = _POOLS[key] = LoaderPool(limits)
        return pool


@atexit.register
def close_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()
