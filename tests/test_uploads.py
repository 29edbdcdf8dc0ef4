"""apps/uploads.py (shared by the HTTP API and the Streamlit app) and the API's shared state (apps/api/state.py)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from rag.errors import ConfigError
from rag_platform.apps import uploads
from rag_platform.apps.api.app import create_app
from rag_platform.apps.api.auth import create_key
from rag_platform.apps.api.state import AppState

DOC = "# Fusion\n\nReciprocal rank fusion merges the dense and BM25 rankings of the passages.\n"


@dataclass
class _File:
    """What `save_uploads` reads: `.filename` and a binary `.file` (FastAPI's UploadFile has both)."""

    filename: str
    file: io.BytesIO


def test_upload_folder_lies_in_the_uploads_root_and_refuses_bad_names(rag) -> None:
    assert uploads.upload_folder(rag, "kb") == uploads.uploads_root(rag) / "kb"
    assert uploads.uploads_root(rag) == rag.settings.home.resolve() / "uploads"
    with pytest.raises(ConfigError, match="is not allowed"):
        uploads.upload_folder(rag, "../etc")


def test_deleting_a_document_removes_an_uploaded_copy_but_never_a_users_own_file(rag, tmp_path: Path) -> None:
    own = tmp_path / "mine" / "notes.md"
    own.parent.mkdir()
    own.write_text(DOC, encoding="utf-8")
    rag.store.collection("kb", create=True)
    saved, _names = uploads.save_uploads([_File("up.md", io.BytesIO(DOC.encode()))], uploads.upload_folder(rag, "kb"),
                                         uploads.ApiSettings(), frozenset({".md"}))
    rag.ingest([own, *saved], collection="kb")
    ids = {Path(d.source_uri).name: d.id for d in rag.documents("kb")}
    assert uploads.delete_document(rag, "kb", ids["notes.md"]) == str(own.resolve())
    assert own.exists(), "a file ingested from the user's disk stays"
    uploads.delete_document(rag, "kb", ids["up.md"])
    assert not saved[0].exists(), "the uploaded copy goes with its document"
    assert rag.documents("kb") == []
    uploads.delete_collection(rag, "kb")
    assert not uploads.upload_folder(rag, "kb").exists() and "kb" not in rag.store.collection_names()


def test_one_request_spends_one_rate_limit_token_however_many_dependencies_ask_for_the_key(rag) -> None:
    app = create_app(rag=rag, api_settings=uploads.ApiSettings(burst=3, rate_per_s=0.001))
    state = app.state.api
    assert isinstance(state, AppState) and state.rag is rag and state.uploads == uploads.uploads_root(rag)
    _, raw = create_key(rag.store.ledger, collections=["*"], role="admin")
    headers = {"Authorization": f"Bearer {raw}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        rag.store.collection("kb", create=True)
        # `Reader` (role on {collection}) depends on `Key`: FastAPI must run `caller` once per request.
        codes = [client.get("/v1/collections/kb/documents", headers=headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
