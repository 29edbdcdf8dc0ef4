"""API keys: created once, shown once, stored only as a SHA-256 hash, scoped to collections with a role.

A key looks like `rag_<prefix>_<secret>`. The prefix (not secret) finds the row; the
hash of the whole key is compared in constant time. The keys are 256-bit random,
so a plain SHA-256 is enough (no password stretching needed). No function here logs
or returns a raw key, except `create_key`, whose caller shows it to the user once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, fields

from rag.errors import ConfigError, NotFoundError
from rag.protocols import Ledger
from rag.types import ApiKeyRecord
from rag_platform.apps.api.limits import ApiError

ROLES: dict[str, int] = {"read": 0, "write": 1, "admin": 2}
ALL = "*"


@dataclass(frozen=True)
class KeyInfo(ApiKeyRecord):
    """Who is calling: the key's ledger record (its SHA-256, never the key itself) and what it may do."""

    def can(self, collection: str | None, role: str) -> bool:
        scoped = ALL in self.collections or (collection is not None and collection in self.collections)
        return scoped and ROLES[self.role] >= ROLES[role]

    def require(self, collection: str | None, role: str) -> None:
        """403 with the reason when this key may not do `role` on `collection` (None: every collection)."""
        if collection is None and ALL not in self.collections:
            raise ApiError(403, "forbidden", f"API key {self.prefix!r} is scoped to {list(self.collections)}; "
                           f"this needs a key for all collections ('*')")
        if collection is not None and ALL not in self.collections and collection not in self.collections:
            raise ApiError(403, "forbidden", f"API key {self.prefix!r} is not valid for collection {collection!r}; "
                           f"it is scoped to {list(self.collections)}")
        if ROLES[self.role] < ROLES[role]:
            raise ApiError(403, "forbidden", f"API key {self.prefix!r} has role {self.role!r}; this needs "
                           f"{role!r} (roles: read < write < admin)")

    def public(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "prefix": self.prefix, "role": self.role,
                "collections": list(self.collections), "created_at": self.created_at,
                "revoked_at": self.revoked_at}


ANONYMOUS = KeyInfo(id=0, name="anonymous", prefix="none", key_hash="", role="admin", collections=(ALL,))


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _info(row: ApiKeyRecord) -> KeyInfo:
    given = {f.name: getattr(row, f.name) for f in fields(ApiKeyRecord)}
    return KeyInfo(**{**given, "collections": tuple(row.collections or ())})


def create_key(ledger: Ledger, *, collections: list[str], role: str = "read",
               name: str = "") -> tuple[KeyInfo, str]:
    """Store a new key's hash; returns its info and the raw key (show it once, then forget it)."""
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {list(ROLES)}")
    if not collections:
        raise ConfigError("a key needs at least one collection, or '*' for all")
    prefix = secrets.token_hex(4)
    raw = f"rag_{prefix}_{secrets.token_urlsafe(32)}"
    row = ledger.add_api_key(name=name, prefix=prefix, key_hash=hash_key(raw), role=role, collections=collections)
    return _info(row), raw


def list_keys(ledger: Ledger) -> list[KeyInfo]:
    return [_info(r) for r in ledger.api_keys()]


def revoke_key(ledger: Ledger, key_id: int) -> KeyInfo:
    row = ledger.revoke_api_key(key_id)
    if row is None:
        raise NotFoundError(f"no API key with id {key_id}; see `rag keys list`")
    return _info(row)


class Authenticator:
    """Turns an `Authorization: Bearer <key>` (or `X-API-Key`) header into a `KeyInfo`.

    Verified keys are cached for `ttl_s` seconds, so a revoked key stops working within
    that time without a database read on every request.
    """

    def __init__(self, ledger: Ledger, *, enabled: bool = True, ttl_s: float = 5.0) -> None:
        self.ledger = ledger
        self.enabled = enabled
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, KeyInfo]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> KeyInfo:
        if not self.enabled:
            return ANONYMOUS
        raw = x_api_key
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                raw = token.strip()
        if not raw:
            raise ApiError(401, "unauthorized", "no API key: send 'Authorization: Bearer <key>' "
                           "(create one with `rag keys create --collection NAME`)", {"WWW-Authenticate": "Bearer"})
        digest = hash_key(raw)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        info = self._lookup(raw, digest)
        if info is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, info)
        return info

    def _lookup(self, raw: str, digest: str) -> KeyInfo | None:
        parts = raw.split("_")
        if len(parts) < 3 or parts[0] != "rag":
            return None
        for row in self.ledger.api_keys(prefix=parts[1]):
            if row.revoked_at is None and hmac.compare_digest(row.key_hash, digest):
                self.ledger.touch_api_key(row.id)
                return _info(row)
        return None
