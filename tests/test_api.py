"""The HTTP API: TestClient against `create_app` over a real RAG, plus one real uvicorn process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from rag import RAG
from rag.config import LLMSettings, ProviderSettings, Settings
from rag_platform.apps.api.app import create_app
from rag_platform.apps.api.auth import create_key
from rag_platform.apps.api.limits import ApiSettings, sanitize_filename

REPO = Path(__file__).resolve().parents[1]
FUSION = ("# Fusion\n\nReciprocal rank fusion merges the dense and BM25 rankings. Each passage scores "
          "one over sixty plus its rank in each list, and the sums are sorted.\n")
CACHE = ("# Answer cache\n\nAnswers are cached by a key built from the question, the retrieved chunks and "
         "the providers, so a repeated question is answered without calling a model.\n")


def _settings(home: Path) -> Settings:
    return Settings(home=home, llm=LLMSettings(providers=[ProviderSettings(name="extractive", kind="extractive")]))


def _client(tmp: Path, embedder, **api) -> tuple[TestClient, RAG]:
    rag = RAG.open(settings=_settings(tmp / "home"), embedder=embedder)
    app = create_app(rag=rag, api_settings=ApiSettings(**{"auth": True, **api}))
    return TestClient(app, raise_server_exceptions=False), rag


def _key(rag: RAG, collections: list[str], role: str) -> dict[str, str]:
    _, raw = create_key(rag.store.ledger, collections=collections, role=role)
    return {"Authorization": f"Bearer {raw}"}


def _wait(client: TestClient, job_id: str, headers: dict[str, str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder):
    """One app with collection 'kb' (two Markdown files) and keys of every role."""
    client, rag = _client(tmp_path_factory.mktemp("api"), embedder)
    admin = _key(rag, ["*"], "admin")
    assert client.post("/v1/collections", json={"name": "kb"}, headers=admin).status_code == 201
    assert client.post("/v1/collections", json={"name": "other"}, headers=admin).status_code == 201
    files = [("files", ("fusion.md", FUSION.encode(), "text/markdown")),
             ("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "application/pdf")),
             ("files", ("cache.md", CACHE.encode(), "text/markdown"))]
    r = client.post("/v1/collections/kb/documents", files=files, headers=admin)
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["job"]["id"], admin)
    keys = {"admin": admin, "write": _key(rag, ["kb"], "write"), "read": _key(rag, ["kb"], "read"),
            "other": _key(rag, ["other"], "admin")}
    with client:
        yield client, rag, keys, job


def test_upload_job_reports_each_file(world):
    client, _, keys, job = world
    assert job["status"] == "done"
    outcomes = {f["file"]: f["outcome"] for f in job["report"]["files"]}
    assert outcomes == {"fusion.md": "ok", "broken.pdf": "failed", "cache.md": "ok"}
    bad = next(f for f in job["report"]["files"] if f["file"] == "broken.pdf")
    assert bad["reason"]
    docs = client.get("/v1/collections/kb/documents", headers=keys["read"]).json()["documents"]
    assert sum(d["status"] == "ok" for d in docs) == 2


def test_search_returns_hits_with_per_retriever_ranks(world):
    client, _, keys, _ = world
    r = client.post("/v1/collections/kb/search", json={"query": "reciprocal rank fusion", "k": 2},
                    headers=keys["read"])
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits and hits[0]["source"].endswith("fusion.md")
    assert set(hits[0]["ranks"]) == {"dense", "bm25"} and hits[0]["scores"]["bm25"] > 0
    r = client.post("/v1/collections/kb/search", headers=keys["read"],
                    json={"query": "cache", "mode": "bm25", "filters": {"source_glob": "*cache.md"}})
    assert {h["source"].rsplit("/", 1)[-1] for h in r.json()["hits"]} == {"cache.md"}


def test_ask_json_has_citations(world):
    client, _, keys, _ = world
    r = client.post("/v1/collections/kb/ask", json={"question": "How does reciprocal rank fusion score passages?"},
                    headers=keys["read"])
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["provider"] == "extractive" and answer["citations"] and answer["sources"]


def test_ask_stream_sends_deltas_then_answer_then_done(world):
    client, _, keys, _ = world
    body = {"question": "What is the answer cache keyed by?", "stream": True, "cache": False}
    with client.stream("POST", "/v1/collections/kb/ask", json=body, headers=keys["read"]) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: ")))
              for b in raw.strip().split("\n\n")]
    names = [e for e, _ in events]
    assert names[0] == "delta" and names[-2:] == ["answer", "done"]
    answer = events[-2][1]
    assert answer["citations"] and "".join(d["text"] for e, d in events if e == "delta").strip() == answer["text"]


def test_auth_401_and_403(world):
    client, _, keys, _ = world
    q = {"query": "fusion"}
    r = client.post("/v1/collections/kb/search", json=q)
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    r = client.post("/v1/collections/kb/search", json=q, headers={"Authorization": "Bearer rag_dead_beef"})
    assert r.status_code == 401
    r = client.post("/v1/collections/kb/search", json=q, headers=keys["other"])  # key of 'other' used on 'kb'
    assert r.status_code == 403 and "'kb'" in r.json()["error"]["message"]
    files = [("files", ("x.md", b"# x\n\nsome text here", "text/markdown"))]
    r = client.post("/v1/collections/kb/documents", files=files, headers=keys["read"])  # role too low
    assert r.status_code == 403 and "write" in r.json()["error"]["message"]
    assert client.delete("/v1/collections/kb", headers=keys["write"]).status_code == 403
    names = [c["name"] for c in client.get("/v1/collections", headers=keys["read"]).json()["collections"]]
    assert names == ["kb"]


def test_unknown_collection_is_json_404(world):
    client, _, keys, _ = world
    r = client.post("/v1/collections/nope/search", json={"query": "x"}, headers=keys["admin"])
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "not_found" and "nope" in err["message"] and "Traceback" not in r.text
    assert err["message"] == "no collection named 'nope'", "no data home path, no other collections' names"
    r = client.post("/v1/collections/kb/search", json={"k": 3}, headers=keys["read"])
    assert r.status_code == 422 and "query" in r.json()["error"]["message"]


def test_results_carry_no_server_paths(world):
    """An uploaded file is known by its uploaded name, never by the server's upload folder."""
    client, rag, keys, job = world
    home = str(rag.settings.home.resolve())
    hits = client.post("/v1/collections/kb/search", json={"query": "reciprocal rank fusion"},
                       headers=keys["read"]).json()["hits"]
    assert hits[0]["source"] == "fusion.md"
    answer = client.post("/v1/collections/kb/ask", json={"question": "How are rankings fused?", "cache": False},
                         headers=keys["read"])
    assert answer.json()["sources"][0]["source"] in ("fusion.md", "cache.md")
    stream = client.post("/v1/collections/kb/ask", json={"question": "How are rankings fused?", "stream": True},
                         headers=keys["read"])
    docs = client.get("/v1/collections/kb/documents", headers=keys["read"])
    assert {d["source"] for d in docs.json()["documents"]} == {"fusion.md", "cache.md", "broken.pdf"}
    for text in (json.dumps(hits), answer.text, stream.text, docs.text, json.dumps(job)):
        assert home not in text and "/uploads/" not in text


