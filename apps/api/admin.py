"""Running the server: health and readiness probes, Prometheus metrics, API keys, evaluation runs.

Probes and metrics answer without a key (a load balancer and Prometheus have none), so they
say nothing a stranger should not know: readiness counts broken indexes but never names a
collection. Keys are managed by a key for every collection (`*`) with the admin role; an
evaluation run is visible to a key that may read its collection.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import logging
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from rag import RagError
from rag.errors import NotFoundError
from rag.types import EvalRunInfo
from rag_platform.apps.api.auth import KeyInfo, create_key, list_keys, revoke_key
from rag_platform.apps.api.state import Key, State

log = logging.getLogger("rag.api")
ops_router = APIRouter(tags=["ops"])
eval_router = APIRouter(tags=["eval"])
keys_router = APIRouter(tags=["keys"])


@ops_router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops_router.get("/readyz")
def readyz(state: State) -> JSONResponse:
    store = state.store
    checks: dict[str, str] = {}
    try:
        names = store.collection_names()  # one read of the ledger
        checks["database"] = "ok"
    except Exception as e:  # noqa: BLE001 - readiness reports, it does not crash
        checks["database"] = f"error: {type(e).__name__}"
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    broken = 0  # counts only: collection names are not for unauthenticated callers (they are in the log)
    for name in names:
        if store.chunk_count(name) == 0:
            continue  # nothing to load yet
        try:
            store.index(name)
        except Exception as e:  # noqa: BLE001
            log.warning("index of %r not loadable: %s", name, e if isinstance(e, RagError) else type(e).__name__)
            broken += 1
    checks["indexes"] = "ok" if not broken else f"error: {broken} not loadable (see the server log)"
    ok = not broken
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)


@ops_router.get("/metrics")
def prometheus(state: State) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


EVAL_COLUMNS = ("id", "kind", "status", "dataset", "collection", "arms", "summary", "provenance", "report_path",
                "created_at", "finished_at")


def eval_json(run: EvalRunInfo) -> dict[str, Any]:
    return {c: getattr(run, c) for c in EVAL_COLUMNS}


def visible(run: EvalRunInfo, key: KeyInfo) -> bool:
    """A run of one collection is for that collection's readers; one without is for all-collection keys."""
    return key.can(run.collection, "read") if run.collection else key.can(None, "read")


@eval_router.get("/v1/eval/runs")
def eval_runs(state: State, key: Key, limit: int = 50) -> dict[str, Any]:
    """Evaluation runs recorded in the ledger (`eval_runs`), newest first."""
    rows = state.store.ledger.eval_runs(min(max(limit, 1), 500))
    return {"runs": [eval_json(r) for r in rows if visible(r, key)]}


@eval_router.get("/v1/eval/runs/{run_id}")
def eval_run(run_id: int, state: State, key: Key) -> dict[str, Any]:
    run = state.store.ledger.eval_run(run_id)
    if run is None or not visible(run, key):
        raise NotFoundError(f"no evaluation run {run_id}; list them with GET /v1/eval/runs")
    return eval_json(run)


class KeyIn(BaseModel):
    collections: list[str] = Field(min_length=1)
    role: Literal["read", "write", "admin"] = "read"
    name: str = ""


@keys_router.post("/v1/keys", status_code=201)
def new_key(body: KeyIn, state: State, key: Key) -> dict[str, Any]:
    key.require(None, "admin")
    info, raw = create_key(state.store.ledger, collections=body.collections, role=body.role, name=body.name)
    return {**info.public(), "key": raw, "note": "store this key now: it is not shown again"}


@keys_router.get("/v1/keys")
def keys(state: State, key: Key) -> dict[str, Any]:
    key.require(None, "admin")
    return {"keys": [k.public() for k in list_keys(state.store.ledger)]}


@keys_router.delete("/v1/keys/{key_id}")
def revoke(key_id: int, state: State, key: Key) -> dict[str, Any]:
    key.require(None, "admin")
    return revoke_key(state.store.ledger, key_id).public()
