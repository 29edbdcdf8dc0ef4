"""Ingestion benchmark on SciFact: pipeline throughput against the bare embedder.

Measures, in one process and one run:

* a first ingest of the SciFact corpus through the real pipeline
  (`RAG.open(home).ingest_texts(...)`): wall time, docs/s, chunks, tokens
  embedded, tokens/s and the time of each stage (load, chunk, embed, index,
  ledger, and "other" = wall minus the stages);
* the embedder's bare `encode` on the same chunk texts (read back from the
  ledger), with the same model object and batch size, run after the ingest;
* the ratio of pipeline tokens/s to bare tokens/s (target >= 0.8);
* a re-ingest of the unchanged corpus (target: >= 50x faster than the first);
* index size on disk against the raw size of vectors plus chunk text
  (target: index folder < 2x raw), and the SQLite ledger beside it;
* peak RSS and the machine it ran on;
* the issue-16 yardstick: the pipeline's tokens/s (default embedder) over bare **fp32** `encode`
  tokens/s on the same texts (target >= 2.0), and with `--cli` the whole `rag ingest DIR` command
  (a subprocess, process start and model load included) on the same abstracts written as .txt files.

The model is loaded (and warmed) before any timing starts, and so is the
ledger (its migrations run on first open), so neither is in any figure.

Run from the repository root:

    .venv/bin/python bench/ingest.py                      # full corpus -> bench/results/ingest.json
    .venv/bin/python bench/ingest.py --limit 200 --out /tmp/ingest_small.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# `python bench/<script>.py` puts bench/ first on sys.path; the checkout goes before it, so that
# `ingest` is the package, not bench/ingest.py.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag import RAG  # noqa: E402
from rag.types import SourceText  # noqa: E402

CORPUS = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
DEFAULT_OUT = REPO / "bench" / "results" / "ingest.json"
COLLECTION = "scifact"
STAGES = ("load", "chunk", "embed", "index", "ledger")
TARGET_RATIO = 0.8
TARGET_SPEEDUP = 50.0
TARGET_INDEX_OVER_RAW = 2.0
TARGET_OVER_FP32 = 2.0


@dataclass(frozen=True)
class IngestTiming:
    """One `ingest_texts` call: our wall clock, this process's CPU time, and its report."""

    wall: float
    cpu: float
    report: Any


def load_corpus(path: Path, limit: int | None) -> list[SourceText]:
    """The first `limit` BEIR corpus rows (all when None) as SourceTexts."""
    docs: list[SourceText] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(docs) >= limit:
                break
            row = json.loads(line)
            docs.append(SourceText(source=str(row["_id"]), title=row.get("title") or None, text=row["text"]))
    return docs


def timed_ingest(rag: RAG, docs: list[SourceText]) -> IngestTiming:
    t0, c0 = time.perf_counter(), time.process_time()
    report = rag.ingest_texts(docs, collection=COLLECTION)
    return IngestTiming(time.perf_counter() - t0, time.process_time() - c0, report)


def ledger_chunks(rag: RAG) -> tuple[list[str], list[int], int, int]:
    """Distinct chunk texts (first occurrence order), their token counts, all chunks, all text bytes.

    The pipeline embeds each distinct text once, so the bare run encodes the
    same distinct texts.
    """
    from sqlalchemy import select

    from rag.store.ledger import Chunk, Collection

    with rag.store.sessions() as s:
        rows = s.execute(select(Chunk.text, Chunk.token_count).join(Collection, Chunk.collection_id == Collection.id)
                         .where(Collection.name == COLLECTION).order_by(Chunk.id)).all()
    seen: dict[str, int] = {}
    text_bytes = 0
    for text, tokens in rows:
        seen.setdefault(text, int(tokens))
        text_bytes += len(text.encode("utf-8"))
    return list(seen), list(seen.values()), len(rows), text_bytes


