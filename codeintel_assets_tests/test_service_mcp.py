"""The tools over MCP stdio: the official SDK's client spawns `indexctl mcp` on a generated
repository built and published by the real pipeline, lists the tools and calls every one."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from codeintel_assets_tests.service_support import G_LINE, INDEXCTL, build_published, service_env

pytestmark = pytest.mark.integration

TOOLS = {
    "search",
    "read",
    "definition",
    "references",
    "callers",
    "callees",
    "outline",
    "module",
    "status",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mcp")
    build_published(root / "repo", root / "data")
    return root / "data"


def run_session(data: Path, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    """Spawn `indexctl mcp`, list the tools, make ``calls``; return (tools, results)."""
    params = StdioServerParameters(command=INDEXCTL, args=["mcp"], env=service_env(data))

    async def session() -> tuple[list, list]:
        async with Client(params, read_timeout_seconds=120) as client:
            listed = (await client.list_tools()).tools
            results = [await client.call_tool(name, args) for name, args in calls]
            return listed, results

    return anyio.run(session)


def test_every_tool_over_stdio(data: Path) -> None:
    calls = [
        ("search", {"query": "Return one", "mode": "bm25", "k": 3}),
        ("read", {"uri": "pkg/b.py", "start_line": G_LINE, "end_line": G_LINE + 2}),
        ("definition", {"symbol": "g"}),
        ("references", {"symbol": "g"}),
        ("callers", {"symbol": "g"}),
        ("callees", {"symbol": "pkg.a.f"}),
        ("outline", {"uri": "pkg/a.py"}),
        ("module", {"module_id": "pkg.b"}),
        ("status", {}),
        ("definition", {"symbol": "run"}),
        ("definition", {"uri": "pkg/a.py", "line": 8, "character": 14}),
        ("callers", {"symbol": "g", "depth": 2}),
    ]
    listed, results = run_session(data, calls)
    assert {tool.name for tool in listed} == TOOLS
    assert all(tool.description and tool.input_schema["type"] == "object" for tool in listed)
    search_schema = next(t for t in listed if t.name == "search").input_schema
    assert search_schema["properties"]["k"]["maximum"] == 50
    assert not any(r.is_error for r in results), [r.content for r in results if r.is_error]
    answers = [r.structured_content for r in results]
    versions = {a["build_version"] for a in answers}
    assert len(versions) == 1 and all(a["repo"] == "nav" and a["stale_files"] == 0 for a in answers)
    search, read, definition, references, callers, callees, outline, module, status = answers[:9]

    assert search["results"][0]["uri"] == "pkg/b.py"
    assert read["text"] == 'def g():\n    """Return one."""\n    return 1'
    (g,) = definition["matches"]
    assert (g["uri"], g["line"], g["qualified_name"], g["kind"]) == (
        "pkg/b.py",
        G_LINE,
        "pkg.b.g",
        "function",
    )
    assert g["documentation"] == "Return one." and g["signature"].startswith("def g()")

    (refs,) = references["matches"]
    uses = [(f["uri"], r["line"], r["enclosing"]) for f in refs["files"] for r in f["references"]]
    assert uses.count(("pkg/a.py", 8, "pkg.a.f")) == 2

    called_by = {
        (c["qualified_name"], c["edge"], c["weight"]) for c in callers["matches"][0]["callers"]
    }
    assert ("pkg.a.f", "call", 2) in called_by
    calls_made = {c["qualified_name"] for c in callees["matches"][0]["callees"]}
    assert "pkg.b.g" in calls_made

    top = [(d["name"], d["kind"]) for d in outline["definitions"]]
    assert top == [("f", "function"), ("Child", "class")]
    assert [(d["qualified_name"], d["kind"]) for d in outline["definitions"][1]["children"]] == [
        ("Child.run", "method")
    ]

    assert module["module"]["module_id"] == "pkg.b"
    assert {m["module_id"] for m in module["importers"]} == {"pkg.a"}
    assert module["top_definitions"][0]["qualified_name"] in {"pkg.b.g", "pkg.b.Base"}

    assert status["counts"]["files"] == 4 and status["counts"]["edges"] > 0
    assert status["freshness"]["stale_files"] == 0

    ambiguous = answers[9]
    assert ambiguous["ambiguous"] is True
    assert {m["qualified_name"] for m in ambiguous["matches"]} == {
        "pkg.a.Child.run",
        "pkg.b.Base.run",
    }
    at_position = answers[10]["matches"][0]
    assert (at_position["qualified_name"], at_position["line"]) == ("pkg.b.g", G_LINE)
    deeper = {(c["qualified_name"], c["depth"]) for c in answers[11]["matches"][0]["callers"]}
    assert {("pkg.a.f", 1), ("pkg.a.Child.run", 2)} <= deeper


def test_bad_input_is_a_tool_error_and_the_server_stays_up(data: Path) -> None:
    calls = [
        ("definition", {"symbol": "no_such_name"}),
        ("search", {"query": "x", "repo": "elsewhere"}),
        ("read", {"uri": "../../etc/passwd"}),
        ("read", {"uri": "/etc/passwd"}),
        ("search", {"query": "q", "k": 1000}),
        ("callers", {"symbol": "g", "depth": 4}),
        ("search", {"query": "x" * (1 << 20)}),
        ("module", {"module_id": "nope"}),
        ("nonexistent_tool", {}),
        ("search", {"query": "q", "typo": 1}),
        ("status", {}),
    ]
    _, results = run_session(data, calls)
    *errors, last = results
    assert all(r.is_error for r in errors)
    messages = [r.content[0].text for r in errors]
    assert "no definition named 'no_such_name'" in messages[0]
    assert "'elsewhere' is not served" in messages[1]
    assert (
        "not a repository-relative path" in messages[2]
        and "not a repository-relative" in messages[3]
    )
    assert "`k` must be at most 50 (got 1000)" in messages[4]
    assert "`depth` must be at most 3 (got 4)" in messages[5]
    assert "`query` is longer than 2000 characters" in messages[6] and len(messages[6]) < 200
    assert "no module 'nope'" in messages[7] and "pkg.b" in messages[7]
    assert "nonexistent_tool" in messages[8]
    assert "unknown argument(s) typo" in messages[9]
    assert not last.is_error and last.structured_content["repo"] == "nav"
