"""`rag serve`'s app under a real uvicorn on 127.0.0.1, in a thread of the test process (one model loaded),
and the small data home the OpenAI-compatible and MCP tests share.

Example:
    >>> with LiveServer(create_app(rag=rag)) as base_url:   # doctest: +SKIP
    ...     httpx.get(f"{base_url}/healthz")
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from rag import RAG
from rag.config import LLMSettings, ProviderSettings, Settings
from rag_platform.apps.api.auth import create_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


DOCS = {
    "fusion.md": "# Fusion\n\nReciprocal rank fusion merges the dense and BM25 rankings. Each passage scores one "
                 "over k plus its rank in each list, and the sums are sorted. Reciprocal rank fusion uses a "
                 "default k of 60, which damps the weight of the top ranks.\n",
    "cache.md": "# Answer cache\n\nAnswers are cached by a key built from the question, the retrieved chunks and "
                "the providers, so a repeated question is answered without calling a model.\n",
}
FIRST = "How does reciprocal rank fusion merge rankings?"


def open_rag(tmp: Path, embedder) -> RAG:
    """A data home with collection 'kb' (two Markdown files) and an empty 'other', answered by `extractive`."""
    docs = tmp / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    settings = Settings(home=tmp / "home",
                        llm=LLMSettings(providers=[ProviderSettings(name="extractive", kind="extractive")]))
    rag = RAG.open(settings=settings, embedder=embedder)
    assert rag.ingest(docs, collection="kb").summary()["ok"] == 2
    rag.store.collection("other", create=True)
    return rag


def key(rag: RAG, collections: list[str], role: str = "read") -> str:
    return create_key(rag.store.ledger, collections=collections, role=role)[1]