def bare_encode_seconds(rag: RAG, texts: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `encode` over all texts with the pipeline's batch size.

    The model is already loaded. CPU over wall near the torch thread count
    means the run had the cores to itself; well below it means others
    competed for them and every throughput figure is low.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    rag.embedder.encode(texts, batch_size=rag.settings.embedder.batch_size)
    return time.perf_counter() - t0, time.process_time() - c0


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def disk_sizes(rag: RAG, chunks: int, text_bytes: int) -> dict[str, Any]:
    """Index folder and SQLite sizes against raw = vectors (float32) + chunk text (UTF-8)."""
    from rag.store.index import current_folder

    rag.store.engine.dispose()  # closing the last connection checkpoints the WAL into rag.db
    folder = current_folder(rag.settings.index_root / COLLECTION)
    if folder is None:
        raise RuntimeError(f"no current index folder under {rag.settings.index_root / COLLECTION}")
    db = rag.settings.home.resolve() / "rag.db"
    sqlite_files = {p.name: p.stat().st_size for p in db.parent.glob("rag.db*") if p.is_file()}
    index_bytes = folder_bytes(folder)
    sqlite_bytes = sum(sqlite_files.values())
    vector_bytes = chunks * rag.embedder.dim * 4
    raw = vector_bytes + text_bytes
    return {
        "index_folder": folder.name,
        "index_files": {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()},
        "index_bytes": index_bytes,
        "sqlite_files": sqlite_files,
        "sqlite_bytes": sqlite_bytes,
        "raw_vector_bytes": vector_bytes,
        "raw_text_bytes": text_bytes,
        "raw_bytes": raw,
        "index_over_raw": index_bytes / raw if raw else None,
        "index_plus_sqlite_over_raw": (index_bytes + sqlite_bytes) / raw if raw else None,
    }


def stage_breakdown(timing: IngestTiming) -> dict[str, float]:
    stages = {name: float(timing.report.stage_seconds.get(name, 0.0)) for name in STAGES}
    stages["other"] = timing.wall - sum(stages.values())
    return stages


def ingest_figures(timing: IngestTiming, docs: int) -> dict[str, Any]:
    r = timing.report
    return {
        "wall_seconds": timing.wall,
        "report_seconds": r.seconds,
        "cpu_seconds": timing.cpu,
        "cpu_per_wall": timing.cpu / timing.wall if timing.wall else None,
        "docs": docs,
        "docs_per_second": docs / timing.wall if timing.wall else None,
        "summary": r.summary(),
        "chunks_added": r.chunks_added,
        "texts_embedded": r.texts_embedded,
        "tokens_embedded": r.tokens_embedded,
        "tokens_per_second": r.tokens_embedded / timing.wall if timing.wall else None,
        "index_rebuilt": r.index_rebuilt,
        "stage_seconds": stage_breakdown(timing),
    }


def machine_facts() -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


NOTES = {
    "tokens": "content tokens of the embedder's tokenizer ([CLS]/[SEP] not counted), the same count for "
              "pipeline and bare encode; tokens/s of the pipeline = tokens embedded / whole ingest wall time",
    "bare_encode": "one encode() call over the distinct chunk texts (sentence-transformers sorts the whole list by "
                   "length); the pipeline calls encode() once per group of ingest.batch_files documents",
    "raw": "chunks x dim x 4 bytes (float32 vectors) + UTF-8 bytes of every chunk text",
    "index_over_raw": "index folder only (FAISS + BM25 arrays + ids + manifest); it holds no chunk text",
    "index_plus_sqlite_over_raw": "adds the SQLite ledger (WAL checkpointed first), which keeps the chunk texts and "
                                  "a second copy of every vector (the embedding cache), so about 2x raw is expected",
    "cpu_per_wall": "process CPU seconds / wall seconds; well below torch_threads means other processes took the "
                    "cores, which lowers every throughput figure (the ratio less, as both sides suffer)",
}


def open_warm(home: Path) -> tuple[RAG, dict[str, float]]:
    """A RAG on `home` with the model loaded and the ledger migrated, and what that took."""
    rag = RAG.open(home)
    t0 = time.perf_counter()
    rag.embedder.encode(["warm up"])  # model load, outside every timing
    setup = {"model_load_seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    _ = rag.store  # creates the SQLite ledger and runs its migrations
    setup["ledger_open_seconds"] = time.perf_counter() - t0
    return rag, setup


def bare_figures(rag: RAG, first: IngestTiming, texts: list[str], token_counts: list[int]) -> dict[str, Any]:
    secs, cpu = bare_encode_seconds(rag, texts)
    tokens = sum(token_counts)
    return {
        "texts": len(texts),
        "tokens": tokens,
        "seconds": secs,
        "cpu_seconds": cpu,
        "cpu_per_wall": cpu / secs if secs else None,
        "tokens_per_second": tokens / secs if secs else None,
        "batch_size": rag.settings.embedder.batch_size,
        "calls": 1,
        "same_texts_as_pipeline": len(texts) == first.report.texts_embedded
        and tokens == first.report.tokens_embedded,
    }


def bare_fp32_figures(texts: list[str], token_counts: list[int], batch_size: int) -> dict[str, Any]:
    """Bare fp32 sentence-transformers `encode` of the same texts: the yardstick the pipeline is held to."""
    from rag.config import EmbedderSettings
    from rag.embed import make_embedder

    emb = make_embedder(EmbedderSettings(backend="sentence-transformers", batch_size=batch_size))
    emb.encode(["warm up"])
    t0 = time.perf_counter()
    emb.encode(texts, batch_size=batch_size)
    secs = time.perf_counter() - t0
    return {"model_id": emb.model_id, "texts": len(texts), "tokens": sum(token_counts), "seconds": secs,
            "tokens_per_second": sum(token_counts) / secs if secs else None}


def cli_ingest(docs: list[SourceText], folder: Path) -> dict[str, Any]:
    """`rag ingest DIR` as a user runs it (default settings), timed from the outside; tokens from its ledger."""
    import subprocess

    from sqlalchemy import func, select

    from rag.store.ledger import Chunk

    src = folder / "abstracts"
    src.mkdir(parents=True)
    for d in docs:
        (src / f"{d.source}.txt").write_text(f"{d.title or ''}\n\n{d.text}", encoding="utf-8")
    home = folder / "home"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rag_platform.apps.cli", "ingest", str(src), "--collection", COLLECTION,
                           "--home", str(home)], env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"rag ingest failed ({proc.returncode}): {proc.stderr[-1000:]}")
    with RAG.open(home).store.sessions() as s:
        tokens = int(s.scalar(select(func.sum(Chunk.token_count))) or 0)
    return {"docs": len(docs), "seconds": wall, "tokens": tokens, "tokens_per_second": tokens / wall,
            "command": "python -m apps.cli ingest DIR --collection scifact --home HOME"}


