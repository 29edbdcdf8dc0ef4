"""The `rag` command: ingest with a report, search with sources, listings, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag_platform.apps.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    return home


def test_ingest_search_and_listings(env: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fusion.md").write_text("# Fusion\n\nReciprocal rank fusion adds 1/(k+rank) over retrievers.\n")
    (docs / "broken.docx").write_bytes(b"not a zip at all")
    out = runner.invoke(app, ["ingest", str(docs), "--collection", "kb"])
    assert out.exit_code == 0, out.output
    assert "ok 1" in out.output and "failed 1" in out.output
    assert "broken.docx" in out.output

    out = runner.invoke(app, ["search", "how does rank fusion work", "--collection", "kb", "-k", "2"])
    assert out.exit_code == 0, out.output
    assert "fusion.md" in out.output and "dense:1" in out.output

    # Without --mode/--fusion the settings decide (RAG_ env), not a CLI default.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_RETRIEVAL__MODE", "bm25")
        out = runner.invoke(app, ["search", "how does rank fusion work", "--collection", "kb", "-k", "2"])
    assert out.exit_code == 0, out.output
    assert "bm25 search" in out.output and "bm25:1" in out.output and "dense:" not in out.output

    out = runner.invoke(app, ["collections"])
    assert "kb" in out.output and "all-MiniLM-L6-v2" in out.output
    out = runner.invoke(app, ["docs", "kb"])
    assert "failed" in out.output and "fusion.md" in out.output

    again = runner.invoke(app, ["ingest", str(docs), "--collection", "kb"])
    assert "skipped 1" in again.output


def test_missing_path_and_unknown_collection_fail_clearly(env: Path) -> None:
    out = runner.invoke(app, ["ingest", "/no/such/folder", "--collection", "kb"])
    assert out.exit_code != 0
    assert "does not exist" in str(out.exception) + out.output
    out = runner.invoke(app, ["search", "q", "--collection", "nope"])
    assert out.exit_code != 0 and "no collection named 'nope'" in str(out.exception)


def test_bad_collection_name_is_refused(env: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello there")
    out = runner.invoke(app, ["ingest", str(tmp_path / "a.txt"), "--collection", "../evil"])
    assert out.exit_code != 0 and "not allowed" in str(out.exception)


def test_db_upgrade(env: Path) -> None:
    from rag.store.db import head_revision

    out = runner.invoke(app, ["db", "upgrade"])
    assert out.exit_code == 0 and f"database at revision {head_revision()}" in out.output
    assert head_revision() != "0001", "later migrations exist"


# -- issue 14: readable output, one-line errors, checked numbers, read-only commands ----------------------
REPO = Path(__file__).resolve().parents[1]


def _rag_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`rag ARGS` through the real entry point (`apps.cli.main`, which turns our errors into one line)."""
    from rag_platform.apps.cli import main

    monkeypatch.setattr(sys, "argv", ["rag", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_settings_are_one_line_with_exit_code_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_RETRIEVAL__MODE", "foo")
    code, _, err = _rag_main(monkeypatch, capsys, "search", "q", "-c", "demo")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "RAG_RETRIEVAL__MODE='foo'" in err and "'hybrid', 'dense' or 'bm25'" in err
    monkeypatch.delenv("RAG_RETRIEVAL__MODE")

    monkeypatch.setenv("RAG_CHUNKING__CHUNK_TOKENS", "abc")
    code, _, err = _rag_main(monkeypatch, capsys, "collections")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "RAG_CHUNKING__CHUNK_TOKENS='abc'" in err
    assert "valid integer" in err
    monkeypatch.delenv("RAG_CHUNKING__CHUNK_TOKENS")

    (tmp_path / "rag.toml").write_text('[retrieval]\nk = 5\nfusion = "sum"\n')
    code, _, err = _rag_main(monkeypatch, capsys, "collections")
    assert code == 2 and "rag.toml line 3" in err and "'sum'" in err and "'rrf' or 'convex'" in err
    (tmp_path / "rag.toml").write_text('[retrieval]\nmode = \n')
    code, _, err = _rag_main(monkeypatch, capsys, "collections")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "rag.toml is not valid TOML" in err and "line 2" in err and "Traceback" not in err
    assert not (tmp_path / ".rag").exists()


def test_entry_point_in_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAG_RETRIEVAL__MODE": "foo"}
    out = subprocess.run([sys.executable, "-m", "rag_platform.apps.cli", "search", "q", "-c", "demo"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "RAG_RETRIEVAL__MODE='foo'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["search", "q", "-k", "-3"], ["search", "q", "-k", "0"], ["ask", "q", "-k", "0"],
                                  ["ingest", ".", "--engine", "ray", "--workers", "0"]])
def test_numbers_are_checked(env: Path, args: list[str]) -> None:
    out = runner.invoke(app, args)
    assert out.exit_code == 2 and "Invalid value" in out.output, out.output
    assert not env.exists(), "a refused command creates nothing"


def test_read_only_commands_name_the_data_home_and_create_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAG_HOME", raising=False)
    for args in (["search", "q", "-c", "demo"], ["ask", "q", "-c", "demo"], ["collections"], ["docs", "demo"],
                 ["keys", "list"], ["reindex", "demo"], ["delete", "demo", "--yes"], ["db", "current"]):
        out = runner.invoke(app, args)
        message = str(out.exception) + out.output
        assert out.exit_code != 0 and f"no data home at {tmp_path.resolve() / '.rag'}" in message, (args, message)
        assert "--home" in message and "RAG_HOME" in message
        assert not (tmp_path / ".rag").exists(), args


def test_unknown_collection_names_the_data_home(env: Path, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nSome text about ledgers.\n")
    assert runner.invoke(app, ["ingest", str(tmp_path / "a.md"), "-c", "kb"]).exit_code == 0
    out = runner.invoke(app, ["search", "q", "-c", "demo"])
    assert f"no collection named 'demo' in data home {env.resolve()} (existing: kb)" in str(out.exception)
    assert "--home" in str(out.exception)


def test_paths_as_given_wide_output_json_and_the_deleted_files_hint(env: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLUMNS")  # not a terminal and no COLUMNS: a wide page, not 80 columns
    deep = tmp_path / "data" / "a-rather-long-folder-name" / "another-long-folder-name"
    deep.mkdir(parents=True)
    for i in range(3):
        (deep / f"policy-number-{i}.md").write_text(f"# Policy {i}\n\nRule {i}: expenses are filed within {i + 2} days.\n")
    (deep / "policy-number-9.docx").write_bytes(b"not a zip")
    out = runner.invoke(app, ["ingest", "data", "-c", "kb"])
    assert out.exit_code == 0, out.output
    assert "…" not in out.output and max(len(line) for line in out.output.splitlines()) > 80
    cells = "".join(line.split("│")[1].strip() for line in out.output.splitlines() if line.startswith("│"))
    for i in (0, 1, 2):  # each file in full (folded onto the next line when it does not fit, never cut)
        assert f"data/a-rather-long-folder-name/another-long-folder-name/policy-number-{i}.md" in cells
    reasons = " ".join(line.split("│")[4].strip() for line in out.output.splitlines() if line.startswith("│"))
    assert "could not parse as DOCX" in reasons and "not a zip file" in reasons, "the reason stays readable"

    monkeypatch.setenv("COLUMNS", "100")
    out = runner.invoke(app, ["search", "expenses filed", "-c", "kb", "-k", "2"])
    assert max(len(line) for line in out.output.splitlines()) <= 100

    out = runner.invoke(app, ["search", "expenses filed", "-c", "kb", "-k", "2", "--json"])
    hits = json.loads(out.stdout)["hits"]
    assert len(hits) == 2 and hits[0]["file"].startswith("data/a-rather-long-folder-name/") and hits[0]["ranks"]
    listing = json.loads(runner.invoke(app, ["collections", "--json"]).stdout)["collections"]
    assert listing[0]["name"] == "kb" and listing[0]["documents"] == 3 and listing[0]["failed"] == 1
    docs = json.loads(runner.invoke(app, ["docs", "kb", "--json"]).stdout)["documents"]
    assert {d["status"] for d in docs} == {"ok", "failed"} and all(d["file"].startswith("data/") for d in docs)
    answer = json.loads(runner.invoke(app, ["ask", "When are expenses filed?", "-c", "kb", "--json"]).stdout)
    assert answer["provider"] == "extractive" and answer["sources"] and "failed_attempts" in answer

    (deep / "policy-number-1.md").unlink()
    out = runner.invoke(app, ["ingest", "data", "-c", "kb"])
    assert "1 file no longer exists but is still searchable" in out.output and "--prune" in out.output
    report = json.loads(runner.invoke(app, ["ingest", "data", "-c", "kb", "--json"]).stdout)
    assert report["missing"] == ["data/a-rather-long-folder-name/another-long-folder-name/policy-number-1.md"]
    assert report["summary"]["skipped"] == 2
    out = runner.invoke(app, ["ingest", "data", "-c", "kb", "--prune"])
    assert "removed 1" in out.output and "no longer exists but" not in out.output


def test_listing_reads_the_ledger_without_loading_the_model(env: Path, tmp_path: Path, embedder) -> None:
    from rag import RAG, SourceText

    RAG.open(env, embedder=embedder).ingest_texts([SourceText("a.md", "# A\n\nledger text")], collection="kb")
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom apps.cli import app\n"
            "for args in (['collections'], ['docs', 'kb'], ['keys', 'list']):\n"
            "    r = CliRunner().invoke(app, args)\n    assert r.exit_code == 0, r.output\n    print(r.output)\n"
            "print('loaded' if 'sentence_transformers' in sys.modules or 'torch' in sys.modules else 'not loaded')\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO), "RAG_HOME": str(env)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "kb" in out.stdout and "a.md" in out.stdout and out.stdout.strip().endswith("not loaded")


def test_compact_merges_segments_and_search_still_answers(env: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAG_INDEX__BACKGROUND_MERGE", "false")  # keep the segments for `rag compact` to merge
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, topic in enumerate(["rank fusion", "chunk overlap", "citation checks"]):
        (docs / f"note{i}.md").write_text(f"# Note {i}\n\nThis note explains {topic} in detail.\n")
        out = runner.invoke(app, ["ingest", str(docs / f"note{i}.md"), "--collection", "kb"])
        assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["compact", "kb"])
    assert out.exit_code == 0, out.output
    assert "compacted 'kb': 3 segments -> 1" in out.output
    out = runner.invoke(app, ["search", "chunk overlap", "--collection", "kb", "-k", "1"])
    assert out.exit_code == 0 and "note1.md" in out.output
