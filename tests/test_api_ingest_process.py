"""Uploads are ingested by the server's ingestion process (a real child process on the same data home)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from pydantic import SecretStr

from rag import RAG
from rag.config import LLMSettings, ProviderSettings, Settings
from rag_platform.apps.api.app import create_app
from rag_platform.apps.api.ingest_process import report_from_json, report_to_json, settings_frame
from rag_platform.apps.api.limits import ApiSettings
from rag.report import FileResult, IngestReport

FERNS = b"# Ferns\n\nFerns reproduce by spores released from sori under the fronds.\n"
TIDES = b"# Tides\n\nSpring tides happen when the sun and the moon pull along one line.\n"


def _upload(client: TestClient, name: str, body: bytes) -> dict:
    r = client.post("/v1/collections/kb/documents", files=[("files", (name, body))])
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(r.json()["status_url"]).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("the upload job did not finish")


def _sources(client: TestClient, query: str) -> list[str]:
    hits = client.post("/v1/collections/kb/search", json={"query": query, "k": 3}).json()["hits"]
    return [h["source"].rsplit("/", 1)[-1] for h in hits]


def test_uploads_run_in_a_lower_priority_process_and_the_server_sees_them(tmp_path: Path) -> None:
    rag = RAG.open(settings=Settings(home=tmp_path / "home",
                                     llm=LLMSettings(providers=[ProviderSettings(name="e", kind="extractive")])))
    app = create_app(rag=rag, api_settings=ApiSettings(auth=False, ingest_nice=7))
    with TestClient(app) as client:
        assert client.post("/v1/collections", json={"name": "kb"}).status_code in (200, 201)
        job = _upload(client, "ferns.md", FERNS)
        assert job["status"] == "done", job
        assert job["report"]["summary"]["ok"] == 1 and job["report"]["files"][0]["file"] == "ferns.md"
        process = app.state.jobs.process
        pid = process.pid
        assert pid is not None and pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 7
        assert _sources(client, "how do ferns reproduce")[0].endswith("ferns.md")

        os.kill(pid, signal.SIGKILL)  # a dead ingestion process is replaced by the next upload
        deadline = time.monotonic() + 10
        while process.pid is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        job = _upload(client, "tides.md", TIDES)
        assert job["status"] == "done", job
        assert process.pid not in (None, pid)
        assert _sources(client, "when do spring tides happen")[0].endswith("tides.md")
        assert "ferns.md" in {d["source"].rsplit("/", 1)[-1] for d in
                              client.get("/v1/collections/kb/documents").json()["documents"]}
    assert process.pid is None  # the app's shutdown ended it


def test_a_server_given_an_embedder_object_ingests_in_its_thread(tmp_path: Path, embedder: object) -> None:
    rag = RAG.open(settings=Settings(home=tmp_path / "home"), embedder=embedder)
    assert create_app(rag=rag, api_settings=ApiSettings(auth=False)).state.jobs.process is None
    fresh = RAG.open(settings=Settings(home=tmp_path / "home2"))
    assert create_app(rag=fresh, api_settings=ApiSettings(auth=False, ingest_process=False)).state.jobs.process is None


def test_settings_and_reports_cross_the_pipe_unchanged(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, llm=LLMSettings(providers=[
        ProviderSettings(name="o", kind="openai", model="gpt-4o-mini", api_key=SecretStr("sk-test-123"))]))
    back = Settings.model_validate(settings_frame(settings)["settings"])
    assert back.llm.providers[0].api_key is not None
    assert back.llm.providers[0].api_key.get_secret_value() == "sk-test-123"
    assert back.model_dump(mode="json") == settings.model_dump(mode="json")
    report = IngestReport(collection="kb", run_id=3, files=[FileResult("a.md", "ok", chunks=2, seconds=0.5)],
                          chunks_added=2, seconds=1.5, missing=["gone.md"])
    report.stage_seconds["embed"] += 0.25
    assert report_from_json(report_to_json(report)) == report


def _until(check, what: str, timeout_s: float = 90.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_watched_folder_syncs_in_the_ingestion_process(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    folder = root / "kb"
    folder.mkdir(parents=True)
    (folder / "ferns.md").write_bytes(FERNS)
    rag = RAG.open(settings=Settings(home=tmp_path / "home"))
    app = create_app(rag=rag, api_settings=ApiSettings(auth=False, watch_roots=[root]))
    app.state.watches.settle_s = 0.3
    with TestClient(app) as client:
        assert client.post("/v1/collections", json={"name": "kb"}).status_code in (200, 201)
        assert client.post("/v1/collections/kb/watches", json={"path": str(folder)}).status_code == 201

        def names() -> set[str]:
            docs = client.get("/v1/collections/kb/documents").json()["documents"]
            return {Path(d["source"]).name for d in docs if d["status"] == "ok"}

        _until(lambda: names() == {"ferns.md"}, "the first pass")
        assert app.state.jobs.process.pid is not None  # only a pass could have started it: no upload was made
        (folder / "tides.md").write_bytes(TIDES)
        _until(lambda: _sources(client, "when do spring tides happen")[0].endswith("tides.md"), "tides searchable")
        (row,) = _until(lambda: [w for w in client.get("/v1/collections/kb/watches").json()["watches"]
                                 if w["passes"] >= 2], "the second pass reported")
        assert row["state"] == "watching" and row["error"] is None and "1 added" in row["last_sync"]["line"]


def test_sync_reports_cross_the_pipe_unchanged() -> None:
    from rag_platform.apps.api.ingest_process import sync_from_json, sync_to_json
    from rag_platform.ingest.sync import SyncReport

    report = SyncReport("kb", added=["a.md"], moved=[("b.md", "c.md")], failed=[("d.pdf", "encrypted")], unchanged=3,
                        seconds=0.5, ingest=IngestReport(collection="kb", run_id=2, chunks_added=4))
    assert sync_from_json(sync_to_json(report)) == report
    assert sync_from_json(sync_to_json(SyncReport("kb"))) == SyncReport("kb")


def test_an_idle_ingestion_process_leaves_and_the_next_job_starts_another(tmp_path: Path) -> None:
    rag = RAG.open(settings=Settings(home=tmp_path / "home"))
    app = create_app(rag=rag, api_settings=ApiSettings(auth=False, ingest_idle_s=1.0))
    with TestClient(app) as client:
        assert client.post("/v1/collections", json={"name": "kb"}).status_code in (200, 201)
        assert _upload(client, "ferns.md", FERNS)["status"] == "done"
        process = app.state.jobs.process
        first = process.pid
        assert first is not None
        def gone() -> bool:  # left and reaped: its pid no longer names a process
            try:
                os.kill(first, 0)
            except ProcessLookupError:
                return True
            return False

        _until(lambda: process.pid is None and gone(), "the idle process to leave", timeout_s=30)
        assert _upload(client, "tides.md", TIDES)["status"] == "done"
        assert process.pid not in (None, first)
        assert _sources(client, "how do ferns reproduce")[0].endswith("ferns.md")
