"""Opening the data home for the app, and turning any failure into one short message.

The app reads the same `Settings` as the CLI (`RAG_*` environment variables,
`rag.toml`); `rag app --home DIR` passes the home as `RAG_HOME`. The embedding
model is loaded once per process and shared by every browser session.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from rag import RAG, RagError, Settings

log = logging.getLogger("rag.app")
_EMBEDDERS: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


def share_embedder(embedder: Any, settings: Settings | None = None) -> None:
    """Use an already-loaded embedder for `settings.embedder` (tests share the session's model)."""
    cfg = (settings or Settings()).embedder
    _EMBEDDERS[(cfg.backend, cfg.model, cfg.device)] = embedder


def embedder_for(settings: Settings) -> Any:
    """One embedder per model per process: loading it takes seconds, sessions are many."""
    from rag.embed import make_embedder

    cfg = settings.embedder
    key = (cfg.backend, cfg.model, cfg.device)
    with _LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = make_embedder(cfg)
        return _EMBEDDERS[key]


def open_rag(home: str | Path | None = None) -> RAG:
    """The RAG for `home` (default: `RAG_HOME` / `rag.toml` / `.rag`), on the shared embedder."""
    settings = Settings()
    if home:
        settings = settings.model_copy(update={"home": Path(home)})
    return RAG.open(settings=settings, embedder=embedder_for(settings))


def user_message(exc: BaseException) -> str:
    """A short message a user can act on; never a stack trace.

    Our own errors already say what was wrong and how to fix it. Anything else is logged with its
    trace for the operator, and the user is told where to look.
    """
    if isinstance(exc, RagError):
        return str(exc)
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return f"a file could not be read or written: {exc.strerror or type(exc).__name__}"
    log.error("unexpected %s in the app", type(exc).__name__, exc_info=exc)
    return f"something went wrong ({type(exc).__name__}); the details are in the server log"
