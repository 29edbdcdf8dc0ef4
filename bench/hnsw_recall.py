"""Dense recall@10 of the store's approximate index against exact search, on up to 1M real-model vectors.

Hash-seeded vectors (`bench/scale_local.py`) are near-duplicates of each other and say nothing about
HNSW; this script asks the question with the store's default embedder (all-MiniLM-L6-v2, int8 ONNX where
installed, through `rag.embed.make_embedder`, batch 64) over distinct real texts:

- from `../shared/data`: every window of 1 and 2 consecutive sentences (stride 1) of the SciFact abstracts
  and the SQuAD contexts, plus the SciFact titles, the SQuAD questions and the SciFact train claims
  (about 104k texts);
- with `--docstrings N`, N more: 1- to 4-sentence windows of the prose shipped in this environment (the
  docstrings and comments of every installed package and of the standard library, parsed with `ast`,
  and the .md / .rst / .txt files beside them and under /usr/share/doc; about 1.06M distinct texts).
  `--docstrings 896097` makes the corpus exactly 1M texts.

The 300 SciFact test claims (and with `--docstrings`, 300 more held-out docstring windows) are the
queries and are never in the corpus.

Vectors are cached under `.bench-cache/hnsw_recall/` (gitignored) in chunks, so a rerun, or a run
interrupted mid-way, does not re-embed (`--embed-only` just fills the cache; `--cached-only` measures
over what is cached so far).

For each size N (a fixed random subset of the corpus) the segment is built the way the store builds
it (`rag.store.segment.build` with the kind `dense_kind(N, settings.index.dense, hnsw_min_rows)`
picks, and the configured M / efConstruction; above the threshold that is HNSW; below it the store
searches exactly, so HNSW is also built by force to show where it would stand) and searched through
`SegmentDense.search`, the code path a search takes, at several efSearch values. Recall@10 is
measured at k=10 (the strict figure) and inside a k=fetch_k search (what hybrid retrieval asks the
dense side for: efSearch is then at least fetch_k). Latency is per query, flat and HNSW side by side
in the same run (the machine is shared: read ratios).

Run: `nice -n 5 .venv/bin/python bench/hnsw_recall.py [--docstrings 896097] [--sizes 10000 100000 0]
[--ef 16 32 64 128 256]` (size 0 = every text; 1M texts take about an hour to embed on 2 cores).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rag.config import EmbedderSettings, Settings  # noqa: E402
from rag.embed import make_embedder  # noqa: E402
from rag.store import segment as sg  # noqa: E402
from rag.store.dense import SegmentDense, dense_kind, set_search_threads  # noqa: E402

console = Console(width=150)
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / ".bench-cache" / "hnsw_recall"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_COMMENTS = re.compile(r"(?:^[ \t]*#[^\n!]*\n)+", re.M)
CHUNK = 4096  # texts per cached vector file


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if len(s) >= 20]


def real_texts(data: Path = DATA) -> tuple[list[str], list[str]]:
    """(corpus texts, held-out query texts): distinct real texts in a fixed random order."""
    passages: list[list[str]] = []
    titles: list[str] = []
    for line in (data / "scifact" / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        passages.append(_sentences(doc["text"]))
        titles.append(doc["title"])
    squad = json.loads((data / "squad" / "dev-v1.1-part1.json").read_text())
    questions: list[str] = []
    for article in squad["data"]:
        for para in article["paragraphs"]:
            passages.append(_sentences(para["context"]))
            questions.extend(qa["question"] for qa in para["qas"])
    rows = [json.loads(x) for x in (data / "scifact" / "queries.jsonl").read_text().splitlines()]
    claims = {r["_id"]: r["text"] for r in rows}
    qrels = (data / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[1:]
    test = {x.split("\t")[0] for x in qrels if x.strip()}
    held_out = [claims[q] for q in sorted(test, key=int)]
    train = [t for q, t in claims.items() if q not in test]
    corpus: set[str] = set(titles) | set(questions) | set(train)
    for sents in passages:
        for width in (1, 2):
            corpus.update(" ".join(sents[i:i + width]) for i in range(len(sents) - width + 1))
    corpus -= set(held_out)
    ordered = sorted(t for t in corpus if t.strip())
    order = np.random.default_rng(13).permutation(len(ordered))  # any prefix is a random sample of the corpus
    return [ordered[i] for i in order], held_out


def _paragraphs(path: Path) -> list[str]:
    """Prose paragraphs of one file: docstrings and comment blocks of a .py file (parsed with `ast`, nothing
    run), else the blank-line separated paragraphs of a .md / .rst / .txt file."""
    try:
        raw = path.read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return []
    if path.suffix != ".py":
        return re.split(r"\n\s*\n", raw)
    try:
        tree = ast.parse(raw)
    except (SyntaxError, ValueError, RecursionError):
        return []
    kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    comments = [re.sub(r"^\s*#+ ?", "", block, flags=re.M) for block in _COMMENTS.findall(raw)]
    return comments + [p for node in ast.walk(tree) if isinstance(node, kinds)
                       for p in re.split(r"\n\s*\n", ast.get_docstring(node) or "")]


def docstring_texts(limit: int) -> list[str]:
    """Up to `limit` more real texts: 1- to 4-sentence windows of the prose shipped with this environment:
    the docstrings and comments of every installed Python package and of the standard library, and the .md / .rst / .txt
    files beside them and under /usr/share/doc (technical English, a different domain from SciFact and SQuAD).

    Files walked in sorted order and the result shuffled with a fixed seed, so the set is reproducible for a
    given environment and any prefix samples every package. Cached as one JSON list (parsing takes minutes).
    """
    cache = CACHE / "docstring-texts.json"
    if cache.exists():
        texts: list[str] = json.loads(cache.read_text())
        return texts[:limit]
    roots = sorted({Path(p) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"])}
                   | {Path("/usr/share/doc")})
    seen: set[str] = set()
    out: list[str] = []
    for root in roots:
        files = (f for ext in ("py", "md", "rst", "txt") for f in root.rglob(f"*.{ext}"))
        for path in sorted(files):
            for para in _paragraphs(path):
                para = " ".join(para.split())
                if ">>>" in para or len(para) < 40:
                    continue
                sents = [s for s in _sentences(para) if len(s) <= 400 and
                         sum(ch.isalpha() for ch in s) > 0.6 * len(s)]
                for width in (1, 2, 3, 4):
                    for i in range(len(sents) - width + 1):
                        t = " ".join(sents[i:i + width])
                        if t not in seen:
                            seen.add(t)
                            out.append(t)
    out = [out[i] for i in np.random.default_rng(13).permutation(len(out))]  # a prefix samples every package
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.with_suffix(".tmp").write_text(json.dumps(out))
    os.replace(cache.with_suffix(".tmp"), cache)
    return out[:limit]


def embed_cached(embedder: Any, texts: list[str], name: str,
                 embed: bool = True) -> tuple[np.ndarray, list[int]]:
    """(vectors, positions in `texts`) with batch 64, cached per chunk of CHUNK texts under CACHE/<key>/.

    `embed=False`: only the chunks already cached (the order is random, so any set of chunks is a random sample).
    """
    key = hashlib.sha256((embedder.model_id + "\n" + "\n".join(texts)).encode()).hexdigest()[:16]
    folder = CACHE / f"{name}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    parts, rows = [], []
    t0, done = time.perf_counter(), 0
    for start in range(0, len(texts), CHUNK):
        path = folder / f"{start:07d}.npy"
        if not path.exists() and not embed:
            continue
        if not path.exists():
            vecs = embedder.encode(texts[start:start + CHUNK], batch_size=64)
            np.save(folder / f"{start:07d}.tmp.npy", vecs)
            os.replace(folder / f"{start:07d}.tmp.npy", path)
            done += min(CHUNK, len(texts) - start)
            rate = done / (time.perf_counter() - t0)
            console.print(f"{name}: embedded {start + len(vecs):,}/{len(texts):,} ({rate:.0f} texts/s)")
        parts.append(np.load(path))
        rows.extend(range(start, start + len(parts[-1])))
    dim = parts[0].shape[1] if parts else 384
    return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros((0, dim)), dtype=np.float32), rows


def measure(approx: SegmentDense, exact: SegmentDense, queries: np.ndarray, ef: int, fetch_k: int) -> dict[str, float]:
    """Recall@10 of `approx` at efSearch=ef against `exact` (at k=10 and inside a k=fetch_k search), p50 ms."""
    r10, rfetch, t_approx, t_flat = [], [], [], []
    for q in queries:
        t0 = time.perf_counter()
        want, _ = exact.search(q, 10, None, ef)
        t1 = time.perf_counter()
        got, _ = approx.search(q, 10, None, ef)
        t2 = time.perf_counter()
        wide, _ = approx.search(q, fetch_k, None, ef)
        truth = set(want.tolist())
        r10.append(len(truth & set(got.tolist())) / 10)
        rfetch.append(len(truth & set(wide[:10].tolist())) / 10)
        t_flat.append((t1 - t0) * 1000)
        t_approx.append((t2 - t1) * 1000)
    return {"recall_at_10": float(np.mean(r10)), "min_recall_at_10": float(np.min(r10)),
            "recall_at_10_in_fetch_k": float(np.mean(rfetch)),
            "approx_p50_ms": float(np.median(t_approx)), "flat_p50_ms": float(np.median(t_flat))}


def run_size(vecs: np.ndarray, queries: np.ndarray, n: int, settings: Settings, efs: list[int]) -> dict[str, Any]:
    """Build the store's segment over a fixed random `n`-row subset and measure it against exact search."""
    cfg = settings.index
    rows = np.sort(np.random.default_rng(13).permutation(len(vecs))[:n])
    sub = np.ascontiguousarray(vecs[rows])
    ids = np.arange(n, dtype=np.int64)
    picked = dense_kind(n, cfg.dense, cfg.hnsw_min_rows)
    t0 = time.perf_counter()
    hnsw = sg.build(ids, sub, [[] for _ in range(n)], dense_kind="hnsw", hnsw_m=cfg.hnsw_m,
                    ef_construction=cfg.hnsw_ef_construction)
    build_s = time.perf_counter() - t0
    exact = SegmentDense(sg.build(ids, sub, [[] for _ in range(n)], dense_kind="flat"))
    approx = SegmentDense(hnsw)
    out: dict[str, Any] = {"rows": n, "store_picks": picked, "hnsw_build_s": build_s, "by_ef_search": {}}
    for ef in efs:
        out["by_ef_search"][str(ef)] = measure(approx, exact, queries, ef, settings.retrieval.fetch_k)
        r = out["by_ef_search"][str(ef)]
        console.print(f"  {n:,} rows efSearch {ef}: recall@10 {r['recall_at_10']:.4f} "
                      f"(in fetch_k {r['recall_at_10_in_fetch_k']:.4f}) HNSW {r['approx_p50_ms']:.3f} ms "
                      f"flat {r['flat_p50_ms']:.3f} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, 100_000, 0])
    ap.add_argument("--ef", type=int, nargs="*", default=[16, 32, 64, 128, 256])
    ap.add_argument("--docstrings", type=int, default=0, metavar="N",
                    help="add up to N docstring sentence windows of the installed packages (to reach 1M real texts)")
    ap.add_argument("--embed-only", action="store_true", help="fill the vector cache and stop")
    ap.add_argument("--cached-only", action="store_true",
                    help="measure over the vectors cached so far (a random sample of the corpus), embed nothing")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hnsw_recall.json")
    args = ap.parse_args()
    settings = Settings()
    embedder = make_embedder(EmbedderSettings())  # the store's default (int8 ONNX where installed)
    texts, held_out = real_texts()
    if args.docstrings:
        extra = [t for t in docstring_texts(args.docstrings + 300) if t not in set(held_out)]
        held_out = held_out + extra[args.docstrings:args.docstrings + 300]  # queries from that domain too
        texts = texts + extra[:args.docstrings]
    total = len(texts)
    console.print(f"{len(texts):,} distinct corpus texts, {len(held_out)} held-out queries")
    qvecs, _ = embed_cached(embedder, held_out, "queries")
    vecs, rows = embed_cached(embedder, texts, "corpus", embed=not args.cached_only)
    console.print(f"{len(vecs):,} corpus vectors cached ({len(vecs) / len(texts):.0%} of the corpus)")
    texts = [texts[i] for i in rows]
    if args.embed_only:
        return
    cfg = settings.index
    set_search_threads(cfg.search_threads)  # the OpenMP team a search in the store uses
    out: dict[str, Any] = {
        "model": embedder.model_id, "texts": len(texts), "corpus_texts_total": total, "dim": int(vecs.shape[1]),
        "queries": len(qvecs),
        "corpus": "SciFact abstract + SQuAD context sentence windows (1-2 sentences, stride 1), SciFact titles "
                  "and train claims, SQuAD questions" + (f", {args.docstrings:,} docstring sentence windows of the "
                  "installed packages" if args.docstrings else "") + "; queries: SciFact test claims" + (
                  " and 300 more docstring windows" if args.docstrings else "") + " (held out)",
        "dense": cfg.dense, "hnsw_min_rows": cfg.hnsw_min_rows, "hnsw_m": cfg.hnsw_m,
        "ef_construction": cfg.hnsw_ef_construction, "default_ef_search": cfg.hnsw_ef_search,
        "fetch_k": settings.retrieval.fetch_k, "search_threads": cfg.search_threads, "by_size": {}}
    for n in sorted({len(texts) if size <= 0 or size > len(texts) else size for size in args.sizes}):
        out["by_size"][str(n)] = run_size(vecs, qvecs, n, settings, args.ef)
    table = Table(title=f"HNSW (M={cfg.hnsw_m}, efConstruction={cfg.hnsw_ef_construction}) recall@10 vs exact, "
                        f"{embedder.model_id}, {len(qvecs)} held-out queries (shared machine: read ratios)")
    for col in ("rows", "store picks", "efSearch", "recall@10", "min", "recall@10 in fetch_k", "HNSW p50 ms",
                "flat p50 ms"):
        table.add_column(col, justify="right")
    for n, res in out["by_size"].items():
        for ef, r in res["by_ef_search"].items():
            mark = "*" if int(ef) == cfg.hnsw_ef_search else ""
            table.add_row(f"{int(n):,}", res["store_picks"], ef + mark, f"{r['recall_at_10']:.4f}",
                          f"{r['min_recall_at_10']:.1f}", f"{r['recall_at_10_in_fetch_k']:.4f}",
                          f"{r['approx_p50_ms']:.3f}", f"{r['flat_p50_ms']:.3f}")
    console.print(table)
    console.print(f"* the default efSearch (settings.index.hnsw_ef_search = {cfg.hnsw_ef_search})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
