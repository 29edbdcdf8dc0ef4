"""The README's set-up commands and Python example stay true."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_starts_with_exactly_two_setup_commands() -> None:
    text = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_python_example_runs(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    example = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S)
    assert example is not None
    script = tmp_path / "example.py"
    script.write_text(example.group(1))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "{'ok': 3, 'skipped': 0, 'failed': 0, 'removed': 0}" in out.stdout
    assert "ranks={" in out.stdout


# -- every command the README shows (issue 14) ------------------------------------------------------------
import json  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

README = (REPO / "README.md").read_text()


def bash_blocks(text: str = README) -> list[str]:
    """The README's ```bash blocks, with backslash-continued lines joined."""
    return [b.replace("\\\n", " ") for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def rag_commands() -> list[list[str]]:
    """Every `rag ...` command of the README's bash blocks; `a | b` alternatives are separate commands,
    and an alternative without `rag` in front continues the command group before it."""
    out = []
    for block in bash_blocks():
        for line in block.splitlines():
            tokens = [t for t in shlex.split(line, comments=True) if t != "&"]
            if not tokens or tokens[0] != "rag":
                continue
            parts: list[list[str]] = [[]]
            for t in tokens:
                parts.append([]) if t == "|" else parts[-1].append(t)
            group = ["rag"]
            for part in parts:
                if part[0] != "rag":
                    part = group + part
                out.append(part)
                group = part[:2] if len(part) > 2 and part[1] in ("eval", "db", "keys") else ["rag"]
    return out


def test_every_rag_command_in_the_readme_exists_with_its_options() -> None:
    import typer.main

    from rag_platform.apps.cli import app

    root = typer.main.get_command(app)
    commands = rag_commands()
    assert len(commands) >= 25
    for part in commands:
        node, i = root, 1
        while hasattr(node, "commands") and i < len(part):  # a group (typer vendors its own click)
            names = part[i].split("|")
            assert all(n in node.commands for n in names), f"README: unknown command {' '.join(part[:i + 1])}"
            node, i = node.commands[names[0]], i + 1
        assert not hasattr(node, "commands"), f"README: {' '.join(part)} names a group, not a command"
        options = {o for p in node.params for o in (*p.opts, *p.secondary_opts)}
        for t in part[i:]:
            name = t.strip("[]").split("=")[0]
            if name.startswith("-") and len(name) > 1:
                assert name in options, f"README: `{' '.join(part)}` uses {name}, which `{part[1]}` lacks"


def test_activate_step_follows_the_setup_commands() -> None:
    blocks = bash_blocks()
    assert blocks[1].strip() == "source .venv/bin/activate"
    assert re.search(r"^VENV \?= \.venv$", (REPO / "Makefile").read_text(), re.M)
    assert re.search(r'install -e "\.\[api\]"', (REPO / "Makefile").read_text()), "`rag serve` after `make demo`"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
    return {**env, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAG_HOME": str(home), "COLUMNS": "160",
            "TOKENIZERS_PARALLELISM": "false", **extra}


def _rag(args: list[str], env: dict[str, str], cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag_platform.apps.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """The data home after the Makefile's `demo` recipe, run command by command as `make demo` runs it."""
    home = tmp_path_factory.mktemp("demo") / ".rag"
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe is not None
    outputs = []
    for line in recipe.group(1).splitlines():
        args = shlex.split(line.strip())
        assert args[0] == "$(RAG)", line
        args = [a for x in args for a in (sorted(glob.glob(x, root_dir=REPO)) or [x] if "*" in x else [x])]  # as sh
        out = _rag(args[1:], _env(home))
        assert out.returncode == 0, f"{line}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        outputs.append(out.stdout)
    yield home, outputs


def test_make_demo_commands_run(demo_home: tuple[Path, list[str]]) -> None:
    _, (ingested, searched, answered) = demo_home
    assert "failed 0" in ingested and "samples/hybrid-retrieval.pdf" in ingested
    assert "docs/architecture.md" in ingested and ".png" not in ingested  # the app's screenshot is not a source
    assert "samples/hybrid-retrieval.pdf" in searched and "dense:" in searched and "bm25:" in searched
    assert "answered by extractive" in answered and "[1]" in answered and "skipped as" in answered


def test_readme_provider_example_falls_back_without_keys(demo_home: tuple[Path, list[str]], tmp_path: Path) -> None:
    """The README's rag.toml lists openai and claude first: with no keys both are skipped, and said so."""
    home, _ = demo_home
    toml = re.search(r"```toml\n(# rag\.toml\n.*?)```", README, re.S)
    assert toml is not None
    (tmp_path / "rag.toml").write_text(toml.group(1))
    out = _rag(["ask", "What happens to a file whose hash matches the ledger when I ingest again?", "-c", "demo",
                "--no-cache"], _env(home), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "answered by extractive" in out.stdout and "failed before: openai: skipped:" in out.stdout
    assert "claude: skipped:" in out.stdout and "openai: openai:" not in out.stdout
    alone = _rag(["ask", "q", "-c", "demo", "-p", "openai"], _env(home), cwd=tmp_path)
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1 and "OPENAI_API_KEY" in alone.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _curl(line: str, port: int, key: str) -> Any:
    """Run one README `curl` line with httpx: -H, -X, -d, -F name=@file and -N (streaming) are understood."""
    import httpx

    tokens = shlex.split(line.replace("$KEY", key), comments=True)
    assert tokens[0] == "curl"
    headers, method, data, files, url = {}, None, None, [], None
    it = iter(tokens[1:])
    for t in it:
        if t == "-H":
            name, value = next(it).split(":", 1)
            headers[name.strip()] = value.strip()
        elif t == "-X":
            method = next(it)
        elif t == "-d":
            data = next(it)
        elif t == "-F":
            field, path = next(it).split("=@", 1)
            files.append((field, (Path(path).name, (REPO / path).read_bytes())))
        elif t == "-N":
            continue
        else:
            url = "http://" + t.replace("localhost:8000", f"127.0.0.1:{port}")
    method = method or ("POST" if data is not None or files else "GET")
    return httpx.request(method, url, headers=headers, content=data, files=files or None, timeout=120)


def _idle_connection_is_kept(port: int) -> None:
    """`rag serve` keeps an idle connection past a client's own 5 s idle limit (uvicorn closes at 5 s by
    default), so a client reusing its pooled connection never races the server's close (a ReadError)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() and conn.sock is not None
    sock = conn.sock
    time.sleep(6.5)
    conn.request("GET", "/healthz")
    reply = conn.getresponse()
    assert reply.status == 200 and conn.sock is sock, "the server closed an idle keep-alive connection"
    conn.close()


def test_readme_http_api_block_runs(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    block = next(b for b in bash_blocks() if "rag serve --port 8000 &" in b)
    lines = [line for line in block.splitlines() if line.strip()]
    home, port = tmp_path / ".rag", _free_port()
    env = _env(home)
    created = _rag(shlex.split(lines[0], comments=True)[1:], env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rag_") and lines[2] == "KEY=rag_..."
    serve = shlex.split(lines[1].replace("8000", str(port)), comments=True)[1:-1]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "rag_platform.apps.cli", *serve], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.3)
        _idle_connection_is_kept(port)
        curls = lines[3:]
        assert len(curls) == 4 and all(c.startswith("curl") for c in curls)
        assert _curl(curls[0], port, key).status_code == 201
        upload = _curl(curls[1], port, key)
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job"]["id"]
        deadline = time.monotonic() + 300
        while (job := _curl(curls[2].replace("JOB_ID", job_id), port, key).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert job["status"] == "done" and job["report"]["summary"]["ok"] == 1
        assert job["report"]["files"][0]["source"] == "hybrid-retrieval.pdf", "no server path"
        stream = _curl(curls[3], port, key)
        assert stream.status_code == 200 and "event: delta" in stream.text and "event: answer" in stream.text
        answer = json.loads(stream.text.split("event: answer\ndata: ", 1)[1].split("\n", 1)[0])
        assert answer["citations"] and answer["sources"][0]["source"] == "hybrid-retrieval.pdf"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()
