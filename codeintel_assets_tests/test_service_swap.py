"""Hot swap: a publish or rollback is picked up without a restart, requests in flight finish
on their version, no answer mixes versions, old handles are released; freshness follows the
work tree."""

from __future__ import annotations

import threading
import time

import pytest

from codeintel_assets.core import lifecycle
from codeintel_assets.core.layout import RepoLayout
from codeintel_assets.core.service.freshness import TTL_S
from codeintel_assets.core.service.handles import HandleCache
from codeintel_assets.core.service.tools import call_tool
from codeintel_assets_tests.service_support import (
    G_LINE,
    NAV_FILES,
    build_published,
    post,
    running_server,
)
from codeintel_assets_tests.support import materialize_partition

pytestmark = pytest.mark.integration

EDITED_B = NAV_FILES["pkg/b.py"].replace(
    "def g():", 'def h():\n    """Call g."""\n    return g()\n\n\ndef g():'
)


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Serve the fixture, loop requests while it is edited, rebuilt and published."""
    root = tmp_path_factory.mktemp("swap")
    data = root / "data"
    repo = build_published(root / "repo", data)
    layout = RepoLayout(data, "nav")
    old = lifecycle.current_version_or_none(layout)
    answers: list[tuple[float, int, dict]] = []
    stop = threading.Event()
    with running_server(data) as url:

        def client() -> None:
            calls = [
                ("/api/definition", {"symbol": "g"}),
                ("/api/search", {"query": "Return one", "mode": "bm25", "k": 3}),
                ("/api/callers", {"symbol": "g"}),
            ]
            n = 0
            while not stop.is_set():
                path, payload = calls[n % len(calls)]
                started = time.monotonic()
                code, answer = post(url, path, payload)
                answers.append((started, code, answer))
                n += 1

        thread = threading.Thread(target=client)
        thread.start()
        # A few answers of the unedited tree first, however slow the machine is.
        deadline = time.monotonic() + 60
        while len(answers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(TTL_S + 0.5)
        (repo / "pkg" / "b.py").write_text(EDITED_B, encoding="utf-8")
        time.sleep(TTL_S + 1.0)
        edited_at = time.monotonic()
        assert materialize_partition("nav", data_root=data).success
        published_at = time.monotonic()
        time.sleep(1.5)
        stop.set()
        thread.join()
        _, h = post(url, "/api/definition", {"symbol": "h"})
    return {
        "old": old,
        "new": lifecycle.current_version_or_none(layout),
        "answers": answers,
        "edited_at": edited_at,
        "published_at": published_at,
        "h": h,
        "data": data,
    }


def test_every_answer_is_complete_and_names_one_version(swapped: dict) -> None:
    old, new, answers = swapped["old"], swapped["new"], swapped["answers"]
    assert old != new and len(answers) > 20
    assert all(code == 200 for _, code, _ in answers), [a for _, c, a in answers if c != 200][:3]
    versions = {answer["build_version"] for _, _, answer in answers}
    assert versions == {old, new}
    for _, _, answer in answers:
        body = answer.get("matches") or answer.get("results")
        assert body, answer
        if "matches" in answer and answer["matches"][0].get("line") is not None:
            # g moved down five lines in the new version: the line always fits the version named.
            line = answer["matches"][0]["line"]
            if answer["matches"][0]["qualified_name"] == "pkg.b.g":
                assert line == (G_LINE if answer["build_version"] == old else G_LINE + 5)
    after = [a["build_version"] for started, _, a in answers if started > swapped["published_at"]]
    assert after and set(after) == {new}


def test_freshness_follows_the_work_tree(swapped: dict) -> None:
    answers = swapped["answers"]
    before_edit = [a["stale_files"] for started, _, a in answers[:3]]
    # Between the edit and the end of the rebuild, the old version is one file behind the work
    # tree; the new version (picked up as soon as it is published) is not.
    edited = {
        (a["build_version"], a["stale_files"])
        for started, _, a in answers
        if swapped["edited_at"] < started < swapped["published_at"]
    }
    after = [a["stale_files"] for started, _, a in answers if started > swapped["published_at"]]
    assert before_edit == [0, 0, 0]
    assert (swapped["old"], 1) in edited and edited <= {(swapped["old"], 1), (swapped["new"], 0)}
    assert after and set(after) == {0}
    assert swapped["h"]["matches"][0]["qualified_name"] == "pkg.b.h"


def test_rollback_swaps_and_releases_the_old_handle(swapped: dict) -> None:
    data, old, new = swapped["data"], swapped["old"], swapped["new"]
    layout = RepoLayout(data, "nav")
    cache = HandleCache(["nav"], root=data)
    try:
        with cache.acquire("nav") as in_flight:
            assert in_flight.build_version == new
            lifecycle.rollback(layout, old)
            # The request in flight keeps its version and its open catalog.
            answer = call_tool(cache, "definition", {"symbol": "g"})
            assert answer["build_version"] == old and answer["matches"][0]["line"] == G_LINE
            with in_flight.cursor() as cursor:
                assert cursor.execute("SELECT count(*) FROM v_chunks").fetchone()[0] > 0
            assert in_flight.retired and cache.swaps == 1
        with pytest.raises(Exception, match="closed"):
            with in_flight.cursor():
                pass
        assert cache.loaded()["nav"].build_version == old
    finally:
        cache.close()
        lifecycle.rollback(layout, new)
