"""Collections and their documents over HTTP: create, list and delete; upload, follow the job, list, delete.

An upload is saved by `apps.uploads.save_uploads` (the Streamlit app's rules too) under
`<home>/uploads/<collection>/` and ingested by the app's `JobRunner` in the background: the
request returns 202 with the job, and `GET /v1/jobs/{id}` says how it went, per file.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, Field

from rag.errors import NotFoundError
from rag_platform.apps import uploads
from rag_platform.apps.api.state import CollectionAdmin, Key, Reader, State, Writer
from rag_platform.apps.uploads import ApiError, save_uploads

collections_router = APIRouter(tags=["collections"])
documents_router = APIRouter(tags=["documents"])


class CollectionIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)


@collections_router.post("/v1/collections", status_code=201)
def create_collection(body: CollectionIn, state: State, key: Key) -> dict[str, Any]:
    key.require(body.name, "admin")
    if body.name in state.store.collection_names():
        raise ApiError(409, "conflict", f"collection {body.name!r} already exists")
    coll = state.store.collection(body.name, create=True)
    return {"name": coll.name, "revision": coll.revision}


@collections_router.get("/v1/collections")
def list_collections(state: State, key: Key) -> dict[str, Any]:
    return {"collections": [asdict(c) for c in state.rag.collections() if key.can(c.name, "read")]}


@collections_router.delete("/v1/collections/{collection}")
def delete_collection(collection: str, state: State, key: CollectionAdmin) -> dict[str, Any]:
    state.store.collection(collection)  # 404 before its watches stop
    state.watches.drop_collection(collection)  # else a watcher's next pass would write into it again
    uploads.delete_collection(state.rag, collection)  # with its uploaded files
    return {"deleted": collection}


@documents_router.post("/v1/collections/{collection}/documents", status_code=202)
def upload(collection: str, files: Annotated[list[UploadFile], File(description="Files to ingest.")],
           state: State, key: Writer) -> dict[str, Any]:
    from rag_platform.ingest.loaders import SUPPORTED_SUFFIXES  # the loaders' table; imported when first needed

    state.store.collection(collection)  # 404 before anything is written
    saved, names = save_uploads(files, uploads.upload_folder(state.rag, collection), state.settings, SUPPORTED_SUFFIXES)
    job = state.jobs.submit(collection, saved, names)
    return {"job": state.public(job.to_json()), "status_url": f"/v1/jobs/{job.id}"}


@documents_router.get("/v1/jobs/{job_id}")
def job_status(job_id: str, state: State, key: Key) -> dict[str, Any]:
    job = state.jobs.get(job_id)
    if not key.can(job.collection, "read"):
        raise NotFoundError(f"no job with id {job_id!r} visible to this API key")
    return state.public(job.to_json())  # type: ignore[no-any-return]


@documents_router.get("/v1/collections/{collection}/documents")
def documents(collection: str, state: State, key: Reader) -> dict[str, Any]:
    docs = state.rag.documents(collection)
    return {"documents": [{"id": d.id, "source": state.public_path(d.source_uri), "title": d.title,
                           "media_type": d.media_type, "size_bytes": d.size_bytes, "status": d.status,
                           "error": d.error, "chunks": d.chunk_count, "updated_at": d.updated_at} for d in docs]}


@documents_router.delete("/v1/collections/{collection}/documents/{document_id}")
def delete_document(collection: str, document_id: int, state: State, key: Writer) -> dict[str, Any]:
    coll = state.store.collection(collection)
    try:
        source = uploads.delete_document(state.rag, collection, document_id)  # with its uploaded copy
    except NotFoundError:
        raise NotFoundError(f"no document with id {document_id} in collection {collection!r}; "
                            f"list them with GET /v1/collections/{collection}/documents") from None
    rev = state.store.revision(coll)
    return {"deleted": document_id, "source": state.public_path(source), "revision": rev}
