"""Metadata filters, resolved to the set of chunk ids allowed *before* scoring.

Filtering after retrieval cuts a top-100 down to a handful and loses recall;
resolving the filter to ids first lets both retrievers search only inside it.
"""

from __future__ import annotations

import fnmatch
import numbers
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Filters:
    """All given conditions must hold (AND); within a list any value may match (OR).

    Example:
        >>> Filters(source_glob="*/handbook/*.md", tags=("hr",), modified_after=datetime(2024, 1, 1))
    """

    source_glob: str | None = None
    media_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    document_ids: tuple[int, ...] = ()
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    metadata: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        """Lists become tuples; a bare string where a list belongs is refused (it would match by characters)."""
        from rag.errors import ConfigError

        for name, kind in (("media_types", str), ("tags", str), ("document_ids", int)):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
                raise ConfigError(f"Filters.{name}={value!r} must be a list or tuple of {kind.__name__}, "
                                  f"e.g. {name}=({value!r},)")
            want = numbers.Integral if kind is int else str  # numpy integers are ids too
            bad = [v for v in value if not isinstance(v, want) or isinstance(v, bool)]
            if bad:
                raise ConfigError(f"Filters.{name} holds {bad[0]!r}: every item must be a {kind.__name__}")
            object.__setattr__(self, name, tuple(int(v) if kind is int else v for v in value))
        if self.source_glob is not None and not isinstance(self.source_glob, str):
            raise ConfigError(f"Filters.source_glob={self.source_glob!r} must be a string such as '*.pdf'")
        for name in ("modified_after", "modified_before"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise ConfigError(f"Filters.{name}={value!r} must be a datetime, e.g. datetime(2024, 1, 1)")
        meta = self.metadata.items() if isinstance(self.metadata, dict) else self.metadata
        try:
            pairs = tuple((str(k), v) for k, v in meta)
        except (TypeError, ValueError):
            raise ConfigError(f"Filters.metadata={self.metadata!r} must be a dict or (key, value) pairs") from None
        object.__setattr__(self, "metadata", pairs)

    @property
    def empty(self) -> bool:
        return self == Filters()

    def match_document(self, source: str, media_type: str, meta: dict[str, Any], updated: datetime, *,
                       document_id: int | None = None) -> bool:
        """Whether one document passes; used by the embedded store over ledger rows.

        `document_id` is the document's ledger id: with `document_ids` set, a document passes only
        when its id is among them (a document whose id is not given passes no id filter).
        """
        if self.document_ids and document_id not in self.document_ids:
            return False
        if self.source_glob and not fnmatch.fnmatch(source, self.source_glob):
            return False
        if self.media_types and media_type not in self.media_types:
            return False
        if self.tags:
            doc_tags = meta.get("tags") or []
            doc_tags = [doc_tags] if isinstance(doc_tags, str) else list(doc_tags)
            if not set(self.tags) & set(doc_tags):
                return False
        when = _aware(meta.get("modified")) or _aware(updated)
        if self.modified_after and when is not None and when < _aware(self.modified_after):  # type: ignore[operator]
            return False
        if self.modified_before and when is not None and when > _aware(self.modified_before):  # type: ignore[operator]
            return False
        return all(meta.get(key) == value for key, value in self.metadata)


def _aware(value: Any) -> datetime | None:

    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None
