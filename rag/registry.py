"""Name -> factory for each swappable part, filled by plugins: the built-in ones and installed ones alike.

A plugin is a function `register(register)` that calls `register(kind, name, factory)` once per part
it adds (kinds: `embedder`, `reranker`, `llm`, `store`, `ledger`, `ingestor`, `ocr`; the Protocols are in
`rag.protocols`). The built-in plugins are listed in `BUILTIN_PLUGINS` and loaded exactly like
third-party ones, which are found through the `rag.plugins` entry-point group (simonw/llm does the
same with its default plugins). So a checkout run without installed package metadata still knows
every built-in part. Everything loads once, on the first lookup or registration.

Example (a third-party package's `pyproject.toml`)::

    [project.entry-points."rag.plugins"]
    my_llm = "my_package.rag_plugin:register"
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from rag.errors import ConfigError

Factory = Callable[..., Any]
Register = Callable[[str, str, Factory], None]
"""What a plugin's hook receives: `register(kind, name, factory)`."""

BUILTIN_PLUGINS: tuple[str, ...] = ("rag.builtins:register", "rag_platform.ingest.plugin:register")
"""The built-in plugins, `module:function` like an entry point's value: the core's own parts, then the
ingestion engines and OCR engines of this distribution's `ingest` package (named here, never imported
by a module of `rag`)."""

_FACTORIES: dict[str, dict[str, Factory]] = {}
_LOCK = threading.RLock()
_LOADED = False


def register(kind: str, name: str, factory: Factory) -> None:
    """Make `factory` available as `create(kind, name, ...)`; it replaces a plugin's part of that name.

    For parts defined at run time (tests' fakes, a notebook's experiment); packages register
    through the `rag.plugins` entry point instead.
    """
    load_plugins()
    _add(kind, name, factory)


def names(kind: str) -> list[str]:
    """Registered names of one kind, for help texts and errors."""
    load_plugins()
    return sorted(_FACTORIES.get(kind, {}))


def create(kind: str, name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Build the part registered as `name`; the error lists what exists."""
    load_plugins()
    factory = _FACTORIES.get(kind, {}).get(name)
    if factory is None:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(names(kind)) or 'none'}")
    return factory(*args, **kwargs)


def load_plugins() -> None:
    """Run every plugin's hook once: the built-ins first, then installed entry points (which may
    replace a built-in part by registering the same name)."""
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        _LOADED = True  # set first: a hook's own imports may call back into this module
        try:
            for value in BUILTIN_PLUGINS:
                _hook(value)(_add)
            for ep in entry_points(group="rag.plugins"):
                if ep.value not in BUILTIN_PLUGINS:  # an editable install of an older checkout may list one
                    ep.load()(_add)
        except BaseException:
            _LOADED = False  # a broken plugin fails every lookup loudly, not just the first
            raise


def _hook(value: str) -> Callable[[Register], None]:
    module, _, attr = value.partition(":")
    hook: Callable[[Register], None] = getattr(importlib.import_module(module), attr)
    return hook


def _add(kind: str, name: str, factory: Factory) -> None:
    with _LOCK:
        _FACTORIES.setdefault(kind, {})[name] = factory
