"""Searches first: a writer in the same process waits at its pause points while a search runs."""

from __future__ import annotations

import threading

import pytest

from rag import priority


def _search_until(release: threading.Event, inside: threading.Event, order: list[str]) -> None:
    with priority.searching():
        inside.set()
        release.wait()
        order.append("search done")


class CountingEvent(threading.Event):
    waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_a_writer_waits_for_a_running_search_then_runs_before_pausing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(priority, "MAX_PAUSE_S", 60.0)
    monkeypatch.setattr(priority, "MIN_RUN_S", 60.0)
    idle = CountingEvent()
    idle.set()
    monkeypatch.setattr(priority, "_idle", idle)
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()
    search = threading.Thread(target=_search_until, args=(release, inside, order))
    search.start()
    inside.wait()

    def writer() -> None:
        priority.pause_for_searches()
        order.append("writer resumed")
        with priority.searching():  # another search starts: the writer just resumed, so it does not pause again
            priority.pause_for_searches()
            order.append("writer ran on")

    w = threading.Thread(target=writer)
    w.start()
    w.join(0.3)
    assert w.is_alive() and order == [], "the writer went on while a search was running"
    release.set()
    search.join()
    w.join()
    assert order == ["search done", "writer resumed", "writer ran on"]
    assert idle.waits == 1  # the second pause point came within MIN_RUN_S of resuming: no wait


def test_no_search_no_pause() -> None:
    done = threading.Event()
    t = threading.Thread(target=lambda: (priority.pause_for_searches(), done.set()))
    t.start()
    t.join()
    assert done.is_set() and priority._idle.is_set()  # noqa: SLF001 - the counter is back at zero


def test_a_failing_search_still_lets_writers_go() -> None:
    with pytest.raises(RuntimeError), priority.searching():
        raise RuntimeError("boom")
    assert priority._idle.is_set()  # noqa: SLF001


def test_a_search_shortens_the_switch_interval_while_it_runs() -> None:
    """A writer between two pauses hands the interpreter back within SEARCH_SWITCH_S, not 5 ms."""
    import sys

    from rag import priority

    before = sys.getswitchinterval()
    with priority.searching():
        with priority.searching():  # nested and concurrent searches share one setting
            assert sys.getswitchinterval() == min(before, priority.SEARCH_SWITCH_S)
        assert sys.getswitchinterval() == min(before, priority.SEARCH_SWITCH_S)
    assert sys.getswitchinterval() == before
