"""What every route of one app shares (`AppState`), and the dependencies that hand it out.

`create_app` builds one `AppState` and keeps it at `app.state.api`; a route asks for it, or for
the calling key, through FastAPI's `Depends`, never through a closure, so each resource's router
is a plain module-level `APIRouter`:

    @router.get("/v1/collections/{collection}/things")
    def things(collection: str, state: State, key: Reader) -> dict[str, Any]: ...

`Key` authenticates and rate-limits the caller; `Reader`, `Writer` and `CollectionAdmin` also
check its role on the `{collection}` of the path. FastAPI caches `caller` per request, so a
request spends one rate-limit token however many dependencies ask for the key.
"""

# Module-level functions only: FastAPI resolves these (postponed) annotations from this module's globals.
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Request

from rag import RAG
from rag_platform.apps.api.auth import Authenticator, KeyInfo
from rag_platform.apps.api.limits import RateLimiter
from rag_platform.apps.api.public import public, public_path
from rag_platform.apps.uploads import ApiSettings, uploads_root

if TYPE_CHECKING:  # these modules import this one for its dependencies
    from rag.store.base import Store
    from rag_platform.apps.api.jobs import JobRunner
    from rag_platform.apps.api.metrics import ApiMetrics
    from rag_platform.apps.api.openai_compat import ChatSettings
    from rag_platform.apps.api.watches import FolderWatches


@dataclass
class AppState:
    """One app's shared parts: the library, the HTTP settings, keys, limits, jobs, watches, metrics.

    Example:
        >>> state = request.app.state.api          # doctest: +SKIP
        >>> state.rag.search("fusion", collection="kb")  # doctest: +SKIP
    """

    rag: RAG
    settings: ApiSettings
    chat: ChatSettings
    auth: Authenticator
    limiter: RateLimiter
    metrics: ApiMetrics
    jobs: JobRunner
    watches: FolderWatches
    uploads: Path = field(init=False)
    """Where uploads are saved: `<home>/uploads/<collection>/<name>` (resolved once, at start)."""

    def __post_init__(self) -> None:
        self.uploads = uploads_root(self.rag)

    @property
    def store(self) -> Store:
        return self.rag.store

    def public(self, data: Any) -> Any:
        """`data` with upload paths shown by their uploaded names (the server's layout stays private)."""
        return public(data, self.uploads)

    def public_path(self, source: str) -> str:
        return public_path(source, self.uploads)


def get_state(request: Request) -> AppState:
    """The `AppState` of the app serving this request."""
    state: AppState = request.app.state.api
    return state


State = Annotated[AppState, Depends(get_state)]


def caller(state: State,
           authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
           x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None) -> KeyInfo:
    """The calling key (401 without a valid one), after one rate-limit token (429 when out of them)."""
    key = state.auth.authenticate(authorization, x_api_key)
    state.limiter.check(f"key:{key.id}")
    return key


Key = Annotated[KeyInfo, Depends(caller)]


def needs(role: str) -> Callable[..., KeyInfo]:
    """A dependency: the caller, when its key has `role` on the path's `{collection}` (else 403)."""
    def dep(collection: str, key: Key) -> KeyInfo:
        key.require(collection, role)
        return key
    return dep


Reader = Annotated[KeyInfo, Depends(needs("read"))]
Writer = Annotated[KeyInfo, Depends(needs("write"))]
CollectionAdmin = Annotated[KeyInfo, Depends(needs("admin"))]
