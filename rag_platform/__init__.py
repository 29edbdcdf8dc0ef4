"""The platform around the `rag` library: ingestion, evaluation and the apps.

In the repository they are the top-level folders `ingest/`, `eval/` and
`apps/`; their import names are `rag_platform.ingest`, `rag_platform.eval`
and `rag_platform.apps`, so an installed wheel puts only `rag` and
`rag_platform` at the top of site-packages (generic names such as `apps` or
`eval` would collide with other projects). The wheel places the folders
inside this package (`[tool.setuptools.package-dir]` in pyproject.toml); in
a checkout they sit beside it, and the path below finds them there.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not (_HERE / "ingest").is_dir() and (_HERE.parent / "ingest" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))  # a checkout: rag_platform.ingest is ./ingest
