"""Evaluation data in the shapes people already know.

BEIR layout (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) gives
sentence-transformers' shapes: `corpus: dict[id, (title, text)]`,
`queries: dict[qid, str]`, `qrels: dict[qid, dict[doc_id, grade]]`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.types import SourceText


@dataclass(frozen=True)
class BeirData:
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def source_texts(self) -> Iterator[SourceText]:
        """The corpus as texts to ingest; the source is the BEIR doc id."""
        for doc_id, (title, text) in self.corpus.items():
            yield SourceText(source=doc_id, title=title or None, text=text)


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    if not path.exists():
        raise RagError(f"{path} not found: a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/")
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RagError(f"{path}:{n}: not valid JSON ({exc})") from exc


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TSV with a header line: query-id, corpus-id, score (CRLF line ends tolerated)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        next(rows, None)
        for row in rows:
            if len(row) >= 3 and row[0].strip():
                qrels.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2].strip())
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Load one split: only the queries that have judgements in it."""
    folder = Path(folder)
    corpus = {str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or "")) for d in _jsonl(folder / "corpus.jsonl")}
    qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
    queries = {str(q["_id"]): str(q["text"]) for q in _jsonl(folder / "queries.jsonl") if str(q["_id"]) in qrels}
    return BeirData(corpus=corpus, queries=queries, qrels={q: r for q, r in qrels.items() if q in queries})


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answers and, when known, the passage it came from."""

    id: str
    question: str
    answers: tuple[str, ...]
    passage_id: str | None = None
    answerable: bool = True


@dataclass(frozen=True)
class QAData:
    passages: dict[str, tuple[str, str]]
    """passage id -> (title, text)."""
    items: list[QAItem]

    def source_texts(self) -> Iterator[SourceText]:
        for pid, (title, text) in self.passages.items():
            yield SourceText(source=pid, title=title or None, text=text)


def load_squad(path: str | Path) -> QAData:
    """SQuAD v1.1 JSON: each paragraph is a passage (id `<title>#<n>`), each question an item."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise RagError(f"{path}: not a SQuAD v1.1 file ({exc})") from exc
    passages: dict[str, tuple[str, str]] = {}
    items: list[QAItem] = []
    for article in data:
        title = str(article["title"]).replace("_", " ")
        for n, para in enumerate(article["paragraphs"]):
            pid = f"{article['title']}#{n}"
            passages[pid] = (title, para["context"])
            for qa in para["qas"]:
                golds = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                items.append(QAItem(str(qa["id"]), qa["question"], golds, pid))
    return QAData(passages, items)


def sample(items: list[QAItem], n: int, seed: int = 13) -> list[QAItem]:
    """A reproducible sample, spread over the whole list (not just the first articles)."""
    import random

    if n >= len(items):
        return list(items)
    return sorted(random.Random(seed).sample(items, n), key=lambda q: q.id)
