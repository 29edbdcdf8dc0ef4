"""`rag app`: the Streamlit app on the embedded default store (SQLite + index files in the data home).

Headless and without telemetry; the home reaches the app as `RAG_HOME`, and
Streamlit's own upload limit is set to the one the app enforces.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag.errors import DependencyMissingError

SCRIPT = Path(__file__).resolve().parent / "ui" / "main.py"
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="RAG_HOME", help="Data home folder.")]


def streamlit_argv(port: int, host: str, max_upload_mb: float) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, no file watcher, no error details."""
    return [sys.executable, "-m", "streamlit", "run", str(SCRIPT),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.address", host, "--server.port", str(port),
            "--server.fileWatcherType", "none", "--client.showErrorDetails", "false",
            "--client.toolbarMode", "minimal", "--server.maxUploadSize", str(max(1, math.ceil(max_upload_mb)))]


def app_cmd(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the app to the network.")]
    = "127.0.0.1",
) -> None:
    """Start the web app: collections and uploads, cited answers, raw search, evaluation runs."""
    if importlib.util.find_spec("streamlit") is None:
        raise DependencyMissingError("rag app", "app", "streamlit")
    from rag_platform.apps.uploads import ApiSettings

    env = dict(os.environ)
    if home is not None:
        env["RAG_HOME"] = str(home.resolve())
    env.setdefault("HF_HUB_OFFLINE", "1")
    root = str(SCRIPT.parents[2])  # the app imports the same `apps` and `rag` as this command
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    argv = streamlit_argv(port, host, ApiSettings().max_upload_mb)
    typer.echo(f"rag app on http://{host}:{port} (data home {env.get('RAG_HOME', '.rag')}); Ctrl-C stops it")
    if os.name == "posix":  # become the server: signals (Ctrl-C, a supervisor's SIGTERM) reach it directly
        sys.stdout.flush()
        os.execve(argv[0], argv, env)
    try:
        raise typer.Exit(subprocess.call(argv, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
