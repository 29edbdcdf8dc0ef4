"""Sync benchmark: a no-change pass over many files, and save-to-searchable under `rag watch`.

In one run:

* writes `--files` small text files (the first words of a SciFact abstract each) and
  syncs them once (`ingest.sync.sync_paths`);
* times no-change passes over the same folder (every file hashed, nothing loaded);
* fills the collection up to `--chunks` chunks with more SciFact texts (`ingest_texts`);
* runs the watcher (`ingest.watch.watch_folders`, default settle 1.0 s, debounce 300 ms) in a
  thread and, `--saves` times, saves one new file with a unique word and times until a
  BM25 search for that word returns the file. With the live index (rag.store.live) a save
  writes one small segment; the figure includes the settle wait (`--settle`), the debounce,
  the sync pass and the search.

Run from the repository root:

    .venv/bin/python bench/sync.py                         # 5,000 files, 10k chunks -> bench/results/sync.json
    .venv/bin/python bench/sync.py --files 500 --chunks 1000 --out /tmp/sync.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag import RAG  # noqa: E402
from rag.types import SourceText  # noqa: E402
from rag_platform.eval.datasets import load_beir  # noqa: E402
from rag_platform.ingest.sync import SyncReport, sync_paths  # noqa: E402
from rag_platform.ingest.watch import watch_folders  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_OUT = REPO / "bench" / "results" / "sync.json"
TARGET_SAVE_S = 5.0  # once the live index has landed


def short(text: str, chars: int = 80) -> str:
    return text[:chars].rsplit(" ", 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    corpus = load_beir(SCIFACT, "test").corpus
    ids = sorted(corpus)
    texts = [short(corpus[d][1]) for d in ids if corpus[d][1]]
    with tempfile.TemporaryDirectory() as tmp:
        folder, home = Path(tmp) / "docs", Path(tmp) / "home"
        for i in range(args.files):
            path = folder / f"d{i // 500:02d}" / f"note-{i:05d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(texts[i % len(texts)] + f" (note {i})\n", encoding="utf-8")
        rag = RAG.open(home)
        rag.embedder.encode(["warm up"])
        rag.store.collection("sync", create=True)
        t0 = time.perf_counter()
        first = sync_paths(rag, [folder], collection="sync")
        first_s = time.perf_counter() - t0
        print(f"first sync: {first.summary()} in {first_s:.1f}s", flush=True)
        no_change = []
        for _ in range(3):
            t0 = time.perf_counter()
            again = sync_paths(rag, [folder], collection="sync")
            no_change.append(time.perf_counter() - t0)
            assert not again.changed and again.unchanged == args.files, again.summary()
        print(f"no-change passes over {args.files} files: {[round(s, 2) for s in no_change]} s", flush=True)

        have = rag.store.chunk_count("sync")
        extra = [SourceText(source=f"extra-{i}", text=short(corpus[d][1]) + f" (extra {i})")
                 for i, d in enumerate(ids * 3) if i < max(args.chunks - have, 0)]
        if extra:
            rag.ingest_texts(extra, collection="sync")
        chunks = rag.store.chunk_count("sync")
        print(f"collection: {chunks} chunks", flush=True)

        stop = threading.Event()
        passes: list[float] = []
        rebuilt: list[bool] = []

        def on_sync(report: SyncReport) -> None:
            passes.append(report.seconds)
            rebuilt.append(report.index_rebuilt)

        watcher = threading.Thread(target=watch_folders, args=(rag, [folder]), daemon=True,
                                   kwargs={"collection": "sync", "stop": stop, "settle_s": args.settle,
                                           "on_sync": on_sync})
        watcher.start()
        while not passes:  # the watcher's first, full pass
            time.sleep(0.1)
        latencies = []
        for k in range(args.saves):
            word = f"zebrafinch{k}quokka"
            path = folder / f"live-{k}.txt"
            t0 = time.perf_counter()
            path.write_text(f"A new note saved now mentions {word} and the harbour cranes.\n", encoding="utf-8")
            while True:
                hits = rag.search(word, collection="sync", k=1, mode="bm25")
                if hits and hits[0].source == str(path):
                    break
                time.sleep(0.05)
            latencies.append(time.perf_counter() - t0)
            print(f"save {k}: searchable after {latencies[-1]:.2f}s (sync pass {passes[-1]:.2f}s)", flush=True)
        stop.set()
        watcher.join(timeout=60)

    out = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
           "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "files": args.files,
           "first_sync_s": round(first_s, 2), "no_change_pass_s": [round(s, 3) for s in no_change],
           "no_change_pass_median_s": round(statistics.median(no_change), 3), "chunks": chunks,
           "settle_s": args.settle, "save_to_searchable_s": [round(s, 2) for s in latencies],
           "save_to_searchable_median_s": round(statistics.median(latencies), 2),
           "sync_pass_s_after_save": [round(s, 2) for s in passes[1:]],
           "target_save_s": TARGET_SAVE_S, "index": "live (one segment per change)",
           "index_rebuilt_after_save": rebuilt[1:]}
    print("\n| measure | value |\n|---|---|")
    print(f"| no-change pass over {args.files:,} files (median of 3) | {out['no_change_pass_median_s']:.2f} s |")
    print(f"| first sync of {args.files:,} files | {first_s:.1f} s |")
    print(f"| save -> searchable, {chunks:,} chunks, settle {args.settle} s (median of {args.saves}) "
          f"| {out['save_to_searchable_median_s']:.2f} s (target <= {TARGET_SAVE_S} s) |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
