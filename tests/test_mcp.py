"""The MCP server, driven by the official `mcp` SDK's client: over stdio (`rag mcp` as a subprocess),
over streamable HTTP (`rag serve`'s app under a real uvicorn on 127.0.0.1), and in memory for ingest."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import httpx
import pytest

mcp = pytest.importorskip("mcp")
import httpx2  # noqa: E402 - the mcp SDK's HTTP client
from live_api import FIRST, LiveServer, key, open_rag  # noqa: E402
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client import Client  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from rag import RagError  # noqa: E402
from rag_platform.apps.api.app import create_app  # noqa: E402
from rag_platform.apps.api.limits import ApiSettings  # noqa: E402
from rag_platform.apps.mcp.server import LOCAL_WRITER, ServerOptions, build_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOOLS = {"search", "ask", "list_collections", "list_documents", "ingest"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, embedder):
    tmp = tmp_path_factory.mktemp("mcp")
    rag = open_rag(tmp, embedder)
    rag.store.collection("notes", create=True)
    return tmp, rag


def data(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


def error_text(result) -> str:
    assert result.is_error
    return result.content[0].text


async def exercise(session: ClientSession, rag, *, all_collections: bool = True) -> dict:
    """What every transport must do: list tools, search, ask, open a cited passage, refuse a bad collection."""
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    schema = tools["search"].input_schema
    assert schema["required"] == ["query"] and {"collection", "k", "mode", "filters"} <= set(schema["properties"])
    assert "rag://" in tools["search"].description and tools["ask"].description
    hits = data(await session.call_tool("search", {"query": "reciprocal rank fusion", "collection": "kb", "k": 2}))
    assert hits["hits"][0]["source"].endswith("fusion.md") and hits["hits"][0]["uri"].startswith("rag://kb/")
    answer = data(await session.call_tool("ask", {"question": FIRST, "collection": "kb"}))
    assert "[1]" in answer["answer"] and answer["sources"][0]["verified"] is True
    passage = (await session.read_resource(answer["sources"][0]["uri"])).contents[0].text
    assert passage.startswith("Source: ") and "Reciprocal rank fusion merges" in passage
    doc = json.loads((await session.read_resource(f"rag://kb/{hits['hits'][0]['document_id']}")).contents[0].text)
    assert hits["hits"][0]["uri"] in [c["uri"] for c in doc["chunks"]]
    if all_collections:  # a scoped key is refused first (the 403 message), as over REST
        with pytest.raises(RagError) as cli_error:
            rag.search("x", collection="nope")
        missing = error_text(await session.call_tool("search", {"query": "x", "collection": "nope"}))
        assert missing == f"Error executing tool search: {cli_error.value}"
    return answer


def test_stdio_rag_mcp_subprocess(world):
    tmp, rag = world
    script = Path(sys.executable).with_name("rag")
    cmd, args = (str(script), []) if script.exists() else (sys.executable, ["-m", "rag_platform.apps.cli"])
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "RAG_LLM__CHAIN": '["extractive"]',
           "TOKENIZERS_PARALLELISM": "false", "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=cmd, args=[*args, "mcp", "--home", str(tmp / "home"), "-c", "kb"],
                                   env=env, cwd=str(REPO))

    async def main() -> None:
        with (tmp / "stdio.err").open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await exercise(session, rag)
                listed = data(await session.call_tool("list_collections", {}))
                assert [c["name"] for c in listed["collections"]] == ["kb", "notes", "other"]
                docs = data(await session.call_tool("list_documents", {}))  # the --collection default: kb
                assert sorted(Path(d["source"]).name for d in docs["documents"]) == ["cache.md", "fusion.md"]
                refused = error_text(await session.call_tool("ingest", {"documents": [{"name": "a", "text": "b"}]}))
                assert "rag mcp --allow-write" in refused

    anyio.run(main)


def test_streamable_http_in_rag_serve_with_api_keys(world):
    _, rag = world
    keys = {"kb": key(rag, ["kb"]), "notes_write": key(rag, ["notes"], "write"), "other": key(rag, ["other"])}
    app = create_app(rag=rag, api_settings=ApiSettings(auth=True))

    async def session_for(url: str, api_key: str, check) -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as http, \
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            await check(session)

    async def reader(session: ClientSession) -> None:
        await exercise(session, rag, all_collections=False)
        listed = data(await session.call_tool("list_collections", {}))
        assert [c["name"] for c in listed["collections"]] == ["kb"]
        refused = error_text(await session.call_tool("ingest", {"collection": "kb",
                                                                "documents": [{"name": "a.md", "text": "b"}]}))
        assert "has role 'read'" in refused and "needs 'write'" in refused

    async def other(session: ClientSession) -> None:
        refused = error_text(await session.call_tool("search", {"query": "fusion", "collection": "kb"}))
        assert "not valid for collection 'kb'" in refused

    async def writer(session: ClientSession) -> None:
        text = "# Rotation\n\nAPI keys are rotated every ninety days by the platform team."
        done = data(await session.call_tool("ingest", {"collection": "notes",
                                                       "documents": [{"name": "rotation.md", "text": text}]}))
        assert done["summary"]["ok"] == 1 and done["chunks_added"] >= 1
        hits = data(await session.call_tool("search", {"query": "how often are keys rotated", "collection": "notes"}))
        assert hits["hits"][0]["source"] == "mcp:rotation.md"
        files = error_text(await session.call_tool("ingest", {"collection": "notes", "paths": ["/etc"]}))
        assert "RAG_MCP__ALLOWED_DIRS" in files

    async def main(url: str) -> None:
        await session_for(url, keys["kb"], reader)
        await session_for(url, keys["other"], other)
        await session_for(url, keys["notes_write"], writer)

    with LiveServer(app) as url:
        anyio.run(main, url)
        no_key = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        metrics = httpx.get(f"{url}/metrics").text
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "unauthorized"
    assert 'route="/mcp"' in metrics


def test_ingest_reads_files_only_under_allowed_folders(world, tmp_path):
    _, rag = world
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    for d in (allowed, outside):
        d.mkdir()
        (d / "note.md").write_text(f"# Note\n\nThe {d.name} folder holds the quarterly glossary of terms.\n")
    server = build_server(rag, lambda ctx: LOCAL_WRITER, ServerOptions(roots=(allowed.resolve(),)))

    async def main() -> None:
        async with Client(server) as client:
            done = data(await client.call_tool("ingest", {"collection": "local", "paths": ["note.md"]}))
            assert done["summary"]["ok"] == 1 and done["files"][0]["source"].endswith("allowed/note.md")
            refused = error_text(await client.call_tool("ingest", {"collection": "local",
                                                                   "paths": [str(outside / "note.md")]}))
            assert "outside the folders ingest may read" in refused
            sneaky = error_text(await client.call_tool("ingest", {"collection": "local",
                                                                  "paths": ["../outside/note.md"]}))
            assert "outside the folders ingest may read" in sneaky

    anyio.run(main)
    assert [Path(d.source_uri).parent.name for d in rag.documents("local")] == ["allowed"]


def test_without_keys_mcp_answers_local_hosts_only(world):
    _, rag = world
    app = create_app(rag=rag, api_settings=ApiSettings(auth=False))

    async def main(url: str) -> None:
        async with Client(f"{url}/mcp") as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS

    with LiveServer(app) as url:
        anyio.run(main, url)
        rebound = httpx.post(f"{url}/mcp", headers={"Host": "attacker.example"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert rebound.status_code in (403, 421)


def test_mcp_over_http_is_rate_limited_per_key(world):
    _, rag = world
    app = create_app(rag=rag, api_settings=ApiSettings(auth=True, rate_per_s=0.01, burst=1))
    headers = {"Authorization": f"Bearer {key(rag, ['kb'])}", "Accept": "application/json, text/event-stream"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with LiveServer(app) as url:
        first = httpx.post(f"{url}/mcp", headers=headers, json=ping)
        second = httpx.post(f"{url}/mcp", headers=headers, json=ping)
    assert first.status_code != 429
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1


def test_rag_mcp_refuses_allow_dir_without_allow_write(tmp_path):
    from typer.testing import CliRunner

    from rag_platform.apps.cli import app

    result = CliRunner().invoke(app, ["mcp", "--home", str(tmp_path), "--allow-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--allow-dir needs --allow-write" in result.output
