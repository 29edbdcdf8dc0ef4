"""One line for a bad setting: where it came from (env var, rag.toml line), the bad value, what is allowed.

pydantic's own ValidationError is a 20-line report per field, printed under a
47-line traceback by a command line; a user needs the name they typed, the
value and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

ENV_PREFIX = "RAG_"


def env_name(loc: Sequence[Any]) -> str:
    """The environment variable of a settings field, e.g. ('retrieval', 'mode') -> RAG_RETRIEVAL__MODE."""
    return ENV_PREFIX + "__".join(str(p) for p in loc).upper()


def _env_value(loc: Sequence[Any]) -> str | None:
    wanted = env_name(loc)
    return next((v for k, v in os.environ.items() if k.upper() == wanted), None)


def toml_line(path: Path, loc: Sequence[Any]) -> int | None:
    """1-based line of `loc`'s key in a TOML file, inside its table (the n-th `[[table]]` for a list item);
    for a key that is not there, the line of its table's header."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    keys = [str(p) for p in loc if not isinstance(p, int)]
    if not keys:
        return None
    indexes = [p for p in loc if isinstance(p, int)]
    table, key, index = ".".join(keys[:-1]), keys[-1], indexes[-1] if indexes else 0
    header, header_line = "", None
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if m := re.match(r"^\[(\[?)\s*([^\]]+?)\s*\]", stripped):
            header = m.group(2).replace('"', "").replace(" ", "")
            seen[header] = seen.get(header, -1) + 1 if m.group(1) else 0
            if header == table and seen[header] == index:
                header_line = n
            continue
        in_table = header == table and seen.get(header, 0) == index
        if in_table and re.match(rf"^[\"']?{re.escape(key)}[\"']?\s*=", stripped):
            return n
    return header_line


def _where(err: dict[str, Any], toml: Path | None, from_kwargs: set[str]) -> str:
    loc = err.get("loc", ())
    dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    top = str(loc[0]) if loc else ""
    if top not in from_kwargs:
        value = _env_value(loc)
        if value is not None:
            return f"{env_name(loc)}={value!r}"
        if toml is not None and toml.is_file():
            line = toml_line(toml, loc)
            at = f" line {line}" if line else ""
            if err.get("type") == "missing":
                return f"{toml}{at}: {dotted}"
            return f"{toml}{at}: {dotted} = {err.get('input')!r}"
    if err.get("type") == "missing":
        return f"setting {dotted}"
    return f"setting {dotted}={err.get('input')!r}"


def explain(exc: ValidationError, toml: Path | None, from_kwargs: set[str] | None = None) -> str:
    """One line per bad field, joined: where it was set, the value, pydantic's reason (which lists choices)."""
    parts = []
    for err in exc.errors(include_url=False):
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            reason = "required but not set"
        parts.append(f"invalid {_where(dict(err), toml, from_kwargs or set())}: {reason}")
    return "; ".join(parts)
