"""What an ingest batch did, per file and per stage: the result type of `RAG.ingest`, shown by the CLI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["ok", "skipped", "failed", "removed"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "skipped", "failed", "removed")


@dataclass(frozen=True)
class FileResult:
    source: str
    outcome: Outcome
    reason: str | None = None
    chunks: int = 0
    seconds: float = 0.0
    note: str | None = None  # library warnings while loading it (e.g. pypdf "EOF marker not found")


@dataclass
class IngestReport:
    collection: str
    run_id: int
    files: list[FileResult] = field(default_factory=list)
    stage_seconds: Counter[str] = field(default_factory=Counter)
    chunks_added: int = 0
    tokens_embedded: int = 0
    texts_embedded: int = 0
    index_rebuilt: bool = False
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)
    """Sources under the given folders that are gone from disk but still in the collection (no --prune)."""

    def count(self, outcome: Outcome) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.outcome == "failed"]

    def summary(self) -> dict[str, int]:
        return {o: self.count(o) for o in OUTCOMES}


class Progress(Protocol):
    """Receives progress events; the CLI draws bars, tests and libraries pass None."""

    def start(self, total: int) -> None: ...

    def file_done(self, result: FileResult) -> None: ...

    def embedded(self, texts: int, tokens: int, seconds: float) -> None: ...

    def stage(self, name: str) -> None: ...


class NullProgress:
    def start(self, total: int) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        pass

    def embedded(self, texts: int, tokens: int, seconds: float) -> None:
        pass

    def stage(self, name: str) -> None:
        pass
