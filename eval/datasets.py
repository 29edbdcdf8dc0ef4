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
    for _n, row in _numbered_jsonl(path):
        yield row


def _numbered_jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for each non-blank line, so errors can name the line."""
    if not path.exists():
        raise RagError(f"{path} not found (a BEIR folder has corpus.jsonl, queries.jsonl and qrels/; "
                       "a QA file is JSONL)")
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
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
    relevant: tuple[str, ...] = ()
    """Further relevant document ids (our JSONL format allows several)."""

    @property
    def gold_sources(self) -> frozenset[str]:
        """Every source that counts as the right one to retrieve or cite."""
        return frozenset((*self.relevant, *([self.passage_id] if self.passage_id else [])))


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


def load_qa_jsonl(path: str | Path, corpus: str | Path | None = None) -> QAData:
    """Our own QA format, one JSON object per line, for questions about your own documents.

    Fields: `question` (required), `answers` (list of gold strings; may be empty
    when `answerable` is false), optional `id`, `relevant` (document sources or
    ids that hold the answer) and `answerable` (default true). `corpus` is an
    optional BEIR-style corpus.jsonl (`_id`, `title`, `text`) to ingest; without
    it the questions run against a collection you have already ingested.
    """
    path = Path(path)
    items: list[QAItem] = []
    for n, row in _numbered_jsonl(path):
        where = f"{path}:{n}"
        if not isinstance(row, dict) or not str(row.get("question") or "").strip():
            raise RagError(f"{where}: each line needs a non-empty 'question'")
        answers = row.get("answers", [])
        if isinstance(answers, str) or not isinstance(answers, list):
            raise RagError(f"{where}: 'answers' must be a list of strings, got {answers!r}")
        answerable = bool(row.get("answerable", True))
        if answerable and not answers:
            raise RagError(f"{where}: an answerable question needs at least one gold answer "
                           "(or set \"answerable\": false)")
        relevant = row.get("relevant", [])
        if isinstance(relevant, str):
            relevant = [relevant]
        rel = tuple(str(r) for r in relevant)
        items.append(QAItem(str(row.get("id", f"q{n}")), str(row["question"]), tuple(map(str, answers)),
                            rel[0] if rel else None, answerable, rel[1:]))
    if len({i.id for i in items}) != len(items):
        raise RagError(f"{path}: question ids are not unique")
    passages: dict[str, tuple[str, str]] = {}
    if corpus is not None:
        passages = {str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
                    for d in _jsonl(Path(corpus))}
    return QAData(passages, items)


def sample(items: list[QAItem], n: int, seed: int = 13) -> list[QAItem]:
    """A reproducible sample, spread over the whole list (not just the first articles)."""
    import random

    if n >= len(items):
        return list(items)
    return sorted(random.Random(seed).sample(items, n), key=lambda q: q.id)
