"""Which embedder a data home needs: a changed default must not strand collections built with the old one.

Each collection records the `model_id` of the embedder that filled it (its vector space), and a store
refuses to mix two spaces. When the *default* backend changes (fp32 -> int8), a data home whose
collections were all embedded with the old default keeps using it, with a one-line notice that says
how to move; a backend the user chose explicitly (keyword, `RAG_EMBEDDER__BACKEND`, rag.toml) is
always used as given, and a mismatch is then refused with an error naming both spaces.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rag.config import EmbedderSettings, Settings

log = logging.getLogger("rag.embed")


def backend_of(model_id: str) -> str:
    """`model#backend` -> backend; a plain model id is the sentence-transformers (fp32) one."""
    return model_id.partition("#")[2] or "sentence-transformers"


def recorded_embedders(settings: Settings) -> set[str]:
    """Embedder ids recorded on the collections of this home's ledger (empty when there is no ledger yet)."""
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return set()
    try:
        from sqlalchemy import create_engine, select
        from sqlalchemy.pool import NullPool

        from rag.store.ledger import Collection

        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return {r for r in conn.scalars(select(Collection.embedder_id)) if r}
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - no ledger or an old one: nothing recorded, the default applies
        log.debug("could not read recorded embedders: %s", exc)
        return set()


def embedder_settings_for(settings: Settings) -> EmbedderSettings:
    """The embedder settings to open `settings.home` with (see the module docstring)."""
    chosen = settings.embedder
    if "backend" in chosen.model_fields_set:
        return chosen
    recorded = recorded_embedders(settings)
    mine = f"{chosen.model}#{chosen.backend}" if chosen.backend != "sentence-transformers" else chosen.model
    if not recorded or mine in recorded:
        return chosen
    same_model = {r for r in recorded if r.partition("#")[0] == chosen.model}
    if len(same_model) != 1 or len(recorded) != 1:
        return chosen  # several spaces already: use the default; the others' searches say how to switch
    old = backend_of(next(iter(same_model)))
    log.warning("data home %s holds collections embedded with backend %r (not the default %r): using %r for them. "
                "New homes use %r; to move this one, set RAG_EMBEDDER__BACKEND=%s and re-ingest with --force "
                "into a new collection.", settings.home, old, chosen.backend, old, chosen.backend, chosen.backend)
    return chosen.model_copy(update={"backend": old})
