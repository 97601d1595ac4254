"""The HTTP API as a real `indexctl serve` process on a free loopback port: every tool, the
page, metrics, MCP streamable HTTP, `indexctl search --server`, bad input and tokens."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from codeintel_assets.core import registry
from codeintel_assets_tests.service_support import (
    G_LINE,
    INDEXCTL,
    NAV_FILES,
    build_published,
    free_port,
    post,
    running_server,
    service_env,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("http")
    build_published(root / "repo", root / "data")
    # A second repository that is registered but has nothing published.
    (root / "empty").mkdir()
    registry.add_repo(
        registry.RepoConfig(name="empty", path=str(root / "empty")), root=root / "data"
    )
    return root / "data"


@pytest.fixture(scope="module")
def server(data: Path) -> Iterator[str]:
    with running_server(data) as url:
        yield url


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get("content-type", ""), response.read().decode()


def test_tools_over_http(server: str) -> None:
    status, _, body = get(server + "/healthz")
    assert status == 200 and json.loads(body)["repos"] == ["empty", "nav"]
    tools = json.loads(get(server + "/api/tools")[2])["tools"]
    assert len(tools) == 9 and all(t["input_schema"]["type"] == "object" for t in tools)

    code, definition = post(server, "/api/definition", {"repo": "nav", "symbol": "pkg.b.g"})
    assert code == 200 and definition["matches"][0]["line"] == G_LINE
    code, found = post(
        server, "/api/search", {"repo": "nav", "query": "Return one", "mode": "bm25"}
    )
    assert code == 200 and found["results"][0]["uri"] == "pkg/b.py"
    assert found["build_version"] == definition["build_version"] and found["stale_files"] == 0
    code, callers = post(server, "/api/callers", {"repo": "nav", "symbol": "g"})
    assert code == 200 and callers["matches"][0]["callers"][0]["qualified_name"] == "pkg.a.f"
    # 50 tokens are ~200 characters: the first lines of pkg/table.py, not all 60.
    code, read = post(server, "/api/read", {"repo": "nav", "uri": "pkg/table.py", "max_tokens": 50})
    assert code == 200 and read["truncated"] and read["next_start_line"] == read["end_line"] + 1
    code, rest = post(
        server,
        "/api/read",
        {"repo": "nav", "uri": "pkg/table.py", "start_line": read["next_start_line"]},
    )
    text = read["text"] + "\n" + rest["text"] + "\n"
    assert text == NAV_FILES["pkg/table.py"] and not rest["truncated"]
    code, status_all = post(server, "/api/status", {})
    by_repo = {entry["repo"]: entry for entry in status_all["repos"]}
    assert by_repo["nav"]["counts"]["chunks"] > 0
    assert "nothing is published" in by_repo["empty"]["error"]

    metrics = get(server + "/metrics")[2]
    assert 'codeintel_tool_call_seconds_count{outcome="ok",tool="search"}' in metrics
    assert "codeintel_catalog_filter_queries" in metrics or "codeintel_catalog_view" in metrics


def test_search_page(server: str) -> None:
    status, content_type, page = get(server + "/")
    assert status == 200 and content_type.startswith("text/html")
    assert 'id="q"' in page and '"/api/" + tool' in page and "references" in page
    assert "<option>hybrid</option><option>dense</option><option>bm25</option>" in page


def test_bad_input_answers_clearly_and_the_server_stays_up(server: str) -> None:
    cases = [
        ("/api/search", {"repo": "elsewhere", "query": "x"}, 404, "not served"),
        ("/api/definition", {"repo": "nav", "symbol": "nope"}, 404, "no definition named 'nope'"),
        ("/api/read", {"repo": "nav", "uri": "../../../etc/passwd"}, 404, "repository-relative"),
        ("/api/read", {"repo": "nav", "uri": "pkg/../../x.py"}, 404, "repository-relative"),
        ("/api/read", {"repo": "nav", "uri": "pkg/missing.py"}, 404, "not an indexed file"),
        ("/api/search", {"repo": "nav", "query": "x", "k": 0}, 400, "`k` must be at least 1"),
        ("/api/callees", {"repo": "nav", "symbol": "f", "depth": 9}, 400, "at most 3"),
        ("/api/search", {"repo": "nav", "query": "x" * (1 << 20)}, 413, "over 262144 bytes"),
        ("/api/search", {"repo": "nav", "query": "x" * 3000}, 400, "longer than 2000"),
        ("/api/search", b"{not json", 400, "not JSON"),
        ("/api/search", {"repo": "empty", "query": "x"}, 409, "nothing is published"),
        ("/api/unknown", {}, 400, "unknown tool"),
    ]
    for path, payload, expected, message in cases:
        code, answer = post(server, path, payload)
        assert (code, message in answer["error"]["message"]) == (expected, True), (path, answer)
    malformed = urllib.request.Request(
        server + "/mcp",
        data=b'{"jsonrpc": "2.0", "id": 1, "method": ',
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        method="POST",
    )
    try:
        urllib.request.urlopen(malformed, timeout=30)
        raise AssertionError("malformed JSON-RPC was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and b"Parse error" in exc.read()
    assert get(server + "/healthz")[0] == 200


def test_mcp_over_streamable_http(server: str) -> None:
    async def session() -> tuple[list[str], dict]:
        async with Client(server + "/mcp") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool("references", {"repo": "nav", "symbol": "g"})
            return names, result.structured_content

    names, references = anyio.run(session)
    assert "references" in names and references["matches"][0]["total"] == 2


def test_cli_search_through_the_server(server: str, data: Path) -> None:
    env = service_env(data)
    done = subprocess.run(
        [
            INDEXCTL,
            "search",
            "Return one",
            "--repo",
            "nav",
            "--mode",
            "bm25",
            "--format",
            "json",
            "--server",
            server,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["uri"] == "pkg/b.py"
    gone = subprocess.run(
        [INDEXCTL, "search", "x", "--server", f"http://127.0.0.1:{free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1 and gone.stderr.startswith("indexctl: error: cannot reach")
    assert "Traceback" not in gone.stderr


def test_tokens_guard_a_non_loopback_bind(data: Path) -> None:
    refused = subprocess.run(
        [INDEXCTL, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env={k: v for k, v in service_env(data).items() if k != "CODEINTEL_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "bearer token" in refused.stderr
    with running_server(data, "--token", "s3cret", host="0.0.0.0") as url:
        assert post(url, "/api/status", {"repo": "nav"})[0] == 401
        assert post(url, "/api/status", {"repo": "nav"}, token="wrong")[0] == 401
        code, answer = post(url, "/api/status", {"repo": "nav"}, token="s3cret")
        assert code == 200 and answer["repo"] == "nav"
        assert get(url + "/healthz")[0] == 200
        denied = urllib.request.Request(url + "/metrics")
        try:
            urllib.request.urlopen(denied, timeout=30)
            raise AssertionError("metrics served without the token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        with_token = subprocess.run(
            [INDEXCTL, "search", "Return one", "--repo", "nav", "--mode", "bm25", "--server", url],
            env=service_env(data, CODEINTEL_TOKEN="s3cret"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert with_token.returncode == 0 and "pkg/b.py" in with_token.stdout