def test_metrics_and_readyz(world):
    client, _, keys, _ = world
    client.post("/v1/collections/kb/ask", json={"question": "What does fusion do?", "cache": False},
                headers=keys["read"])
    ready = client.get("/readyz")
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "indexes": "ok"}}
    assert "kb" not in ready.text and "other" not in ready.text, "readyz is unauthenticated: no collection names"
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{method="POST",route="/v1/collections/{collection}/search",status="200"}' in text
    assert 'rag_provider_attempts_total{outcome="ok",provider="extractive"}' in text
    assert 'rag_ingest_files_total{outcome="failed"} 1.0' in text
    assert "rag_http_request_seconds_bucket" in text and "rag_answer_cache_hits_total" in text
    assert client.get("/v1/eval/runs/999", headers=keys["read"]).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/collections/{collection}/ask" in paths and "/v1/jobs/{job_id}" in paths


def test_delete_document_rebuilds_index(world):
    client, _, keys, _ = world
    files = [("files", ("temp.md", b"# Zebra\n\nzebras graze on the savanna grass", "text/markdown"))]
    job = _wait(client, client.post("/v1/collections/kb/documents", files=files,
                                    headers=keys["write"]).json()["job"]["id"], keys["write"])
    assert job["report"]["summary"]["ok"] == 1
    docs = client.get("/v1/collections/kb/documents", headers=keys["read"]).json()["documents"]
    doc = next(d for d in docs if d["source"].endswith("temp.md"))
    assert client.delete(f"/v1/collections/kb/documents/{doc['id']}", headers=keys["write"]).status_code == 200
    hits = client.post("/v1/collections/kb/search", json={"query": "zebras savanna", "mode": "bm25"},
                       headers=keys["read"]).json()["hits"]
    assert not any(h["source"].endswith("temp.md") for h in hits)


