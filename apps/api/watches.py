"""Watched folders over HTTP: a folder registered for a collection stays in sync by itself.

Each registration runs `ingest.watch.watch_folders` (a full pass, then one
pass per settled change) on its own background thread, started with the app
and stopped with it. Registrations outlive a restart: they are kept in
`<home>/watches.json` (written to a temporary file, then renamed) and started
again when the app starts.

Making the server read a folder is an administrator's act on the machine, so:
only a key for every collection (`*`) with the admin role may add or remove
one; the folder must resolve (symlinks followed) to an existing directory
inside one of `RAG_API__WATCH_ROOTS` (none by default, which refuses every
registration); and it may neither hold the data home nor overlap a folder
already watched for the same collection. Passes share the upload jobs' lock,
so the API writes with one writer at a time.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from rag.errors import NotFoundError
from rag_platform.apps.api.state import Key, Reader, State
from rag_platform.apps.uploads import ApiError

log = logging.getLogger("rag.api.watches")


class WatchIn(BaseModel):
    path: str = Field(min_length=1, max_length=4096, description="Absolute folder on the server.")
    glob: str | None = Field(None, max_length=200, description="Only files matching this pattern, e.g. '*.pdf'.")


@dataclass
class Watch:
    """One registered folder and what its thread last did."""

    id: str
    collection: str
    path: str
    glob: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    state: str = "starting"  # starting -> watching -> stopped | failed
    passes: int = 0
    last_sync: dict[str, Any] | None = None
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def saved(self) -> dict[str, Any]:
        return {"id": self.id, "collection": self.collection, "path": self.path, "glob": self.glob,
                "created_at": self.created_at}

    def to_json(self) -> dict[str, Any]:
        return {**self.saved(), "state": self.state, "passes": self.passes, "last_sync": self.last_sync,
                "error": self.error}


class FolderWatches:
    """The registered folders of one app; `start()` and `shutdown()` follow its lifespan."""

    def __init__(self, rag: Any, roots: list[Path], guard: threading.Lock, *, settle_s: float = 1.0,
                 process: Any = None) -> None:
        self.rag, self.guard, self.settle_s = rag, guard, settle_s
        self.process = process  # the server's IngestProcess: sync passes run there (None: in the watch's thread)
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        self.home = Path(rag.settings.home).resolve()
        self.file = self.home / "watches.json"
        self._watches: dict[str, Watch] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start a thread for every registration kept in `watches.json`."""
        try:
            saved = json.loads(self.file.read_text(encoding="utf-8")) if self.file.exists() else []
        except (OSError, ValueError) as exc:
            log.error("cannot read %s (%s): no folder is watched until it is fixed or removed", self.file, exc)
            saved = []
        for row in saved:
            try:
                watch = Watch(id=str(row["id"]), collection=str(row["collection"]), path=str(row["path"]),
                              glob=row.get("glob"), created_at=str(row.get("created_at", "")))
            except (KeyError, TypeError, AttributeError):
                log.error("skipping a malformed entry in %s: %r", self.file, row)
                continue
            with self._lock:
                self._watches[watch.id] = watch
            self._run(watch)

    def add(self, collection: str, path: str, glob: str | None) -> Watch:
        folder = self._check(collection, path)
        watch = Watch(id=uuid.uuid4().hex[:12], collection=collection, path=str(folder), glob=glob)
        with self._lock:
            self._watches[watch.id] = watch
            self._save()
        self._run(watch)
        return watch

    def of(self, collection: str) -> list[Watch]:
        with self._lock:
            return [w for w in self._watches.values() if w.collection == collection]

    def remove(self, collection: str, watch_id: str) -> Watch:
        with self._lock:
            watch = self._watches.get(watch_id)
            if watch is None or watch.collection != collection:
                raise NotFoundError(f"no watched folder {watch_id!r} in collection {collection!r}; "
                                    f"list them with GET /v1/collections/{collection}/watches")
            del self._watches[watch_id]
            self._save()
        self._stop([watch])
        return watch

    def drop_collection(self, collection: str) -> None:
        """Stop and forget a collection's watches (before the collection is deleted)."""
        with self._lock:
            gone = [w for w in self._watches.values() if w.collection == collection]
            for w in gone:
                del self._watches[w.id]
            if gone:
                self._save()
        self._stop(gone)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every thread; a pass in progress finishes first. Registrations stay saved."""
        with self._lock:
            watches = list(self._watches.values())
        self._stop(watches, timeout_s)

    # -- inside --------------------------------------------------------------------------
    def _check(self, collection: str, raw: str) -> Path:
        if not self.roots:
            raise ApiError(403, "forbidden", "this server watches no folders: set RAG_API__WATCH_ROOTS to the "
                           "folders under which watched folders may lie, e.g. '[\"/srv/docs\"]', and restart it")
        path = Path(raw)
        if not path.is_absolute():
            raise ApiError(400, "bad_request", f"path {raw!r} is relative; give the folder's absolute path")
        try:
            folder = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ApiError(400, "bad_request", f"folder {raw!r} does not exist on the server") from None
        if not folder.is_dir():
            raise ApiError(400, "bad_request", f"{raw!r} is not a folder; watch the folder that holds it")
        if not any(folder == r or folder.is_relative_to(r) for r in self.roots):
            raise ApiError(403, "forbidden", f"folder {raw!r} is outside RAG_API__WATCH_ROOTS "
                           f"({', '.join(map(str, self.roots))}); pick a folder inside one of them")
        if self.home == folder or self.home.is_relative_to(folder) or folder.is_relative_to(self.home):
            raise ApiError(400, "bad_request", f"folder {raw!r} overlaps the server's data home {self.home}; "
                           f"watch a folder outside it")
        with self._lock:
            for w in self._watches.values():
                other = Path(w.path)
                if w.collection == collection and (folder.is_relative_to(other) or other.is_relative_to(folder)):
                    raise ApiError(409, "conflict", f"folder {raw!r} overlaps {w.path}, already watched for "
                                   f"{collection!r} as {w.id}; remove that one first")
        return folder

    def _save(self) -> None:
        """Write the registrations atomically (caller holds `_lock`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(f".watches.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([w.saved() for w in self._watches.values()], indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.file)

    def _run(self, watch: Watch) -> None:
        from rag_platform.ingest.watch import watch_folders

        def on_sync(report: Any) -> None:
            watch.state, watch.passes = "watching", watch.passes + 1
            watch.last_sync = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **report.summary(),
                               "seconds": round(report.seconds, 3), "line": report.line()}

        def target() -> None:
            try:
                self.rag.store.collection(watch.collection)  # deleted meanwhile: do not recreate it
                watch_folders(self.rag, [watch.path], collection=watch.collection, glob=watch.glob,
                              stop=watch.stop, on_sync=on_sync, settle_s=self.settle_s, guard=self.guard,
                              sync=self.process.sync if self.process is not None else None)
                watch.state = "stopped"
            except Exception as exc:  # noqa: BLE001 - the listing reports it; the app keeps serving
                log.exception("watching %s for %r failed", watch.path, watch.collection)
                watch.state, watch.error = "failed", f"{type(exc).__name__}: {exc}"

        watch.thread = threading.Thread(target=target, name=f"rag-watch-{watch.id}", daemon=True)
        watch.thread.start()

    @staticmethod
    def _stop(watches: list[Watch], timeout_s: float = 30.0) -> None:
        for w in watches:
            w.stop.set()
        for w in watches:
            if w.thread is not None:
                w.thread.join(timeout=timeout_s)


watch_router = APIRouter(tags=["watched folders"])


@watch_router.post("/v1/collections/{collection}/watches", status_code=201)
def add_watch(collection: str, body: WatchIn, state: State, key: Key) -> dict[str, Any]:
    """Keep `path` (a folder on the server) in sync with the collection: a full pass now, then every change."""
    key.require(None, "admin")  # the server reads the folder: an admin of every collection decides
    state.store.collection(collection)  # 404 before anything starts
    return state.watches.add(collection, body.path, body.glob).to_json()


@watch_router.get("/v1/collections/{collection}/watches")
def list_watches(collection: str, state: State, key: Reader) -> dict[str, Any]:
    state.store.collection(collection)
    return {"watches": [w.to_json() for w in state.watches.of(collection)]}


@watch_router.delete("/v1/collections/{collection}/watches/{watch_id}")
def remove_watch(collection: str, watch_id: str, state: State, key: Key) -> dict[str, Any]:
    """Stop watching; the folder's documents stay in the collection (`rag sync` or deletes remove them)."""
    key.require(None, "admin")
    return {"removed": state.watches.remove(collection, watch_id).to_json()}
