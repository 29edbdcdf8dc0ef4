"""OCR benchmark: SciFact abstracts rendered to page images with Pillow, read back by each engine.

For each engine (tesseract, rapidocr), in one run on the same pages (`--engine-pages rapidocr=6`
gives a slow engine only the first pages):

* pages/s (one page at a time, as ingestion runs it): wall clock, and from CPU time as
  2 / (CPU seconds per page), what two dedicated cores give when the engine keeps both busy
  (the wall figure on a shared machine says more about the neighbours than the engine);
* character error rate: Levenshtein distance between the OCR text and the rendered text
  (whitespace collapsed on both sides) over the rendered text's length;
* retrieval: nDCG@10 of SciFact test queries over a collection of the OCR'd pages plus
  distractor abstracts, against the same collection built from the pages' text
  (hybrid search, default settings). The distractors are identical in every arm;
* tesseract with OpenMP's default threads against one thread (what ingest.ocr runs),
  alternating page by page on the first `--thread-pages` pages.

Pages are the abstracts judged relevant to the first test queries (sorted by id), rendered
as a US Letter page at 150 dpi, 11 pt DejaVu-like sans (Pillow's built-in FreeType font).

Run from the repository root:

    .venv/bin/python bench/ocr.py --engine-pages rapidocr=6   # 100 pages -> bench/results/ocr.json
    .venv/bin/python bench/ocr.py --pages 20 --distractors 300 --out /tmp/ocr.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag import RAG  # noqa: E402
from rag.config import OcrSettings  # noqa: E402
from rag.types import SourceText  # noqa: E402
from rag_platform.eval.datasets import load_beir  # noqa: E402
from rag_platform.eval.metrics import dedupe, ndcg_at_k  # noqa: E402
from rag_platform.ingest.ocr import engine, read_images  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"
DEFAULT_OUT = REPO / "bench" / "results" / "ocr.json"
DPI, WIDTH, HEIGHT = 150, 1275, 1650  # US Letter at 150 dpi


def render_page(title: str, text: str) -> tuple[Any, str]:
    """A page image and exactly the text drawn on it (what OCR should give back)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=23)  # 11 pt at 150 dpi
    bold = ImageFont.load_default(size=27)
    img = Image.new("L", (WIDTH, HEIGHT), 255)
    draw = ImageDraw.Draw(img)
    y, drawn = 110, []
    for line in textwrap.wrap(title, 70):
        draw.text((110, y), line, fill=0, font=bold)
        drawn.append(line)
        y += 38
    y += 20
    for line in textwrap.wrap(text, 88):
        if y > HEIGHT - 120:
            break
        draw.text((110, y), line, fill=0, font=font)
        drawn.append(line)
        y += 33
    return img.convert("RGB"), " ".join(drawn)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of finished children (tesseract runs as one)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def levenshtein(a: str, b: str) -> int:
    """Edit distance, one numpy row per character of `a`."""
    if not a or not b:
        return max(len(a), len(b))
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    prev = idx.copy()
    for i, ch in enumerate(a, start=1):
        cost = (bb != ord(ch)).astype(np.int64)
        tmp = np.empty_like(prev)
        tmp[0] = i
        tmp[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        prev = np.minimum.accumulate(tmp - idx) + idx  # the insertions along the row
    return int(prev[-1])


def cer(ocr: str, truth: str) -> float:
    a, b = " ".join(ocr.split()), " ".join(truth.split())
    return levenshtein(a, b) / max(len(b), 1)


def pick(data: Any, pages: int) -> tuple[list[str], dict[str, str]]:
    """Relevant docs of the first test queries (by id) until `pages` docs; the queries fully covered."""
    docs: list[str] = []
    queries: dict[str, str] = {}
    for qid in sorted(data.qrels, key=lambda q: int(q) if q.isdigit() else q):
        rel = [d for d in data.qrels[qid] if d in data.corpus]
        if len(docs) + len(set(rel) - set(docs)) > pages:
            break
        docs += [d for d in rel if d not in docs]
        queries[qid] = data.queries[qid]
    return docs, queries


def ndcg(rag: RAG, collection: str, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> float:
    scores = []
    for qid, q in queries.items():
        hits = rag.search(q, collection=collection, k=20)
        ranked = dedupe([h.source for h in hits])  # a page cut into two chunks counts once
        scores.append(ndcg_at_k(ranked, qrels[qid], 10))
    return float(np.mean(scores))


def tesseract_threads(pages: list[tuple[Any, str]]) -> dict[str, Any]:
    """Wall and CPU seconds per page of the tesseract binary with OpenMP's default threads and with one.

    The two settings alternate page by page, so both see the same neighbours on a shared machine.
    """
    import io
    import subprocess

    def children() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    runs = {"default": {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"},
            "one": {**os.environ, "OMP_THREAD_LIMIT": "1"}}
    spent = {name: [0.0, 0.0] for name in runs}
    for img, _truth in pages:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        for name, env in runs.items():
            t0, c0 = time.perf_counter(), children()
            subprocess.run(["tesseract", "stdin", "stdout", "-l", "eng", "tsv"], input=buf.getvalue(),
                           capture_output=True, env=env, check=True)
            spent[name][0] += time.perf_counter() - t0
            spent[name][1] += children() - c0
    out: dict[str, Any] = {"pages": len(pages)}
    for name, (wall, cpu) in spent.items():
        out[name] = {"wall_s_per_page": round(wall / len(pages), 2), "cpu_s_per_page": round(cpu / len(pages), 2)}
    out["wall_ratio_default_over_one"] = round(spent["default"][0] / spent["one"][0], 2)
    out["cpu_ratio_default_over_one"] = round(spent["default"][1] / spent["one"][1], 2)
    print(f"tesseract OpenMP threads, {len(pages)} pages alternating: {out}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--distractors", type=int, default=1000)
    ap.add_argument("--engines", default="tesseract,rapidocr")
    ap.add_argument("--engine-pages", default="",
                    help="Fewer pages for a slow engine, e.g. 'rapidocr=20' (it then has no retrieval arm; "
                    "its CER is compared with the others' on the same first pages).")
    ap.add_argument("--thread-pages", type=int, default=5,
                    help="Pages read by tesseract with OpenMP's default threads and with one, alternating.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    data = load_beir(SCIFACT, "test")
    doc_ids, queries = pick(data, args.pages)
    pages = [render_page(*data.corpus[d]) for d in doc_ids]
    print(f"{len(pages)} pages rendered ({WIDTH}x{HEIGHT}, {DPI} dpi); {len(queries)} queries judge only these pages")
    results: dict[str, Any] = {}
    texts: dict[str, list[str]] = {}
    cer_of: dict[str, list[float]] = {}
    limit = {k: int(v) for k, v in (kv.split("=") for kv in args.engine_pages.split(",") if kv)}
    for name in args.engines.split(","):
        todo = pages[: limit.get(name, len(pages))]
        settings = OcrSettings(engine=name, page_timeout_s=600)  # type: ignore[arg-type]
        engine(name)  # load models before timing
        read_images([(1, pages[0][0].crop((0, 0, 400, 200)))], settings, "warm-up")
        t0, c0 = time.perf_counter(), cpu_seconds()
        per_page, outs = [], []
        for i, (img, _truth) in enumerate(todo, start=1):
            tp = time.perf_counter()
            outs.append(read_images([(i, img)], settings, f"page {i}")[i])
            per_page.append(time.perf_counter() - tp)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        cers = [cer(o.text, truth) for o, (_img, truth) in zip(outs, todo, strict=True)]
        cer_of[name] = cers
        if len(todo) == len(pages):
            texts[name] = [o.text for o in outs]
        results[name] = {"pages": len(todo), "seconds": round(wall, 2), "pages_per_s": round(len(todo) / wall, 3),
                         "cpu_s_per_page": round(cpu / len(todo), 2),
                         "pages_per_s_2_cores": round(2 * len(todo) / cpu, 3),
                         "median_s_per_page": round(statistics.median(per_page), 2),
                         "cer_mean": round(float(np.mean(cers)), 4), "cer_median": round(float(np.median(cers)), 4),
                         "confidence_mean": round(float(np.mean([o.confidence for o in outs])), 4)}
        print(name, results[name], flush=True)
    common = min(len(c) for c in cer_of.values())  # every engine read these first pages
    for name, cers in cer_of.items():
        results[name]["cer_mean_first_pages"] = {"pages": common, "cer_mean": round(float(np.mean(cers[:common])), 4)}

    threads = tesseract_threads(pages[: args.thread_pages]) if args.thread_pages and "tesseract" in texts else {}

    # Retrieval: the same distractors in every arm; the judged pages as text or as OCR output.
    pool = [d for d in sorted(data.corpus) if d not in set(doc_ids)][: args.distractors]
    distractors = [SourceText(source=d, text=data.corpus[d][1], title=data.corpus[d][0]) for d in pool]
    qrels = {q: data.qrels[q] for q in queries}
    retrieval: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        rag = RAG.open(home)
        arms = {"text": [truth for _img, truth in pages], **{f"ocr-{n}": t for n, t in texts.items()}}
        for arm, bodies in arms.items():
            docs = [SourceText(source=d, text=b) for d, b in zip(doc_ids, bodies, strict=True)]
            rag.ingest_texts(distractors + docs, collection=arm.replace("-", "_"))
            retrieval[arm] = round(ndcg(rag, arm.replace("-", "_"), queries, qrels), 4)
            print(f"nDCG@10 {arm}: {retrieval[arm]}", flush=True)

    print(f"\n| engine | pages | CPU s/page | pages/s on 2 cores (from CPU time) | pages/s wall (shared machine) "
          f"| CER mean | CER median | CER mean, first {common} pages | nDCG@10 OCR | nDCG@10 text |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['pages']} | {r['cpu_s_per_page']:.2f} | {r['pages_per_s_2_cores']:.3f} "
              f"| {r['pages_per_s']:.3f} | {r['cer_mean']:.4f} | {r['cer_median']:.4f} "
              f"| {r['cer_mean_first_pages']['cer_mean']:.4f} "
              f"| {retrieval.get('ocr-' + name, float('nan')):.4f} | {retrieval['text']:.4f} |")
    out = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
           "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "pages": len(pages),
           "queries": len(queries), "distractors": len(pool), "dpi": DPI, "engines": results,
           "ndcg_at_10": retrieval, "tesseract_openmp_threads": threads,
           "command": "python " + " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