def test_limits_413_415_429_and_names(tmp_path, embedder):
    client, rag = _client(tmp_path, embedder, max_upload_mb=0.01, burst=6, rate_per_s=0.1)
    admin = _key(rag, ["*"], "admin")
    client.post("/v1/collections", json={"name": "c"}, headers=admin)
    big = [("files", ("big.txt", b"x" * 20_000, "text/plain"))]
    r = client.post("/v1/collections/c/documents", files=big, headers=admin)
    assert r.status_code == 413 and "RAG_API__MAX_UPLOAD_MB" in r.json()["error"]["message"]
    r = client.post("/v1/collections/c/documents", files=[("files", ("run.exe", b"MZ", "x"))], headers=admin)
    assert r.status_code == 415 and ".exe" in r.json()["error"]["message"]
    evil = [("files", ("../../../evil.md", b"# Evil\n\nnot outside the uploads folder", "text/markdown"))]
    r = client.post("/v1/collections/c/documents", files=evil, headers=admin)
    assert r.status_code == 202
    saved = tmp_path / "home" / "uploads" / "c" / "evil.md"
    assert saved.exists() and not (tmp_path / "evil.md").exists() and not (tmp_path / "home" / "evil.md").exists()
    assert sanitize_filename("..\\..\\a/b/.hidden.pdf") == "hidden.pdf"
    r = client.post("/v1/collections/c/search", headers=admin, content=(b"x" * 100_000 for _ in range(4)))
    assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"  # chunked, no length
    assert client.delete("/v1/collections/c", headers=admin).status_code == 200
    assert not saved.parent.exists()
    codes = [client.get("/v1/collections", headers=admin) for _ in range(3)]
    assert codes[-1].status_code == 429 and int(codes[-1].headers["Retry-After"]) >= 1
    assert codes[-1].json()["error"]["type"] == "rate_limited"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_real_uvicorn_upload_and_streamed_answer(tmp_path, embedder):
    home = tmp_path / "home"
    rag = RAG.open(settings=_settings(home), embedder=embedder)
    headers = _key(rag, ["*"], "admin")
    port = _free_port()
    env = {**os.environ, "RAG_HOME": str(home), "RAG_LLM__PROVIDERS": '[{"name":"extractive","kind":"extractive"}]',
           "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "rag_platform.apps.api.app:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for _ in range(300):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert http.post("/v1/collections", json={"name": "e2e"}).status_code == 201
            r = http.post("/v1/collections/e2e/documents", files=[("files", ("fusion.md", FUSION.encode()))])
            job_id = r.json()["job"]["id"]
            for _ in range(300):
                job = http.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("done", "failed"):
                    break
                time.sleep(0.2)
            assert job["status"] == "done" and job["report"]["summary"]["ok"] == 1
            events: list[str] = []
            with http.stream("POST", "/v1/collections/e2e/ask",
                             json={"question": "How does reciprocal rank fusion work?", "stream": True}) as s:
                for line in s.iter_lines():
                    if line.startswith("event: "):
                        events.append(line.removeprefix("event: "))
                    elif line.startswith("data: ") and events[-1] == "answer":
                        assert json.loads(line.removeprefix("data: "))["citations"]
            assert events[0] == "delta" and events[-2:] == ["answer", "done"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert headers["Authorization"].split()[1].encode() not in out  # the key never reaches the log


def test_eval_runs_from_the_ledger(world):
    client, rag, keys, _ = world
    from rag.store import ledger

    if not hasattr(ledger, "EvalRun"):
        pytest.skip("no eval_runs table in this ledger")
    with rag.store.sessions.begin() as s:
        run = ledger.EvalRun(kind="compare", status="done", dataset="scifact", collection="kb", arms=["a"],
                             provenance={}, split={}, summary={"ndcg@10": 0.5})
        s.add(run)
        s.flush()
        run_id = run.id
    runs = client.get("/v1/eval/runs", headers=keys["read"]).json()["runs"]
    assert [r["id"] for r in runs] == [run_id] and runs[0]["summary"] == {"ndcg@10": 0.5}
    assert client.get(f"/v1/eval/runs/{run_id}", headers=keys["read"]).json()["dataset"] == "scifact"
    assert client.get(f"/v1/eval/runs/{run_id}", headers=keys["other"]).status_code == 404
