"""A wheel built from this checkout, installed into a fresh virtualenv, opens a store and answers.

The fresh virtualenv gets our wheel alone (`--no-deps`); its third-party dependencies come from the
test run's own environment through a path entry (no network here). That entry is not a site
directory, so the checkout's editable install is not seen: `rag` must come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    clean = _env(tmp / "unused")
    dist = tmp / "dist"
    src = tmp / "src"  # sources only: a stale build/ in the checkout must not leak into the wheel
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        "build", "dist", ".venv", ".git", ".rag*", ".bench-home*", "*.egg-info", "__pycache__", ".mypy_cache",
        "test-artifacts", "bench", "tests", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(src)], check=True, cwd=tmp, env=clean, timeout=600)
    [wheel] = dist.glob("rag_platform-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, env=clean, timeout=600)
    # After the install: with the path entry in place pip would find the checkout's editable install.
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return wheel, venv


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAG_CONFIG") and not k.startswith("RAG_")}
    return {**env, "RAG_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def test_wheel_ships_migrations(wheel_venv: tuple[Path, Path]) -> None:
    wheel, _ = wheel_venv
    names = zipfile.ZipFile(wheel).namelist()
    assert "rag/migrations/env.py" in names and "rag/migrations/script.py.mako" in names
    assert any(n.startswith("rag/migrations/versions/") and n.endswith(".py") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_wheel_puts_no_generic_name_at_the_top_of_site_packages(wheel_venv: tuple[Path, Path]) -> None:
    """ingest/, eval/ and apps/ install inside rag_platform: nothing called `apps` or `eval` in users' site-packages."""
    wheel, _ = wheel_venv
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"rag", "rag_platform"}, top
    repo = Path(__file__).resolve().parents[1]
    for folder in ("ingest", "eval", "apps"):  # every module of each folder made it, under its new name
        for py in (repo / folder).rglob("*.py"):
            if "__pycache__" not in py.parts:
                assert f"rag_platform/{py.relative_to(repo).as_posix()}" in names, py


def test_wheel_install_ingests_and_answers_from_another_folder(wheel_venv: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    _, venv = wheel_venv
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "leave.md").write_text("# Annual leave\n\nEvery employee gets 27 days of paid annual leave per year.\n")
    env = _env(tmp_path / "home")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import rag; print(rag.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout and str(REPO) not in where.stdout
    rag = str(venv / "bin" / "rag")
    ingest = subprocess.run([rag, "ingest", "leave.md", "-c", "hr"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    assert ingest.returncode == 0, ingest.stdout[-2000:] + ingest.stderr[-2000:]
    ask = subprocess.run([rag, "ask", "How many days of paid annual leave do employees get?", "-c", "hr",
                          "--no-stream"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert ask.returncode == 0, ask.stdout[-2000:] + ask.stderr[-2000:]
    assert "27 days" in ask.stdout and "[1]" in ask.stdout
    assert (tmp_path / "home" / "rag.db").exists() and not (work / ".rag").exists()
