"""HTTP search under load: today's server (fp32, each request embeds alone) against the new one (default
embedder, concurrent queries batched, model calls bounded), with the model's own batched rate beside them.

In one run, only on 127.0.0.1:

1. ingests `--docs` SciFact abstracts into one collection per embedder in a fresh data home (library API);
2. measures the bare fp32 model encoding distinct SciFact queries in batches of 64 (queries/s): the rate
   the model allows, the yardstick of the issue (target: HTTP searches/s >= 0.5x of it);
3. for each server config (`before`: fp32, `RAG_SERVING__BATCH_QUERIES=false`; `after`: the default
   embedder with batching): starts `rag serve` (uvicorn, 1 worker), then
   one client for `--single-seconds` (p50: "a single client's p50 no worse than today"), then
   `--clients` concurrent clients for `--seconds`. Every query is distinct (a SciFact claim plus a
   counter), so no cache ever hits. Errors must be 0.

Prints a table, writes bench/results/load_search.json with the load average next to the figures
(the machine is shared: absolute figures are noisy; the ratios come from the same run).

    .venv/bin/python bench/load_search.py                              # 2,000 docs, 50 clients, 60 s
    .venv/bin/python bench/load_search.py --docs 500 --seconds 20 --clients 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.load import _admin_key, _free_port  # noqa: E402
from rag.config import EmbedderSettings  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"
CONFIGS = {
    "before": {"backend": "sentence-transformers", "env": {"RAG_SERVING__BATCH_QUERIES": "false"}},
    "after": {"backend": EmbedderSettings().backend, "env": {}},
}


def _corpus(n: int) -> tuple[list[tuple[str, str]], list[str]]:
    docs = [json.loads(line) for line, _ in zip(open(DATA / "corpus.jsonl", encoding="utf-8"), range(n))]
    queries = [json.loads(line)["text"] for line in open(DATA / "queries.jsonl", encoding="utf-8")]
    return [(f"scifact/{d['_id']}", f"{d['title']}\n\n{d['text']}") for d in docs], queries


def _ingest(home: Path, docs: list[tuple[str, str]], backend: str) -> dict[str, Any]:
    from rag import RAG, SourceText
    from rag.config import Settings

    rag = RAG.open(settings=Settings(home=home, embedder=EmbedderSettings(backend=backend)))
    t0 = time.perf_counter()
    report = rag.ingest_texts([SourceText(source=s, text=t) for s, t in docs], collection=_coll(backend))
    return {"seconds": time.perf_counter() - t0, "summary": report.summary()}


def _coll(backend: str) -> str:
    return "c_" + backend.replace("-", "_")


def model_rate(queries: list[str], seconds: float = 10.0) -> dict[str, float]:
    """Bare fp32 `encode` of distinct queries in batches of 64: queries/s the model allows."""
    from rag.embed import make_embedder

    emb = make_embedder(EmbedderSettings(backend=CONFIGS["after"]["backend"]))
    emb_fp32 = emb if emb.model_id == EmbedderSettings().model else make_embedder(
        EmbedderSettings(backend="sentence-transformers"))
    out = {}
    for name, e in (("fp32", emb_fp32), ("after_backend", emb)):
        e.encode(queries[:64], batch_size=64)
        done, t0, i = 0, time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            batch = [f"{q} #{i}" for q in queries[i % len(queries):][:64]]
            e.encode(batch, batch_size=64)
            done, i = done + len(batch), i + 64
        out[f"{name}_queries_per_second"] = done / (time.perf_counter() - t0)
    return out


async def _clients(base: str, key: str, collection: str, queries: list[str], clients: int,
                   seconds: float, tag: str) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                 limits=limits) as http:
        async def one(c: int) -> None:
            n = 0
            while time.monotonic() < stop:
                q = f"{queries[(c * 7919 + n) % len(queries)]} ({tag} {c}.{n})"  # distinct: no cache hit
                n += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post(f"/v1/collections/{collection}/search", json={"query": q, "k": 10})
                    ok = r.status_code == 200 and bool(r.json()["hits"])
                    if not ok and len(errors) < 10:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as e:
                    ok = False
                    errors.append(f"{type(e).__name__}: {e}"[:200])
                if ok:
                    lat.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in range(clients)))
        wall = time.perf_counter() - t0
    a = np.array(lat or [0.0]) * 1000
    return {"clients": clients, "seconds": round(wall, 2), "requests": len(lat), "searches_per_second": len(lat) / wall,
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "errors": len(errors), "error_samples": errors, "load_average": list(os.getloadavg())}


async def _serve(home: Path, name: str, cfg: dict[str, Any], key: str, queries: list[str],
                 args: argparse.Namespace) -> dict[str, Any]:
    import subprocess

    port = _free_port()
    env = {**os.environ, "RAG_HOME": str(home), "PYTHONPATH": str(REPO), "RAG_EMBEDDER__BACKEND": cfg["backend"],
           "RAG_API__RATE_PER_S": "1000000", "RAG_API__BURST": "1000000", **cfg["env"]}
    proc = subprocess.Popen([sys.executable, "-m", "rag_platform.apps.cli", "serve", "--host",  # what users run
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base, coll = f"http://127.0.0.1:{port}", _coll(cfg["backend"])
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as h:
            for _ in range(1200):
                try:
                    if (await h.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.25)
            for q in queries[:5]:  # load the model and the index
                (await h.post(f"/v1/collections/{coll}/search", json={"query": q})).raise_for_status()
        single = await _clients(base, key, coll, queries, 1, args.single_seconds, f"{name}-s")
        crowd = await _clients(base, key, coll, queries, args.clients, args.seconds, f"{name}-c")
    finally:
        proc.terminate()
        try:
            log = proc.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0].decode(errors="replace")
    return {"backend": cfg["backend"], "env": cfg["env"], "single": single, "crowd": crowd,
            "server_log_tail": log[-1500:]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    docs, queries = _corpus(args.docs)
    home = Path(tempfile.mkdtemp(prefix="rag-load-search-")) / "home"
    load_start = list(os.getloadavg())
    ingests = {b: _ingest(home, docs, b) for b in dict.fromkeys(c["backend"] for c in CONFIGS.values())}
    key = _admin_key(home)
    rate_before = model_rate(queries, args.rate_seconds)
    servers = {name: asyncio.run(_serve(home, name, cfg, key, queries, args)) for name, cfg in CONFIGS.items()}
    rate_after = model_rate(queries, args.rate_seconds)
    fp32_rate = max(rate_before["fp32_queries_per_second"], rate_after["fp32_queries_per_second"])
    return {
        "benchmark": "load_search", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "docs": len(docs), "ingest": ingests, "model_rate_before": rate_before, "model_rate_after": rate_after,
        "fp32_batched_queries_per_second": fp32_rate, "servers": servers,
        "ratio_after_over_model": servers["after"]["crowd"]["searches_per_second"] / fp32_rate,
        "ratio_before_over_model": servers["before"]["crowd"]["searches_per_second"] / fp32_rate,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": load_start, "load_average_at_end": list(os.getloadavg())},
        "server": "uvicorn, 1 worker, 127.0.0.1, hybrid search (default settings), k=10",
    }


def table(res: dict[str, Any]) -> str:
    lines = [f"{'server':<8} {'backend':<22} {'clients':>7} {'req':>6} {'search/s':>9} {'p50 ms':>8} "
             f"{'p99 ms':>8} {'errors':>6} {'load avg':>8}"]
    for name, s in res["servers"].items():
        for part in ("single", "crowd"):
            r = s[part]
            lines.append(f"{name:<8} {s['backend']:<22} {r['clients']:>7} {r['requests']:>6} "
                         f"{r['searches_per_second']:>9.1f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                         f"{r['errors']:>6} {r['load_average'][0]:>8.1f}")
    lines.append(f"bare fp32 batched query encoding: {res['fp32_batched_queries_per_second']:.1f} queries/s; "
                 f"crowd search/s over it: before {res['ratio_before_over_model']:.2f}, "
                 f"after {res['ratio_after_over_model']:.2f} (target >= 0.5)")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=2000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--single-seconds", type=float, default=15.0)
    p.add_argument("--rate-seconds", type=float, default=10.0)
    p.add_argument("--after-backend", default=EmbedderSettings().backend,
                   help="embedder of the `after` server (default: the default backend)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load_search.json")
    args = p.parse_args()
    CONFIGS["after"]["backend"] = args.after_backend
    res = run(args)
    res["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(table(res))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
