"""Merge policy: which segments of a snapshot to fold together next (tiered, like Lucene's).

Segments are grouped in size tiers of `factor`x (everything under `floor_rows` live rows
is tier 0). When a tier holds `factor` segments they merge into one of the next tier, so
each row is rewritten about log_factor(N / floor_rows) times over its life and a search
visits at most about factor x tiers segments. A segment whose deleted share passes
`deleted_ratio` is rewritten on its own to drop the dead rows.
"""

from __future__ import annotations

import math
from typing import Any


def tier(live: int, factor: int, floor_rows: int) -> int:
    return int(math.log(max(live, floor_rows) / floor_rows, factor) + 1e-9)


def plan(segments: list[dict[str, Any]], *, factor: int, floor_rows: int, deleted_ratio: float) -> list[str]:
    """Names of the segments to merge next (empty: nothing to do)."""
    for ref in segments:
        if ref["rows"] and ref["deleted"] / ref["rows"] > deleted_ratio:
            return [ref["name"]]
    tiers: dict[int, list[dict[str, Any]]] = {}
    for ref in segments:
        tiers.setdefault(tier(ref["rows"] - ref["deleted"], factor, floor_rows), []).append(ref)
    for t in sorted(tiers):
        if len(tiers[t]) >= factor:
            return [r["name"] for r in tiers[t]]
    return []


def plan_all(segments: list[dict[str, Any]]) -> list[str]:
    """Full compaction: everything into one segment (nothing to do for one segment without deletes)."""
    if len(segments) == 1 and not segments[0]["deleted"]:
        return []
    return [r["name"] for r in segments]
