"""Fuzz run of the loaders: thousands of seeded mutants of ../shared/data/docs through the bounded pool.

Each mutant (tests/fuzz_mutants.py: truncate, flip, insert, duplicate; ZIP entries duplicated,
shuffled, dropped, corrupted, inflated, nested, sizes lied about; HTML/Markdown nested and
inflated) is loaded by the worker pool (ingest.workers) under the default limits (60 s, 2 GB).
Outcomes: ok, failed (a reason), timeout, memory, crash (a worker died). Targets: 0 crashes,
0 hangs (a hang would show as a timeout). Reports worst time and worst peak memory per file,
prints a table and writes bench/results/fuzz_loaders.json.

    nice -n 10 .venv/bin/python bench/fuzz_loaders.py --count 5000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "tests"))

from fuzz_mutants import mutants  # noqa: E402

from rag.config import LimitsSettings  # noqa: E402
from rag_platform.ingest.workers import LoaderPool, cores  # noqa: E402

DOCS = REPO.parent / "shared" / "data" / "docs"


def outcome(loaded: object) -> str:
    reason = getattr(loaded, "reason", None) or ""
    if getattr(loaded, "doc", None) is not None:
        return "ok"
    if reason.startswith("took longer"):
        return "timeout"
    if reason.startswith("the loader process died"):
        return "crash"
    if getattr(loaded, "memory", False):
        return "memory"
    return "failed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--workers", type=int, default=0, help="0: one per core")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fuzz_loaders.json")
    args = ap.parse_args()
    limits = LimitsSettings(workers=args.workers)
    sources = sorted(DOCS.iterdir())
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        t0 = time.perf_counter()
        pool = LoaderPool(limits)
        outcomes: Counter[str] = Counter()
        by_mutator: dict[str, Counter[str]] = {}
        reasons: Counter[str] = Counter()
        worst_time = {"seconds": 0.0}
        worst_mem = {"peak_mb": 0.0}
        window: list[tuple[Path, str, object]] = []

        def drain(keep: int) -> None:
            while len(window) > keep:
                path, how, fut = window.pop(0)
                loaded = fut.result()  # type: ignore[attr-defined]
                kind = outcome(loaded)
                outcomes[kind] += 1
                for m in set(how.split("+")):
                    by_mutator.setdefault(m, Counter())[kind] += 1
                if loaded.reason:
                    reasons[loaded.reason.split(":")[0][:80]] += 1
                if kind in ("timeout", "crash", "memory"):
                    print(f"  {kind}: {path.name} ({how}) {loaded.reason[:100]}", flush=True)
                if loaded.seconds > worst_time["seconds"]:
                    worst_time.update(seconds=round(loaded.seconds, 3), file=path.name, mutators=how, outcome=kind)
                if loaded.peak_mb > worst_mem["peak_mb"]:
                    worst_mem.update(peak_mb=round(loaded.peak_mb, 1), file=path.name, mutators=how, outcome=kind)
                path.unlink(missing_ok=True)

        for n, (path, how) in enumerate(mutants(sources, args.count, args.seed, Path(tmp))):
            window.append((path, how, pool.submit(path, path.name, 50 << 20)))
            drain(64)
            if n and n % 250 == 0:
                print(f"{n} mutants, {dict(outcomes)}, {time.perf_counter() - t0:.0f}s", flush=True)
                save(args, limits, outcomes, by_mutator, reasons, worst_time, worst_mem,
                     time.perf_counter() - t0, partial=True)
        drain(0)
        pool.close()
        wall = time.perf_counter() - t0
    result = save(args, limits, outcomes, by_mutator, reasons, worst_time, worst_mem, wall, partial=False)
    print(f"\n{'cases':<22}{result['cases']:>10}")
    for k in ("ok", "failed", "memory", "timeout", "crash"):
        print(f"{k:<22}{outcomes[k]:>10}")
    print(f"{'worst time (s)':<22}{worst_time['seconds']:>10}  {worst_time.get('file', '')} "
          f"({worst_time.get('mutators', '')})")
    print(f"{'worst peak RSS (MB)':<22}{worst_mem['peak_mb']:>10}  {worst_mem.get('file', '')} "
          f"({worst_mem.get('mutators', '')})")
    print(f"{'wall (s)':<22}{wall:>10.0f}")
    print("targets:", result["targets"])
    print(f"wrote {args.out}")


def save(args: argparse.Namespace, limits: LimitsSettings, outcomes: Counter[str], by_mutator: dict,
         reasons: Counter[str], worst_time: dict, worst_mem: dict, wall: float, *, partial: bool) -> dict:
    """Write the JSON (also every 250 mutants, marked partial, so a stopped run leaves its figures)."""
    result = {
        "bench": "fuzz_loaders", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": cores(), "python": platform.python_version(),
                    "load_avg_1m": round(__import__("os").getloadavg()[0], 1)},
        "seed": args.seed, "cases": sum(outcomes.values()), "outcomes": dict(outcomes),
        "crashes": outcomes["crash"], "hangs": outcomes["timeout"],
        "worst_time": dict(worst_time), "worst_peak_memory": dict(worst_mem), "wall_s": round(wall, 1),
        "limits": {"file_timeout_s": limits.file_timeout_s, "file_memory_mb": limits.file_memory_mb},
        "by_mutator": {m: dict(c) for m, c in sorted(by_mutator.items())},
        "top_reasons": dict(reasons.most_common(15)),
        "targets": {"cases>=5000": sum(outcomes.values()) >= 5000, "crashes==0": outcomes["crash"] == 0,
                    "hangs==0": outcomes["timeout"] == 0},
        "partial": partial,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
