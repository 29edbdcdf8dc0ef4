"""One error tree, so callers can catch everything we raise with one clause.

Every message names the bad value and says how to fix it.
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(RagError):
    """A setting has a value we cannot use."""


class MissingKeyError(ConfigError):
    """A provider has no API key; a fallback chain skips it (and says so) when others remain."""


class LoaderError(RagError):
    """A file could not be turned into text; the run goes on without it."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class IndexMismatchError(RagError):
    """An index folder was built with settings other than the current ones."""


class NotFoundError(RagError):
    """A collection, document or run that the caller named does not exist."""


class CollectionNotFoundError(NotFoundError):
    """No collection of that name. The message names the data home and the existing collections (for a
    local user); `public_message` says only what a remote caller may see."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.public_message = f"no collection named {name!r}"


class ModelLoadError(RagError):
    """A model could not be loaded (missing package, path or weights)."""


class DependencyMissingError(RagError):
    """An optional feature needs an extra that is not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the '{module}' package, which is not installed: "
            f"pip install 'rag-platform[{extra}]'"
        )
        self.extra = extra
