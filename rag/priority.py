"""Searches first: writes running in this process step aside at safe points while a search runs.

An ingest or a merge is pure Python for much of its time (chunking, tokenising, postings),
so it holds the interpreter lock, and a search in another thread of the same process gets
about half of it: search p99 during a 10k-chunk ingest was 4x the idle p99 on 2 cores
(`bench/scale_local.py`). Searches mark themselves with `searching()`; writers call
`pause_for_searches()` between units of work (a document, a few dozen texts, a segment
part). A pause waits without holding the interpreter lock until no search is running,
for at most `MAX_PAUSE_S`, and a writer that just resumed runs at least `MIN_RUN_S` before
it pauses again, so a stream of searches slows an ingest but never stops it. Other
processes (a CLI ingest beside the API) are the operating system's to schedule.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

MAX_PAUSE_S = 0.25  # longest single wait for searches to finish
MIN_RUN_S = 0.01  # a resumed writer's guaranteed run before its next pause
SEARCH_SWITCH_S = 0.0005  # the interpreter's switch interval while a search runs (0: leave it alone)

_guard = threading.Lock()
_running = 0
_idle = threading.Event()
_idle.set()
_writer = threading.local()
_switch: float | None = None  # the switch interval to restore when the last search ends


@contextlib.contextmanager
def searching() -> Iterator[None]:
    """Mark a search in flight (nested and concurrent searches are counted).

    While one runs, the interpreter hands its lock over after `SEARCH_SWITCH_S` instead of 5 ms:
    a search gives the lock up in every FAISS, SQLite and large numpy call, and each time it wants
    it back a writer between two pauses would otherwise keep it for a whole switch interval.
    """
    global _running, _switch
    with _guard:
        _running += 1
        _idle.clear()
        if _running == 1 and SEARCH_SWITCH_S:
            _switch = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch, SEARCH_SWITCH_S))
    try:
        yield
    finally:
        with _guard:
            _running -= 1
            if _running == 0:
                _idle.set()
                if _switch is not None:
                    sys.setswitchinterval(_switch)
                    _switch = None


def pause_for_searches() -> None:
    """Called by writers between units of work: wait while searches run (cheap when none do)."""
    if _idle.is_set():
        return
    now = time.monotonic()
    if now - getattr(_writer, "resumed", 0.0) < MIN_RUN_S:
        return
    _idle.wait(MAX_PAUSE_S)  # blocks in C: the searching thread has the interpreter to itself
    _writer.resumed = time.monotonic()
