"""`rag watch`: keep a collection in sync with folders as files change (watchfiles).

Events come from the OS (inotify, FSEvents, ReadDirectoryChangesW) through
watchfiles, debounced. A file is read only once its size and modification
time have held still for `settle_s`, so a file still being written (a
download, a large save) is not ingested half-done; editors' temporary and
lock files are ignored. While any file is still changing, the pass waits,
so a rename (delete + create) lands in one pass and is recognised as a
move. Each pass is `ingest.sync.sync_changed` over just the files that
changed; deletions are found by a stat of each known document under the
roots.

Stopping: set `stop` (the CLI does on Ctrl-C and SIGTERM); a pass in
progress finishes its batch first.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES
from rag_platform.ingest.sources import FileItem, discover
from rag_platform.ingest.sync import SyncReport, sync_changed

log = logging.getLogger(__name__)

_TEMPORARY = re.compile(
    r"""(^~\$ | ^\.~lock\. | ~$ | ^\#.*\#$ | ^4913$ | ^\.goutputstream- | ^\.\#
       | \.(swp|swx|swo|tmp|temp|part|partial|crdownload|download|bak|lock)$)""", re.VERBOSE | re.IGNORECASE)


def is_temporary(name: str) -> bool:
    """Editors' and downloaders' scratch files: `~$a.docx`, `.~lock.a.odt#`, `a.md~`, `.a.swp`, `a.part`."""
    return bool(_TEMPORARY.search(name))


def wanted(path: Path, roots: list[Path], glob: str | None) -> bool:
    """Whether a changed path is one `discover` would take (supported, not hidden, not temporary)."""
    if is_temporary(path.name) or path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return False
    for root in roots:
        if path == root:
            return True
        if root in path.parents:
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                return False
            return not glob or fnmatch.fnmatch(rel.as_posix(), glob) or fnmatch.fnmatch(path.name, glob)
    return False


class Settle:
    """Changed files, each released once its (size, mtime) held still for `quiet_s`."""

    def __init__(self, quiet_s: float, max_wait_s: float) -> None:
        self.quiet_s, self.max_wait_s = quiet_s, max_wait_s
        self.pending: dict[Path, tuple[tuple[int, int] | None, float, float]] = {}  # sig, since, first seen

    @staticmethod
    def _sig(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def touch(self, path: Path, now: float) -> None:
        first = self.pending.get(path, (None, now, now))[2]
        self.pending[path] = (self._sig(path), now, first)

    def take(self, now: float) -> tuple[list[Path], bool]:
        """(files now settled, removed from pending; whether some other file is still changing)."""
        ready: list[Path] = []
        busy = False
        for path, (sig, since, first) in list(self.pending.items()):
            current = self._sig(path)
            if current is None:  # deleted again before it settled
                del self.pending[path]
            elif current != sig:
                self.pending[path] = (current, now, first)
                busy = busy or now - first < self.max_wait_s
            elif now - since >= self.quiet_s:
                ready.append(path)
                del self.pending[path]
            else:
                busy = busy or now - first < self.max_wait_s
        return ready, busy


def watch_folders(rag: Any, paths: Iterable[str | Path], *, collection: str, glob: str | None = None,
                  stop: threading.Event | None = None, on_sync: Callable[[SyncReport], None] | None = None,
                  settle_s: float = 1.0, debounce_ms: int = 300, tick_ms: int = 200,
                  max_wait_s: float = 60.0, guard: AbstractContextManager[Any] | None = None,
                  sync: Callable[[list[FileItem], list[Path], str], SyncReport] | None = None) -> int:
    """Sync once, then after every settled change until `stop` is set. Returns the number of passes.

    `on_sync` gets each pass's report (the first, full pass included). `guard` is
    held around each pass (the HTTP API shares one lock with its upload jobs, so
    one writer at a time). `sync(files, roots, collection)` runs a pass; by default
    `sync_changed` in this process (the HTTP API hands passes to its ingestion process).
    """
    import watchfiles

    def here(files: list[FileItem], roots: list[Path], collection: str) -> SyncReport:
        return sync_changed(rag, files, roots, collection=collection)

    run_pass = sync or here

    roots = discover(paths, glob)[1]
    guard = guard if guard is not None else nullcontext()
    passes = 0
    settle = Settle(settle_s, max_wait_s)
    deleted_at: float | None = None  # last deletion seen; it waits `settle_s` too, for a rename's other half
    for changes in watchfiles.watch(*roots, debounce=debounce_ms, step=50, stop_event=stop,
                                    rust_timeout=tick_ms, yield_on_timeout=True, raise_interrupt=False,
                                    watch_filter=lambda _c, p: not is_temporary(Path(p).name)):
        if passes == 0:  # the watcher is up: a full pass now misses nothing that changes meanwhile
            with guard:
                report = run_pass(discover(roots, glob)[0], roots, collection)
            passes = 1
            if on_sync:
                on_sync(report)
        now = time.monotonic()
        for change, raw in changes:
            path = Path(raw)
            if change == watchfiles.Change.deleted:
                deleted_at = now
            elif path.is_dir():  # a folder moved or copied in: its files
                for item in discover([path], glob)[0]:
                    if wanted(item.path, roots, glob):
                        settle.touch(item.path, now)
            elif wanted(path, roots, glob):
                settle.touch(path, now)
        ready, busy = settle.take(now)
        busy = busy or (deleted_at is not None and now - deleted_at < settle_s)
        if busy:  # let a rename or a copy finish, so it lands in one pass
            settle.pending.update({p: (settle._sig(p), now - settle_s, now) for p in ready})
            continue
        if ready or deleted_at is not None:
            items = [FileItem(p, str(p)) for p in sorted(set(ready)) if p.exists()]
            deleted_at = None
            try:
                with guard:
                    report = run_pass(items, roots, collection)
            except Exception:  # noqa: BLE001 - a watcher keeps going; the next change retries
                log.exception("sync pass failed; it is retried on the next change")
                continue
            passes += 1
            if on_sync:
                on_sync(report)
        if stop is not None and stop.is_set():
            break
    return passes
