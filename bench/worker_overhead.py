"""What the bounded loader workers cost: SciFact abstracts as files, ingested with workers and without.

Writes N SciFact abstracts (title + text) as .txt files, then ingests the folder into a fresh data
home with `limits.isolate=true` (files parsed by the worker pool, parsing overlapping embedding)
and with `isolate=false` (parsed in this process), in the order with, without, without, with so
drift on shared cores cancels. The embedding model is loaded once and shared by every run; the
pool is closed before each isolated run, so its start-up is counted. Target: time with workers /
without <= 1.10. Prints a table and writes bench/results/worker_overhead.json.

    nice -n 10 .venv/bin/python bench/worker_overhead.py --docs 5183     # all of SciFact
    nice -n 10 .venv/bin/python bench/worker_overhead.py --docs 600      # a subset on busy cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag import RAG  # noqa: E402
from rag.config import EmbedderSettings, LimitsSettings, Settings  # noqa: E402
from rag.embed import make_embedder  # noqa: E402
from rag_platform.ingest.workers import close_pools, cores  # noqa: E402

CORPUS = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def write_files(folder: Path, n: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(CORPUS) as fh:
        for line in fh:
            if count >= n:
                break
            doc = json.loads(line)
            (folder / f"{doc['_id']}.txt").write_text(f"{doc.get('title', '')}\n\n{doc['text']}")
            count += 1
    return count


def run(folder: Path, home: Path, embedder: object, isolate: bool) -> dict[str, float]:
    if isolate:
        close_pools()  # count the workers' start-up
    settings = Settings(home=home, limits=LimitsSettings(isolate=isolate))
    rag = RAG.open(settings=settings, embedder=embedder)
    t0 = time.perf_counter()
    report = rag.ingest([folder], collection="scifact")
    wall = time.perf_counter() - t0
    assert report.count("ok") == len(list(folder.iterdir())), report.summary()
    return {"wall_s": round(wall, 2), **{f"{k}_s": round(v, 2) for k, v in report.stage_seconds.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=5183)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "worker_overhead.json")
    args = ap.parse_args()
    embedder = make_embedder(EmbedderSettings())
    embedder.encode(["warm up"])
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        folder = Path(tmp) / "scifact"
        n = write_files(folder, args.docs)
        for i, isolate in enumerate((True, False, False, True)):
            row = run(folder, Path(tmp) / f"home{i}", embedder, isolate)
            runs.append({"workers": isolate, **row})
            print(f"run {i}: {'workers' if isolate else 'in-process':<11} {row}", flush=True)
    close_pools()
    with_s = sum(float(r["wall_s"]) for r in runs if r["workers"])
    without_s = sum(float(r["wall_s"]) for r in runs if not r["workers"])
    ratio = with_s / without_s
    result = {"bench": "worker_overhead", "date": datetime.now(UTC).isoformat(timespec="seconds"), "docs": n,
              "cores": cores(), "runs": runs, "with_workers_s": round(with_s, 2), "in_process_s": round(without_s, 2),
              "ratio": round(ratio, 3), "targets": {"ratio<=1.10": ratio <= 1.10}}
    print(f"\n{'docs':<28}{n:>10}\n{'with workers (2 runs, s)':<28}{with_s:>10.1f}\n"
          f"{'in-process (2 runs, s)':<28}{without_s:>10.1f}\n{'ratio (target <= 1.10)':<28}{ratio:>10.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
