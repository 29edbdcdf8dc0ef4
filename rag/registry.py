"""Name -> factory for each swappable part.

A new backend is one new module plus one `register` call. Plugins outside
this package (our `ingest` engines, third-party providers) are found through
the `rag.plugins` entry-point group, loaded lazily on the first miss.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from rag.errors import ConfigError

_FACTORIES: dict[str, dict[str, Callable[..., Any]]] = {}
_PLUGINS_LOADED = False


def register(kind: str, name: str, factory: Callable[..., Any]) -> None:
    """Make `factory` available as `create(kind, name, ...)`."""
    _FACTORIES.setdefault(kind, {})[name] = factory


def names(kind: str) -> list[str]:
    """Registered names of one kind, for help texts and errors."""
    _load_plugins()
    return sorted(_FACTORIES.get(kind, {}))


def create(kind: str, name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Build the part registered as `name`; the error lists what exists."""
    factory = _FACTORIES.get(kind, {}).get(name)
    if factory is None:
        _load_plugins()
        factory = _FACTORIES.get(kind, {}).get(name)
    if factory is None:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(names(kind)) or 'none'}")
    return factory(*args, **kwargs)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for ep in entry_points(group="rag.plugins"):
        hook = ep.load()
        hook(register)
