"""Load benchmark of the HTTP API: concurrent search and ask, then ingestion while clients query.

What it does, in one run, only on 127.0.0.1:

1. starts a real server (`python -m uvicorn apps.api.app:create_app --factory`, one worker) on a
   fresh data home, with the extractive answerer (no model generation, so the LLM is not the
   bottleneck) and the rate limit raised out of the way;
2. creates an admin key straight in the ledger, a collection, and uploads `samples/` and `docs/`
   through the API (the upload job must finish with every file ok);
3. phase "query": `--clients` concurrent clients (httpx.AsyncClient) for `--seconds`, each looping
   over search, ask with the answer cache and ask without it (one third each);
4. phase "ingest": the same clients for `--ingest-seconds` more while a new batch of documents is
   uploaded through the API; the job must finish, its new text must become searchable, and the
   queries must keep succeeding (the index swap is atomic: rag/store/index.py).

Reports requests/s, p50/p99 latency per endpoint and per phase, and errors (target 0), prints a
table and writes bench/results/load.json. Request loops are bounded in time and in count.

    .venv/bin/python bench/load.py                     # 50 clients, 60 s + 20 s
    .venv/bin/python bench/load.py --seconds 20 --clients 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "How are the dense and BM25 rankings fused?", "What is reciprocal rank fusion?",
    "How are citations checked?", "What happens to a scanned PDF without a text layer?",
    "How is a document chunked?", "What does the index manifest contain?",
    "How does re-ingestion skip unchanged files?", "What is the embedding cache keyed by?",
    "How is the index written atomically?", "What does the ledger store?",
    "Which file types can be ingested?", "How are metadata filters applied?",
    "What is reranking?", "How big are chunks by default?", "What happens after a crash during ingestion?",
    "How is the answer cache keyed?", "What does a hit carry?", "How does hybrid search work?",
]
NEW_DOCS = {
    f"batch-{i}.md": f"# Batch note {i}\n\nThe quartz lighthouse protocol number {i} keeps the harbour "
                     f"lamps lit during storms. Keepers log wind speed every hour.\n\n## Details\n\n"
                     f"Lighthouse {i} uses amber lenses and a clockwork rotation of {10 + i} seconds.\n"
    for i in range(6)
}
MAX_REQUESTS_PER_CLIENT = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin_key(home: Path) -> str:
    from rag.config import Settings
    from rag.store.base import open_ledger
    from rag_platform.apps.api.auth import create_key

    return create_key(open_ledger(Settings(home=home)), collections=["*"], role="admin", name="load-bench")[1]


def _start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAG_HOME": str(home), "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false",
           "RAG_LLM__PROVIDERS": '[{"name":"extractive","kind":"extractive"}]',
           "RAG_API__RATE_PER_S": "1000000", "RAG_API__BURST": "1000000"}
    cmd = [sys.executable, "-m", "rag_platform.apps.cli", "serve", "--host", "127.0.0.1",  # what users run
           "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def _wait_job(http: httpx.AsyncClient, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("done", "failed"):
            return dict(job)
        await asyncio.sleep(0.25)
    raise TimeoutError(f"job {job_id} did not finish in {timeout_s} s")


async def _upload(http: httpx.AsyncClient, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    r = await http.post("/v1/collections/bench/documents", files=[("files", f) for f in files])
    r.raise_for_status()
    return await _wait_job(http, r.json()["job"]["id"])


class Recorder:
    """Latency and outcome of every request, by phase and endpoint."""

    def __init__(self) -> None:
        self.lat: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.samples: list[str] = []
        self.phase = "query"

    def add(self, endpoint: str, seconds: float, ok: bool, why: str = "") -> None:
        key = (self.phase, endpoint)
        self.lat[key].append(seconds)
        if not ok:
            self.errors[key] += 1
            if len(self.samples) < 10:
                self.samples.append(f"{self.phase}/{endpoint}: {why}"[:300])


async def _client(i: int, http: httpx.AsyncClient, rec: Recorder, stop: asyncio.Event) -> None:
    for n in range(MAX_REQUESTS_PER_CLIENT):
        if stop.is_set():
            return
        q = QUESTIONS[(i * 7 + n) % len(QUESTIONS)]
        kind = ("search", "ask_cached", "ask_uncached")[(i + n) % 3]
        if kind == "search":
            url, body = "/v1/collections/bench/search", {"query": q, "k": 5}
        else:
            url, body = "/v1/collections/bench/ask", {"question": q, "cache": kind == "ask_cached"}
        t0 = time.perf_counter()
        try:
            r = await http.post(url, json=body)
            ok = r.status_code == 200 and (kind != "search" or bool(r.json()["hits"]))
            why = "" if ok else f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            ok, why = False, f"{type(e).__name__}: {e}"
        rec.add(kind, time.perf_counter() - t0, ok, why)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rag-load-")) / "home"
    home.mkdir(parents=True)
    key = _admin_key(home)
    port = _free_port()
    proc = _start_server(home, port)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.clients + 4, max_keepalive_connections=args.clients + 4)
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300,
                                     limits=limits) as http:
            for _ in range(600):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.25)
            (await http.post("/v1/collections", json={"name": "bench"})).raise_for_status()
            corpus = [p for d in ("samples", "docs") for p in sorted((REPO / d).iterdir())
                      if p.suffix in (".pdf", ".docx", ".html", ".md")]
            t0 = time.perf_counter()
            setup = await _upload(http, [(p.name, p.read_bytes()) for p in corpus])
            setup_s = time.perf_counter() - t0
            assert setup["report"]["summary"]["failed"] == 0, setup["report"]
            for q in QUESTIONS[:3]:  # warm the first-use paths (index load, answerer)
                (await http.post("/v1/collections/bench/ask", json={"question": q})).raise_for_status()

            rec, stop = Recorder(), asyncio.Event()
            clients = [asyncio.create_task(_client(i, http, rec, stop)) for i in range(args.clients)]
            t_query = time.perf_counter()
            await asyncio.sleep(args.seconds)
            query_s = time.perf_counter() - t_query
            rec.phase = "ingest"
            t_ingest = time.perf_counter()
            job = await _upload(http, [(n, t.encode()) for n, t in NEW_DOCS.items()])
            job_s = time.perf_counter() - t_ingest
            found = (await http.post("/v1/collections/bench/search",
                                     json={"query": "quartz lighthouse amber lenses", "k": 3, "mode": "bm25"})).json()
            await asyncio.sleep(max(0.0, args.ingest_seconds - (time.perf_counter() - t_ingest)))
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), timeout=400)
            ingest_s = time.perf_counter() - t_ingest  # includes the drain of requests still in flight
            metrics = (await http.get("/metrics")).text
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0].decode(errors="replace")

    rows = []
    for (phase, endpoint), lat in sorted(rec.lat.items()):
        a = np.array(lat) * 1000
        wall = query_s if phase == "query" else ingest_s
        rows.append({"phase": phase, "endpoint": endpoint, "requests": len(lat), "rps": len(lat) / wall,
                     "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                     "errors": rec.errors[(phase, endpoint)]})
    for phase, wall in (("query", query_s), ("ingest", ingest_s)):
        lat = [x for (p, _), v in rec.lat.items() if p == phase for x in v]
        a = np.array(lat or [0.0]) * 1000
        rows.append({"phase": phase, "endpoint": "ALL", "requests": len(lat), "rps": len(lat) / wall,
                     "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                     "errors": sum(v for (p, _), v in rec.errors.items() if p == phase)})
    new_found = any("batch-" in h["source"] for h in found.get("hits", []))
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "clients": args.clients,
        "seconds": {"query": round(query_s, 2), "ingest": round(ingest_s, 2), "setup_upload": round(setup_s, 2),
                    "ingest_job": round(job_s, 2)},
        "setup": setup["report"]["summary"], "ingest_job": {"status": job["status"],
                                                           "summary": (job["report"] or {}).get("summary")},
        "new_docs_searchable": new_found, "rows": rows,
        "errors_total": sum(rec.errors.values()), "error_samples": rec.samples,
        "server_log_tail": out[-2000:],
        "metrics_provider_attempts": [ln for ln in metrics.splitlines() if ln.startswith("rag_provider_attempts")],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "server": "uvicorn, 1 worker, extractive answerer, 127.0.0.1",
    }


def table(result: dict[str, Any]) -> str:
    head = f"{'phase':<7} {'endpoint':<13} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['phase']:<7} {r['endpoint']:<13} {r['requests']:>8} {r['rps']:>7.1f} "
                     f"{r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} {r['errors']:>6}")
    s = result["seconds"]
    lines.append(f"clients {result['clients']}; query phase {s['query']} s, ingest phase {s['ingest']} s "
                 f"(new batch job {result['ingest_job']['status']} in {s['ingest_job']} s: "
                 f"{result['ingest_job']['summary']}; new docs searchable: {result['new_docs_searchable']}); "
                 f"errors total {result['errors_total']}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="Query phase length.")
    p.add_argument("--ingest-seconds", type=float, default=20.0, help="Ingest phase length (at least the job).")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    args = p.parse_args()
    result = asyncio.run(run(args))
    result["args"] = {"seconds": args.seconds, "ingest_seconds": args.ingest_seconds, "clients": args.clients}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {args.out}")
    if result["error_samples"]:
        print("error samples:", *result["error_samples"], sep="\n  ")


if __name__ == "__main__":
    main()
