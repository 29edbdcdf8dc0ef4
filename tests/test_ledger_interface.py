"""The store boundary: ingest, eval and the apps reach the ledger only through `store.ledger` (a `Ledger`).

Checked on the source (no session, engine or ORM model above `rag.store`, and from `rag.store` only
the store-neutral names of `rag.store.base`), then the `Ledger` methods on a real SQLite store, and
the same round trip on a real PostgreSQL one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from rag import RAG, SourceText
from rag.errors import CollectionNotFoundError, ConfigError, NotFoundError
from rag.protocols import Ledger, Store
from rag.report import FileResult, IngestReport
from rag.store import base
from rag.store.base import open_ledger
from rag.types import CollectionInfo, QueryRecord

ROOT = Path(__file__).resolve().parents[1]
USERS = [*(ROOT / "ingest").rglob("*.py"), *(ROOT / "eval").rglob("*.py"), *(ROOT / "apps").rglob("*.py"),
         ROOT / "rag" / "api.py", ROOT / "rag" / "pipeline.py"]
FORBIDDEN_MODULES = ("sqlalchemy", "rag.store.ledger")
# What a user of the store may import from rag.store: the names every store shares, whatever it is.
PUBLIC_STORE_NAMES = {"rag.store.base": {"DocumentWrite", "Ledger", "SearchIndex", "Searcher", "Store",
                                         "check_collection_name", "manifest_hash", "open_ledger", "open_store",
                                         "store_kind", "text_hash"}}
# `rag db upgrade` and `rag db current` (apps/cli.py): the SQL stores' schema migrations, by design SQL-only.
SCHEMA_COMMANDS = {"rag.store.db": {"current_revision", "head_revision", "make_engine", "upgrade"}}


def _dotted(node: ast.expr) -> str:
    """`a.b.c` for an attribute chain (calls and subscripts show as `?`)."""
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def _store_internals(node: ast.Import | ast.ImportFrom, allowed: dict[str, set[str]]) -> list[str]:
    """Names imported from `rag.store` that are not in `allowed` (module -> names)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("rag.store")]
    module = node.module or ""
    if not (module == "rag.store" or module.startswith("rag.store.")) or module.startswith(FORBIDDEN_MODULES):
        return []
    return [f"{module}.{a.name}" for a in node.names if a.name not in allowed.get(module, set())]


def boundary_breaches(path: Path) -> list[str]:
    """Imports of SQLAlchemy, the ORM models or a store's internals, and uses of a store's `sessions` or `engine`."""
    allowed = PUBLIC_STORE_NAMES | (SCHEMA_COMMANDS if path == ROOT / "apps" / "cli.py" else {})
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out += [f"line {node.lineno}: imports {n}" for n in names if n.startswith(FORBIDDEN_MODULES)]
        if isinstance(node, ast.Import | ast.ImportFrom):
            out += [f"line {node.lineno}: imports {n}, not a public store name" for n in _store_internals(node, allowed)]
        if isinstance(node, ast.Attribute) and (
                node.attr == "sessions" or (node.attr == "engine" and _dotted(node.value).endswith("store"))):
            out.append(f"line {node.lineno}: {_dotted(node)}")
    return out


def test_users_of_the_store_never_touch_sessions_or_orm_models() -> None:
    assert len(USERS) > 40
    bad = {str(p.relative_to(ROOT)): b for p in USERS if (b := boundary_breaches(p))}
    assert not bad, f"go through store.ledger instead: {bad}"


