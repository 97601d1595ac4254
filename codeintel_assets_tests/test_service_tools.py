"""The tools in process, where SCIP has nothing to say: a JavaScript/TypeScript repository
(scip-python indexes none of it) answers from the syntax tree, and says so."""

from __future__ import annotations

import pytest

from codeintel_assets.core import registry
from codeintel_assets.core.service.handles import HandleCache
from codeintel_assets.core.service.tools import call_tool, estimate_tokens
from codeintel_assets_tests.support import FIXTURE_FILES, materialize_partition, write_fixture_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> HandleCache:
    root = tmp_path_factory.mktemp("tools")
    files = {uri: text for uri, text in FIXTURE_FILES.items() if uri.startswith("web/")}
    repo = write_fixture_repo(root / "repo", files)
    registry.add_repo(registry.RepoConfig(name="web", path=str(repo)), root=root / "data")
    assert materialize_partition("web", data_root=root / "data").success
    cache = HandleCache(["web"], root=root / "data")
    yield cache
    cache.close()


def test_definitions_and_outline_from_the_syntax_tree(cache: HandleCache) -> None:
    answer = call_tool(cache, "definition", {"symbol": "greet"})
    (greet,) = answer["matches"]
    assert (greet["uri"], greet["line"], greet["qualified_name"]) == (
        "web/app.js",
        2,
        "web.app.greet",
    )
    assert greet["symbol"] is None and greet["source"].startswith("function greet(name)")
    assert any("syntax tree" in note for note in answer["notes"])
    method = call_tool(cache, "definition", {"symbol": "Counter.increment"})["matches"]
    assert [(m["qualified_name"], m["kind"]) for m in method] == [
        ("web.app.Counter.increment", "method")
    ]
    outline = call_tool(cache, "outline", {"uri": "web/app.js"})["definitions"]
    assert [(d["name"], d["kind"]) for d in outline] == [
        ("greet", "function"),
        ("Counter", "class"),
    ]
    assert {c["qualified_name"] for c in outline[1]["children"]} >= {"Counter.increment"}


def test_graph_questions_say_there_is_no_scip(cache: HandleCache) -> None:
    references = call_tool(cache, "references", {"symbol": "distance"})
    assert references["matches"][0]["files"] == []
    assert any("no SCIP data" in note for note in references["notes"])
    callers = call_tool(cache, "callers", {"symbol": "distance"})
    assert callers["matches"][0]["callers"] == []


def test_search_is_cut_to_max_tokens(cache: HandleCache) -> None:
    whole = call_tool(cache, "search", {"query": "count increment greet", "mode": "dense", "k": 5})
    cut = call_tool(
        cache,
        "search",
        {"query": "count increment greet", "mode": "dense", "k": 5, "max_tokens": 50},
    )
    assert len(whole["results"]) > 1 and not whole["truncated"]
    assert cut["truncated"] and len(cut["results"]) == 1
    # The first result is always given, its text cut to what the budget leaves.
    first, full = cut["results"][0], whole["results"][0]
    assert first["chunk_id"] == full["chunk_id"] and len(first["preview"]) < len(full["preview"])
    assert estimate_tokens(first) < estimate_tokens(full)
    assert any("raise max_tokens" in note for note in cut["notes"])
