"""scip-python crashing on one file costs that file's document, not the repository's index.

The pinned scip-python (0.6.6) stops a whole run with "Experienced Fatal Error While
Indexing" on the running Python's own ``signal.py`` (``from _signal import *``) when
``asyncio/unix_events.py`` is indexed before it: found indexing the whole standard library,
where it left every build without SCIP. These are the real files and the real crash.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pyarrow.compute as pc

from codeintel_assets_tests.scip_support import build
from codeintel_assets_tests.support import write_fixture_repo

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CRASHING = "Lib/signal.py"


def _corpus() -> dict[str, str]:
    files = {
        f"Lib/{name}": (STDLIB / name).read_text(encoding="utf-8")
        for name in ("signal.py", "asyncio/unix_events.py")
    }
    files["tools/use.py"] = "def twice(x: int) -> int:\n    return 2 * x\n"
    return files


def _documents(result: dict[str, object]) -> set[str]:
    return set(result["scip_occurrences"].column("uri").to_pylist())


def test_a_file_scip_python_crashes_on_is_left_out_and_named(tmp_path: Path) -> None:
    repo = write_fixture_repo(tmp_path / "repo", _corpus())
    full = build("crash", repo, tmp_path / "data")
    scip = full["scip"]
    assert scip["ok"] and scip["mode"] == "full"
    assert scip["files_scip_python_crashed_on"] == 1
    assert list(scip["scip_python_crashes"]) == [CRASHING]
    assert "crashed" in scip["scip_python_crashes"][CRASHING]
    assert "Debug Failure" in scip["scip_python_crashes"][CRASHING]
    # Every other file is indexed; the crashed one has no rows anywhere.
    assert _documents(full) == {"Lib/asyncio/unix_events.py", "tools/use.py"}
    assert scip["documents"] == 2
    unix_events = full["scip_occurrences"].filter(
        pc.equal(full["scip_occurrences"]["uri"], "Lib/asyncio/unix_events.py")
    )
    assert unix_events.num_rows > 100

    # An unrelated edit is incremental and still reports the crash (kept in the state).
    (repo / "tools/use.py").write_text(
        "def twice(x: int) -> int:\n    return x + x\n", encoding="utf-8"
    )
    edited = build("crash", repo, tmp_path / "data")
    assert edited["scip"]["mode"] == "incremental"
    assert edited["scip"]["documents_reindexed"] == 1
    assert edited["scip"]["files_scip_python_crashed_on"] == 1
    assert _documents(edited) == _documents(full)
