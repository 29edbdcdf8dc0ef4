"""Search p99 while a 10k-chunk ingest runs into the same collection: in the same process, and from a
second process sharing the data home (the API serving while `rag ingest` runs from a shell).

Uses a corpus built by `bench/scale_local.py --home DIR` (hash-seeded embedder, so only the ledger and
the index are timed) and puts it back as it was afterwards. Phases in one run, on the same cores:
idle searches, searches beside an ingest thread, idle again, searches beside an ingest process.
Prints a table and writes JSON. Run:
`python bench/ingest_beside_search.py --home /work/scale-home --sizes 10000 1000000`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.scale_local import HashEmbedder, latencies, make_doc, restore  # noqa: E402
from rag import RAG  # noqa: E402
from rag.config import IngestSettings, Settings  # noqa: E402

START = 3 * 10**6  # document numbers of the ingested batch: never part of the built corpus
DOCS = 2500  # about 10k chunks


def open_home(home: Path) -> RAG:
    return RAG.open(settings=Settings(home=home, ingest=IngestSettings(batch_files=256)), embedder=HashEmbedder())


def ingest(home: Path) -> None:
    """What the second process runs: the same batches as the thread."""
    rag = open_home(home)
    docs = [make_doc(START + j) for j in range(DOCS)]
    print("ready", flush=True)
    sys.stdin.readline()
    for b in range(0, DOCS, 250):
        rag.ingest_texts(docs[b:b + 250], collection="c")


def remove(rag: RAG) -> None:
    rag.store.write_batch(rag.store.collection("c"), [], removed=[f"doc{START + j:07d}" for j in range(DOCS)])
    rag.store.wait_background()


def measure(home: Path, queries: list[str], nices: list[int], rounds: int) -> dict[str, Any]:
    rag = open_home(home)
    remove(rag)  # a run stopped part-way may have left some
    latencies(rag, queries[:50])  # warm: snapshot, caches
    idle = latencies(rag, queries)
    out: dict[str, Any] = {"chunks": next(c.chunks for c in rag.store.ledger.collection_stats() if c.name == "c")}
    arms: dict[str, list[float]] = {"idle": list(idle)}
    for _round in range(rounds):
        arms.setdefault("thread", []).extend(beside_thread(rag, queries))
        arms["idle"].extend(latencies(rag, queries))
        for nice in nices:
            arms.setdefault(f"process_nice{nice}", []).extend(beside_process(rag, home, queries, nice))
            arms["idle"].extend(latencies(rag, queries))
    restore(rag)
    p99 = {name: float(np.percentile(v, 99)) for name, v in arms.items()}
    out.update({f"{k}_p99_ms": v for k, v in p99.items()})  # idle: every idle phase, between the others
    out.update({f"{k}_ratio_p99": v / p99["idle"] for k, v in p99.items() if k != "idle"})
    out["searches"] = {k: len(v) for k, v in arms.items()}
    return out


def beside_thread(rag: RAG, queries: list[str]) -> list[float]:
    """Searches while a thread of this process ingests (a library user calling both in one process)."""
    busy: list[float] = []
    done = threading.Event()
    docs = [make_doc(START + j) for j in range(DOCS)]

    def run() -> None:
        try:
            for b in range(0, DOCS, 250):
                rag.ingest_texts(docs[b:b + 250], collection="c")
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    while not done.is_set():
        busy.extend(latencies(rag, queries[:20]).tolist())
    thread.join()
    remove(rag)
    return busy


def beside_process(rag: RAG, home: Path, queries: list[str], nice: int) -> list[float]:
    """Searches while a second process ingests into the same home at OS priority `nice`: `rag ingest`
    from a shell beside `rag serve` (nice 0), or the server's own ingest process (`api.ingest_nice`)."""
    child = subprocess.Popen([sys.executable, __file__, "--child", str(home)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(nice))
    assert child.stdout is not None and child.stdin is not None
    child.stdout.readline()  # "ready": its documents are made, the ingest starts now
    child.stdin.write("go\n")
    child.stdin.flush()
    other: list[float] = []
    while child.poll() is None:
        other.extend(latencies(rag, queries[:20]).tolist())
    if child.returncode:
        raise SystemExit(f"the ingest process failed with exit code {child.returncode}")
    remove(rag)
    return other


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        ingest(Path(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="the --home of bench/scale_local.py")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--nice", type=int, nargs="+", default=[0, 10],
                    help="OS priorities of the ingest process arms (0: a shell's `rag ingest`; 10: the server's)")
    ap.add_argument("--rounds", type=int, default=2, help="each arm this many times, interleaved")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest_beside_search.json")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    from bench.scale_local import VOCAB

    queries = [" ".join(VOCAB[j] for j in np.minimum(rng.zipf(1.2, 6) - 1, len(VOCAB) - 1))
               for _ in range(args.queries)]
    results = {str(n): measure(args.home / f"n{n}", queries, args.nice, args.rounds) for n in args.sizes}
    table = Table(title="search p99 beside a 10k-chunk ingest into the same collection (hash-seeded embedder)")
    arms = ["thread"] + [f"process_nice{n}" for n in args.nice]
    heads = {"thread": "ingest thread, same process"} | {f"process_nice{n}": f"ingest process, nice {n}"
                                                        for n in args.nice}
    for col in ("chunks", "idle p99", *(heads[a] + ": p99 (ratio)" for a in arms)):
        table.add_column(col, justify="right")
    for n, r in results.items():
        table.add_row(f"{r['chunks']:,}", f"{r['idle_p99_ms']:.1f} ms",
                      *(f"{r[a + '_p99_ms']:.1f} ms ({r[a + '_ratio_p99']:.2f}x)" for a in arms))
    Console().print(table)
    args.out.write_text(json.dumps({"results": results, "command": " ".join(["python", *sys.argv]),
                                    "date": datetime.now(UTC).date().isoformat()}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