def test_the_check_catches_a_breach(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text("from rag.store.ledger import Document\nwith rag.store.sessions() as s: pass\nrag.store.engine\n"
                   "settings.ocr.engine\nfrom rag.store.base import DocumentWrite, Store, text_hash\n"
                   "from rag.store.local import DocumentWrite\nfrom rag.store.base import LocalStore\n"
                   "import rag.store.index\nfrom rag.store import index\nfrom rag.store.db import upgrade\n")
    assert sorted(boundary_breaches(src)) == sorted([
        "line 1: imports rag.store.ledger", "line 1: imports rag.store.ledger.Document",
        "line 2: rag.store.sessions", "line 3: rag.store.engine",
        "line 6: imports rag.store.local.DocumentWrite, not a public store name",
        "line 7: imports rag.store.base.LocalStore, not a public store name",
        "line 8: imports rag.store.index, not a public store name",
        "line 9: imports rag.store.index, not a public store name",
        "line 10: imports rag.store.db.upgrade, not a public store name"])


def test_the_public_store_names_are_what_rag_store_base_exports() -> None:
    assert PUBLIC_STORE_NAMES == {"rag.store.base": set(base.__all__)}
    from rag.store import local

    assert local.DocumentWrite is base.DocumentWrite and local.text_hash is base.text_hash  # old imports still work


def test_store_protocol_exposes_a_ledger_not_sessions(rag: RAG) -> None:
    members = {n for n in vars(Store) if not n.startswith("_")} | set(Store.__annotations__)
    assert "ledger" in members and not members & {"sessions", "engine", "documents"}
    assert isinstance(rag.store, Store) and isinstance(rag.store.ledger, Ledger)
    ledger_only = open_ledger(rag.settings)
    assert isinstance(ledger_only, Ledger)


def _two_documents(rag: RAG) -> None:
    rag.ingest_texts([SourceText(source="b.txt", text="Beta handles login for every user. " * 110, title="Beta"),
                      SourceText(source="a.txt", text="Alpha handles billing.", metadata={"tags": ["x"]})],
                     collection="c")


def test_documents_and_chunks_as_plain_records(rag: RAG) -> None:
    _two_documents(rag)
    ledger = rag.store.ledger
    docs = ledger.documents("c")
    assert [d.source_uri for d in docs] == ["a.txt", "b.txt"] and docs[0].metadata == {"tags": ["x"]}
    assert rag.documents("c") == docs
    b = docs[1]
    assert ledger.document("c", b.id) == b and ledger.document("c", 10**9) is None
    assert ledger.document_states("c") == {d.source_uri: (d.content_hash, "ok") for d in docs}
    chunks = ledger.document_chunks("c", b.id)
    assert len(chunks) == b.chunk_count > 1 and [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert {c.id: c for c in ledger.chunks([c.id for c in chunks] + [10**9])} == {c.id: c for c in chunks}
    assert "Beta handles login" in chunks[0].text and chunks[0].document_id == b.id
    rag.ingest_texts([SourceText(source="d.txt", text="Delta.")], collection="other")
    assert ledger.document_chunks("other", b.id) == [] and ledger.document("other", b.id) is None
    with pytest.raises(CollectionNotFoundError, match="existing: c, other"):
        ledger.documents("nope")
    with pytest.raises(ConfigError, match="not allowed"):
        ledger.documents("../x")
    stats = {s.name: s for s in ledger.collection_stats()}
    assert stats["c"] == CollectionInfo("c", 2, 0, sum(d.chunk_count for d in docs), rag.store.revision(
        rag.store.collection("c")), rag.embedder.model_id)
    assert [c.name for c in ledger.collections()] == ["c", "other"] and ledger.collections()[0].created_at
    manifest = rag.store.index_manifest("c")  # through the Store, not by reading the index folder
    assert manifest is not None and manifest["ledger_revision"] == stats["c"].revision
    assert manifest["collection"] == "c" and rag.store.index_manifest("nope") is None


def test_moving_documents_keeps_chunks_and_drops_stored_answers(rag: RAG) -> None:
    _two_documents(rag)
    ledger = rag.store.ledger
    ledger.store_answer("k1", "c", {"text": "first"})
    ledger.store_answer("k1", "c", {"text": "second"})  # the first one stays
    assert ledger.cached_answer("k1") == {"text": "first"}
    before = {d.source_uri: d for d in ledger.documents("c")}
    ledger.move_documents("c", [("a.txt", "moved/a.txt")])
    after = {d.source_uri: d for d in ledger.documents("c")}
    assert set(after) == {"moved/a.txt", "b.txt"} and after["moved/a.txt"].id == before["a.txt"].id
    assert ledger.cached_answer("k1") is None
    from rag.filters import Filters

    def sources(glob: str) -> set[str]:  # a suffix glob runs on the reversed sources, which the move rewrote
        return {h.source for h in rag.search("alpha beta", collection="c", k=10, mode="bm25",
                                             filters=Filters(source_glob=glob))}

    assert sources("*/a.txt") == {"moved/a.txt"} and sources("*a.txt") == {"moved/a.txt"}
    assert after["moved/a.txt"].updated_at == before["a.txt"].updated_at  # a move is not a change of content


def test_ingest_runs_record_every_file(rag: RAG) -> None:
    from sqlalchemy import select

    from rag.store.ledger import IngestFile, IngestRun

    ledger = rag.store.ledger
    rag.store.collection("c", create=True)
    run_id = ledger.start_ingest_run("c", "test-engine")
    report = IngestReport("c", run_id, files=[FileResult("a", "ok", chunks=3), FileResult("b", "failed", "bad"),
                                               FileResult("c", "skipped", note="warned")], chunks_added=3)
    ledger.finish_ingest_run(run_id, report, "ok", None)
    with rag.store.sessions() as s:  # white-box: the rows the old code wrote
        run = s.get(IngestRun, run_id)
        files = s.execute(select(IngestFile.source_uri, IngestFile.outcome, IngestFile.reason)
                          .where(IngestFile.run_id == run_id).order_by(IngestFile.id)).all()
    assert (run.engine, run.status, run.files_ok, run.files_failed, run.files_skipped, run.chunks_added) == \
        ("test-engine", "ok", 1, 1, 1, 3) and run.finished_at is not None
    assert [tuple(f) for f in files] == [("a", "ok", None), ("b", "failed", "bad"), ("c", "skipped", "note: warned")]
    with pytest.raises(CollectionNotFoundError):
        ledger.start_ingest_run("missing", "local")


def exercise_records(ledger: Ledger) -> None:
    """Evaluation runs, API keys and the query log: the same calls on any store's ledger."""
    first = ledger.create_eval_run(kind="compare", dataset="d", arms=["a", "b"], split={"eval": ["q1"]})
    second = ledger.create_eval_run(kind="retrieval", status="done", collection="c")
    assert [r.id for r in ledger.eval_runs()] == [second, first] and [r.id for r in ledger.eval_runs(1)] == [second]
    run = ledger.eval_run(first)
    assert run is not None and (run.status, run.arms, run.split, run.summary) == ("running", ["a", "b"],
                                                                                    {"eval": ["q1"]}, {})
    assert ledger.eval_run(10**9) is None
    with pytest.raises(ConfigError, match="no field 'color'"):
        ledger.create_eval_run(color="red")
    with pytest.raises(NotFoundError):
        ledger.update_eval_run(10**9, status="done")
    ledger.update_eval_run(first, status="done", summary={"questions": 1})
    assert ledger.eval_run(first).summary == {"questions": 1}  # type: ignore[union-attr]
    ledger.add_eval_result(first, "q1", "a", "yes", {"f1": 1.0}, {"question": "?"})
    ledger.add_eval_result(first, "q1", "b", "no", {"f1": 0.0}, {})
    with pytest.raises(Exception):  # noqa: B017 - (run, question, arm) is unique: a resumed run cannot write twice
        ledger.add_eval_result(first, "q1", "a", "again", {}, {})
    rows = ledger.eval_results(first)
    assert [(r.question_id, r.arm, r.answer) for r in rows] == [("q1", "a", "yes"), ("q1", "b", "no")]
    ledger.update_eval_result(rows[0].id, metrics={"judge": "j"}, detail={"note": "n"})
    assert ledger.eval_results(first)[0].metrics == {"f1": 1.0, "judge": "j"}
    assert ledger.eval_results(first)[0].detail == {"question": "?", "note": "n"}

    key = ledger.add_api_key(name="k", prefix="abcd", key_hash="h" * 64, role="read", collections=["c", "d"])
    other = ledger.add_api_key(name="", prefix="ffff", key_hash="g" * 64, role="admin", collections=["*"])
    assert key.collections == ("c", "d") and key.revoked_at is None and key.created_at is not None
    assert [k.id for k in ledger.api_keys()] == [key.id, other.id]
    assert [k.id for k in ledger.api_keys("abcd")] == [key.id]
    ledger.touch_api_key(key.id)
    assert ledger.api_keys("abcd")[0].last_used_at is not None
    revoked = ledger.revoke_api_key(key.id)
    assert revoked is not None and revoked.revoked_at is not None
    again = ledger.revoke_api_key(key.id)  # revoked once: the first time stays
    assert again is not None and again.revoked_at.replace(tzinfo=None) == revoked.revoked_at.replace(tzinfo=None)
    assert ledger.revoke_api_key(10**9) is None

    for q in ("one", "two"):
        ledger.log_query(QueryRecord(collection="c", question=q, provider="p", model="m", tokens_in=3,
                                     attempts=("p: ok",)))
    newest = ledger.recent_queries(1)
    assert [(r.question, r.tokens_in, r.attempts) for r in newest] == [("two", 3, ("p: ok",))]
    assert newest[0].id is not None and newest[0].created_at is not None


def test_records_on_sqlite(rag: RAG) -> None:
    exercise_records(rag.store.ledger)


def test_a_ledger_opened_alone_shares_the_stores_records(rag: RAG, settings) -> None:
    from rag_platform.apps.api.auth import Authenticator, create_key, list_keys

    early = RAG.open(settings=settings, embedder=rag.embedder).ledger  # no store opened: its own engine
    info, raw = create_key(early, collections=["*"], role="admin")
    assert [k.id for k in list_keys(rag.store.ledger)] == [info.id]
    assert Authenticator(rag.store.ledger).authenticate(f"Bearer {raw}", None).id == info.id
    assert rag.ledger is rag.store.ledger  # once the store is open, its own ledger


def test_records_and_documents_on_postgres(pg_rag: RAG) -> None:
    pg_rag.ingest_texts([SourceText(source="a.txt", text="Alpha handles billing.")], collection="c")
    ledger = pg_rag.store.ledger
    [doc] = ledger.documents("c")
    assert [c.document_id for c in ledger.document_chunks("c", doc.id)] == [doc.id] * doc.chunk_count
    assert ledger.collection_stats()[0].documents == 1
    ledger.move_documents("c", [("a.txt", "b.txt")])
    assert ledger.document_states("c") == {"b.txt": (doc.content_hash, "ok")}
    exercise_records(ledger)
    assert isinstance(open_ledger(pg_rag.settings), Ledger)
    from rag.store.local import LocalStore

    assert not [k for k, v in vars(pg_rag.store).items() if isinstance(v, LocalStore)]  # no embedded store inside
    manifest = pg_rag.store.index_manifest("c")
    assert manifest["dense"]["kind"] == "pgvector-hnsw" and manifest["chunks"] == doc.chunk_count
    assert manifest["ledger_revision"] == pg_rag.store.revision(pg_rag.store.collection("c"))
