"""Watched folders over HTTP (apps/api/watches.py): a real uvicorn on 127.0.0.1 and a real folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from rag import RAG
from rag.config import LLMSettings, ProviderSettings, Settings
from rag_platform.apps.api.app import create_app
from rag_platform.apps.api.limits import ApiSettings
from tests.live_api import LiveServer, key

ALPHA = "# Alpha\n\nThe alpha turbine is serviced every spring by the harbour crew.\n"
BETA = "# Beta\n\nThe beta pump is rebuilt whenever its seals weep oil onto the quay.\n"
GAMMA = "# Gamma\n\nThe gamma crane lifts containers of marmalade at the northern berth.\n"


def _rag(home: Path, embedder: Any) -> RAG:
    settings = Settings(home=home, llm=LLMSettings(providers=[ProviderSettings(name="extractive",
                                                                               kind="extractive")]))
    rag = RAG.open(settings=settings, embedder=embedder)
    rag.store.collection("kb", create=True)
    rag.store.collection("other", create=True)
    return rag


def _app(rag: RAG, roots: list[Path]) -> Any:
    app = create_app(rag=rag, api_settings=ApiSettings(auth=True, watch_roots=roots))
    app.state.watches.settle_s = 0.3  # tests need not wait a whole second per change
    return app


def _until(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _sources(client: httpx.Client, base: str, h: dict[str, str], collection: str = "kb") -> set[str]:
    docs = client.get(f"{base}/v1/collections/{collection}/documents", headers=h).json()["documents"]
    return {Path(d["source"]).name for d in docs if d["status"] == "ok"}


def _found(client: httpx.Client, base: str, h: dict[str, str], query: str) -> set[str]:
    r = client.post(f"{base}/v1/collections/kb/search", json={"query": query, "k": 3, "mode": "bm25"}, headers=h)
    return {Path(hit["source"]).name for hit in r.json()["hits"]}


def test_watched_folder_follows_changes_and_survives_a_restart(tmp_path: Path, embedder: Any) -> None:
    root, home = tmp_path / "shared", tmp_path / "home"
    folder = root / "handbook"
    folder.mkdir(parents=True)
    (folder / "alpha.md").write_text(ALPHA)
    rag = _rag(home, embedder)
    admin = {"Authorization": f"Bearer {key(rag, ['*'], 'admin')}"}
    reader = {"Authorization": f"Bearer {key(rag, ['kb'], 'read')}"}
    with LiveServer(_app(rag, [root])) as base, httpx.Client(timeout=30) as client:
        r = client.post(f"{base}/v1/collections/kb/watches", json={"path": str(folder)}, headers=admin)
        assert r.status_code == 201, r.text
        watch = r.json()
        assert watch["collection"] == "kb" and watch["path"] == str(folder.resolve())
        _until(lambda: _sources(client, base, reader) == {"alpha.md"}, "the first pass")

        (folder / "beta.md").write_text(BETA)  # created
        _until(lambda: "beta.md" in _found(client, base, reader, "seals weep oil"), "beta searchable")
        (folder / "alpha.md").unlink()  # deleted
        _until(lambda: _sources(client, base, reader) == {"beta.md"}, "alpha removed")
        assert "alpha.md" not in _found(client, base, reader, "alpha turbine serviced")

        def listed() -> list[dict[str, Any]]:
            return client.get(f"{base}/v1/collections/kb/watches", headers=reader).json()["watches"]

        _until(lambda: listed()[0]["passes"] >= 3, "the third pass reported")  # the first, beta, alpha's removal
        (row,) = listed()
        assert row["id"] == watch["id"] and row["state"] == "watching" and row["error"] is None
        assert {"at", "added", "removed", "moved", "failed", "line"} <= set(row["last_sync"])
        assert client.get(f"{base}/v1/collections/other/watches", headers=admin).json() == {"watches": []}
    saved = json.loads((home / "watches.json").read_text())
    assert [(w["id"], w["collection"], w["path"]) for w in saved] == [(watch["id"], "kb", str(folder.resolve()))]

    (folder / "gamma.md").write_text(GAMMA)  # while the server is down
    with LiveServer(_app(rag, [root])) as base, httpx.Client(timeout=30) as client:
        _until(lambda: "gamma.md" in _found(client, base, reader, "marmalade containers"), "gamma after restart")
        r = client.delete(f"{base}/v1/collections/kb/watches/{watch['id']}", headers=admin)
        assert r.status_code == 200 and r.json()["removed"]["state"] == "stopped"  # its thread has ended
        assert client.get(f"{base}/v1/collections/kb/watches", headers=reader).json() == {"watches": []}
        assert _sources(client, base, reader) == {"beta.md", "gamma.md"}  # its documents stay
        r = client.delete(f"{base}/v1/collections/kb/watches/{watch['id']}", headers=admin)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    assert json.loads((home / "watches.json").read_text()) == []


def test_watch_paths_and_keys_are_checked(tmp_path: Path, embedder: Any) -> None:
    root, home = tmp_path / "shared", tmp_path / "home"
    (root / "a" / "b").mkdir(parents=True)
    (root / "note.md").write_text(ALPHA)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "link").symlink_to(outside)  # inside the root by name, outside once resolved
    rag = _rag(home, embedder)
    admin = {"Authorization": f"Bearer {key(rag, ['*'], 'admin')}"}
    kb_admin = {"Authorization": f"Bearer {key(rag, ['kb'], 'admin')}"}
    with LiveServer(_app(rag, [])) as base, httpx.Client(timeout=30) as client:  # no roots: nothing allowed
        r = client.post(f"{base}/v1/collections/kb/watches", json={"path": str(root)}, headers=admin)
        assert r.status_code == 403 and "RAG_API__WATCH_ROOTS" in r.json()["error"]["message"]
    with LiveServer(_app(rag, [root, tmp_path])) as base, httpx.Client(timeout=30) as client:
        def post(path: str, h: dict[str, str] = admin, collection: str = "kb") -> httpx.Response:
            return client.post(f"{base}/v1/collections/{collection}/watches", json={"path": path}, headers=h)

        assert post(str(root / "a"), kb_admin).status_code == 403  # needs an admin of every collection
        assert post(str(root / "a"), collection="nope").status_code == 404
        cases = {"shared/a": 400, str(root / "missing"): 400, str(root / "note.md"): 400, str(home): 400,
                 str(root / ".." / ".." / ".."): 403}
        for path, status in cases.items():
            r = post(path)
            assert r.status_code == status, (path, r.text)
            assert path.split("/")[-1] in r.json()["error"]["message"] or path in r.json()["error"]["message"]
        first = post(str(root / "a"))
        assert first.status_code == 201, first.text
        assert post(str(root / "a" / "b")).status_code == 409  # inside a watched folder of the same collection
        assert post(str(root)).status_code == 409  # holds one
        other = post(str(root / "a" / "b"), collection="other")
        assert other.status_code == 201  # another collection may watch it

        r = client.delete(f"{base}/v1/collections/other", headers=admin)  # its watches stop with it
        assert r.status_code == 200, r.text
        assert other.json()["id"] not in {w["id"] for w in json.loads((home / "watches.json").read_text())}
        time.sleep(1.0)  # a watcher left running would recreate the collection on its next pass
        assert "other" not in rag.store.collection_names()
    with LiveServer(_app(rag, [root])) as base, httpx.Client(timeout=30) as client:
        r = client.post(f"{base}/v1/collections/kb/watches", json={"path": str(root / "link")}, headers=admin)
        assert r.status_code == 403 and "outside" in r.json()["error"]["message"]