def config_figures(rag: RAG, limit: int | None, docs: int, home: Path) -> dict[str, Any]:
    s = rag.settings
    return {
        "limit": limit,
        "docs": docs,
        "embedder_id": rag.embedder.model_id,
        "embedder_dim": rag.embedder.dim,
        "embed_batch_size": s.embedder.batch_size,
        "device": s.embedder.device,
        "chunk_tokens": s.chunking.chunk_tokens,
        "overlap_tokens": s.chunking.overlap_tokens,
        "splitter": s.chunking.splitter,
        "batch_files": s.ingest.batch_files,
        "dense_index": s.index.dense,
        "home": str(home),
    }


def target_verdicts(ratio: float | None, speedup: float | None, index_over_raw: float | None) -> dict[str, Any]:
    return {
        "pipeline_over_bare": {"target": f">= {TARGET_RATIO}", "value": ratio,
                               "pass": ratio is not None and ratio >= TARGET_RATIO},
        "reingest_speedup": {"target": f">= {TARGET_SPEEDUP:g}x", "value": speedup,
                             "pass": speedup is not None and speedup >= TARGET_SPEEDUP},
        "index_over_raw": {"target": f"< {TARGET_INDEX_OVER_RAW:g}", "value": index_over_raw,
                           "pass": index_over_raw is not None and index_over_raw < TARGET_INDEX_OVER_RAW},
    }


