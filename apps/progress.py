"""Rich progress bars for ingestion: files done, chunks, embedding rate."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichProgress:
    """Implements rag.report.Progress; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console, transient=False)
        self._task: Any = None
        self.chunks = 0
        self.texts = 0
        self.tokens = 0
        self.embed_seconds = 0.0

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def start(self, total: int) -> None:
        self._task = self._bar.add_task("files", total=total, detail="")

    def file_done(self, result: Any) -> None:
        self.chunks += result.chunks
        self._bar.update(self._task, advance=1, detail=self._detail())

    def embedded(self, texts: int, tokens: int, seconds: float) -> None:
        self.texts += texts
        self.tokens += tokens
        self.embed_seconds += seconds
        self._bar.update(self._task, detail=self._detail())

    def stage(self, name: str) -> None:
        self._bar.update(self._task, detail=f"{self._detail()}  [{name}]")

    def _detail(self) -> str:
        rate = self.texts / self.embed_seconds if self.embed_seconds else 0.0
        return f"{self.chunks} chunks  {rate:,.0f} chunks/s embedded"
