"""What `RAG.ask` returns: the answer text, checked citations, and how it was produced."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter

from rag.cite import Citation
from rag.types import Attempt, Delta, Hit


@dataclass(frozen=True)
class Answer:
    """An answer whose claims point at numbered sources (`sources[n-1]` is [n]).

    `provider` answered; `attempts` lists every try before it, failed ones
    with their reason. `groundedness` is the share of claim sentences with a
    citation the checker found supported; None for an abstention (there is
    nothing to ground). `abstained` means the sources did not hold the answer
    and the answer says so; `low_confidence` means the answer quotes the most
    relevant passage but says it may not answer the question.
    """

    question: str
    text: str
    sources: list[Hit]
    citations: list[Citation]
    provider: str
    model: str
    attempts: list[Attempt] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)
    uncited_sentences: list[str] = field(default_factory=list)
    groundedness: float | None = 0.0
    abstained: bool = False
    low_confidence: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    cost_usd: float = 0.0
    cached: bool = False
    prompt_version: str = ""

    @property
    def supported_share(self) -> float:
        return sum(c.supported for c in self.citations) / len(self.citations) if self.citations else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        return _ADAPTER.validate_python(data)


_ADAPTER: TypeAdapter[Answer] = TypeAdapter(Answer)


@dataclass
class AnswerStream:
    """Iterate for text as it is generated; `answer` holds the checked Answer once iteration ends."""

    _events: Iterator[Any]
    answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if isinstance(event, Delta):
                yield event.text
            elif isinstance(event, Answer):
                self.answer = event