def run_benchmark(home: Path, limit: int | None, with_cli: bool = False) -> dict[str, Any]:
    """First ingest, bare encode of the same texts, re-ingest, sizes: in that order, one process."""
    docs = load_corpus(CORPUS, limit)
    facts = machine_facts()
    rag, setup = open_warm(home)

    first = timed_ingest(rag, docs)
    texts, token_counts, chunks, text_bytes = ledger_chunks(rag)
    bare = bare_figures(rag, first, texts, token_counts)
    again = timed_ingest(rag, docs)
    disk = disk_sizes(rag, chunks, text_bytes)

    first_fig = ingest_figures(first, len(docs))
    ratio = first_fig["tokens_per_second"] / bare["tokens_per_second"] if bare["tokens_per_second"] else None
    speedup = first.wall / again.wall if again.wall else None
    fp32 = bare_fp32_figures(texts, token_counts, rag.settings.embedder.batch_size)
    over_fp32 = {"library_ingest": first_fig["tokens_per_second"] / fp32["tokens_per_second"]}
    cli = None
    if with_cli:
        scratch = Path(tempfile.mkdtemp(prefix="rag-bench-cli-"))
        try:
            cli = cli_ingest(docs, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if cli:
        over_fp32["rag_ingest_command"] = cli["tokens_per_second"] / fp32["tokens_per_second"]
    return {
        "benchmark": "ingest",
        "corpus": str(CORPUS),
        "config": config_figures(rag, limit, len(docs), home),
        "machine": facts,
        "setup": setup,
        "first_ingest": first_fig,
        "bare_encode": bare,
        "pipeline_over_bare_tokens_per_second": ratio,
        "bare_fp32_encode": fp32,
        "rag_ingest_command": cli,
        "over_bare_fp32_tokens_per_second": over_fp32,
        "over_bare_fp32_target": {"target": f">= {TARGET_OVER_FP32}", "pass": {
            k: v >= TARGET_OVER_FP32 for k, v in over_fp32.items()}},
        "load_average_at_end": list(os.getloadavg()),
        "reingest": ingest_figures(again, len(docs)),
        "reingest_speedup": speedup,
        "disk": {**disk, "chunks": chunks},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "targets": target_verdicts(ratio, speedup, disk["index_over_raw"]),
        "notes": NOTES,
    }


def _verdict(target: dict[str, Any]) -> str:
    return "[green]PASS[/green]" if target["pass"] else "[red]FAIL[/red]"


def print_table(res: dict[str, Any]) -> None:
    """Headline figures with their targets, then the per-stage split of both ingests."""
    from rich.console import Console
    from rich.table import Table

    first, again, bare, disk, tg = res["first_ingest"], res["reingest"], res["bare_encode"], res["disk"], res["targets"]
    cfg, m = res["config"], res["machine"]
    t = Table(title=f"Ingest: SciFact {cfg['docs']} docs, {cfg['embedder_id'].split('/')[-1]}, "
                    f"chunks {cfg['chunk_tokens']}/{cfg['overlap_tokens']} tok")
    for col, just in (("figure", "left"), ("value", "right"), ("vs", "right"), ("target", "right"),
                      ("result", "center")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    t.add_row("first ingest wall s", f"{first['wall_seconds']:.2f}", "")
    t.add_row("re-ingest wall s", f"{again['wall_seconds']:.3f}", "")
    t.add_row("re-ingest speed-up", f"{res['reingest_speedup']:,.0f}x", "", tg["reingest_speedup"]["target"],
              _verdict(tg["reingest_speedup"]))
    t.add_row("docs/s", f"{first['docs_per_second']:.1f}", "")
    t.add_row("chunks (distinct)", f"{first['chunks_added']:,}", f"({first['texts_embedded']:,})")
    t.add_row("tokens embedded", f"{first['tokens_embedded']:,}", f"bare {bare['tokens']:,}")
    t.add_row("tokens/s pipeline", f"{first['tokens_per_second']:,.0f}", "")
    t.add_row("tokens/s bare encode", f"{bare['tokens_per_second']:,.0f}", "")
    t.add_row("pipeline / bare", f"{res['pipeline_over_bare_tokens_per_second']:.3f}", "",
              tg["pipeline_over_bare"]["target"], _verdict(tg["pipeline_over_bare"]))
    t.add_row("CPU/wall ingest|bare", f"{first['cpu_per_wall']:.2f}", f"{bare['cpu_per_wall']:.2f}",
              f"ideal ~{m['torch_threads']}")
    t.add_row("index MB | raw MB", f"{disk['index_bytes'] / 1e6:.2f}", f"{disk['raw_bytes'] / 1e6:.2f}")
    t.add_row("index / raw", f"{disk['index_over_raw']:.3f}", "", tg["index_over_raw"]["target"],
              _verdict(tg["index_over_raw"]))
    t.add_row("SQLite MB", f"{disk['sqlite_bytes'] / 1e6:.2f}", "")
    t.add_row("(index+SQLite) / raw", f"{disk['index_plus_sqlite_over_raw']:.3f}", "", "info")
    t.add_row("peak RSS MB", f"{res['peak_rss_mb']:.0f}", "")
    t.add_row("machine", f"{m['cpu_count']} CPU, {m['torch_threads']} thr", f"py {m['python']}")
    t.add_row("date", m["date"][:16], "")
    stages = Table(title="Stage seconds")
    for col in ("stage", "first ingest", "share", "re-ingest"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    for name, secs in first["stage_seconds"].items():
        share = 100 * secs / first["wall_seconds"] if first["wall_seconds"] else 0.0
        stages.add_row(name, f"{secs:.3f}", f"{share:.1f}%", f"{again['stage_seconds'][name]:.4f}")
    stages.add_row("bare encode", f"{bare['seconds']:.3f}", "", "")
    console = Console()
    console.print(t)
    console.print(stages)
    fp32 = res["bare_fp32_encode"]
    console.print(f"bare fp32 encode: {fp32['tokens_per_second']:,.0f} tokens/s; over it (target >= "
                  f"{TARGET_OVER_FP32}): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                     res["over_bare_fp32_tokens_per_second"].items())
                  + f"; load average {m['load_average_at_start'][0]:.1f} -> "
                  f"{res['load_average_at_end'][0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="ingest only the first N documents (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default: {DEFAULT_OUT})")
    parser.add_argument("--home", type=Path, default=None,
                        help="data home to ingest into (default: a temporary folder, deleted afterwards)")
    parser.add_argument("--cli", action="store_true", help="also time the whole `rag ingest DIR` command")
    args = parser.parse_args()
    if args.home is not None and (args.home / "rag.db").exists():
        parser.error(f"--home {args.home} already holds a ledger: a first ingest needs an empty data home")
    home = args.home or Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    try:
        results = run_benchmark(home, args.limit, args.cli)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
