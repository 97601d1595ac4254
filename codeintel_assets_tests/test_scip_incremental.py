"""Incremental SCIP equals a full pass: body-only edits, signature changes, renames, new and
deleted files, each compared with a full scip-python pass over the same tree (real
scip-python). And the environment imports resolve against is the configured one."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest

from codeintel_assets.core import registry
from codeintel_assets.core.checksums import xxh64_file
from codeintel_assets.core.context import BuildContext
from codeintel_assets.core.errors import BadInputError
from codeintel_assets.core.scip import decode_scip_file
from codeintel_assets.core.scip.environment import MINIMAL, resolve_python_env
from codeintel_assets.core.scip.order import imported_names, processing_order
from codeintel_assets.core.stages import run_named
from codeintel_assets_tests.scip_support import CORPUS, assert_same_as_full, build
from codeintel_assets_tests.support import write_fixture_repo

pytestmark = pytest.mark.integration


def test_incremental_scip_equals_a_full_pass_for_each_kind_of_edit(tmp_path: Path):
    repo = write_fixture_repo(tmp_path / "repo", CORPUS, git=False)
    data = tmp_path / "data"
    first = build("corpus", repo, data)
    assert first["scip"]["mode"] == "full" and first["scip"]["mode_reason"] == "no previous index"
    assert first["scip"]["documents"] == len(CORPUS)
    assert first["scip"]["order_files_parsed"] == len(CORPUS)

    # Body-only: same names, same types, same symbols used -> that file alone.
    shapes = repo / "pkg/shapes.py"
    shapes.write_text(shapes.read_text().replace("self.size * self.size", "self.size**2"))
    step = build("corpus", repo, data)
    assert step["scip"]["mode"] == "incremental", step["scip"]["mode_reason"]
    assert step["scip"]["reindexed_examples"] == ["pkg/shapes.py"]
    # The processing order read the edited file alone; the others' imports were stored.
    assert step["scip"]["order_files_parsed"] == 1
    # Only the re-indexed document's rows are made again; the others' are kept.
    converted = step["occurrences"]
    assert (converted["reuse"], converted["documents_converted"]) == ("reused", 1)
    assert converted["files_reused"] == len(CORPUS) - 1
    assert_same_as_full(step, repo, tmp_path)

    # Signature change: its users are re-indexed, and theirs only if their interface moved.
    signature = ("def make_shape(size: int)", "def make_shape(size: int, scale: int = 1)")
    shapes.write_text(shapes.read_text().replace(*signature))
    step = build("corpus", repo, data)
    assert step["scip"]["mode"] == "incremental", step["scip"]["mode_reason"]
    assert step["scip"]["reindexed_examples"] == ["pkg/render.py", "pkg/shapes.py"]
    assert 1 <= step["occurrences"]["documents_converted"] <= 2
    assert_same_as_full(step, repo, tmp_path)

    # Rename util.py -> helpers.py (and its user), plus the new file app.py already imported.
    (repo / "pkg/util.py").rename(repo / "pkg/helpers.py")
    report = repo / "pkg/report.py"
    report.write_text(report.read_text().replace("pkg.util", "pkg.helpers"))
    (repo / "pkg/extra.py").write_text("def bonus() -> int:\n    return 7\n")
    step = build("corpus", repo, data)
    assert step["scip"]["mode"] == "incremental", step["scip"]["mode_reason"]
    assert step["scip"]["files_added"] == 2 and step["scip"]["files_deleted"] == 1
    assert step["scip"]["order_files_parsed"] == 3  # helpers.py, extra.py, report.py
    assert "app.py" in step["scip"]["reindexed_examples"]
    assert_same_as_full(step, repo, tmp_path)

    # Delete a file others use: its users are re-indexed, its rows are gone.
    report.unlink()
    step = build("corpus", repo, data)
    assert step["scip"]["mode"] == "incremental", step["scip"]["mode_reason"]
    assert step["scip"]["reindexed_examples"] == ["app.py"]
    assert "pkg/report.py" not in step["scip_occurrences"].column("uri").to_pylist()
    assert "pkg/report.py" not in step["scip_symbols"].column("uri").to_pylist()
    assert step["occurrences"]["files_deleted"] == 1
    assert step["occurrences"]["documents_converted"] <= 1
    assert_same_as_full(step, repo, tmp_path)

    # Another environment names other symbols: a full pass, and it says why.
    venv = tmp_path / "venv"
    (venv / "lib/python3.11/site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("version = 3.11.7\n")
    registry.add_repo(
        registry.RepoConfig(name="corpus", path=str(repo), python_env=str(venv)),
        root=data,
        replace=True,
    )
    ctx = BuildContext.for_repo("corpus", root=data)
    result = run_named(ctx, "scip_index")
    assert result.ran and result.metadata["mode"] == "full"
    assert result.metadata["mode_reason"] == "the Python environment changed"
    assert result.metadata["python_env"]["venv"] == str(venv.resolve())


def fake_venv(root: Path, package: str, version: str) -> Path:
    """A virtualenv holding one installed package ``package`` (module and dist-info)."""
    site = root / "lib/python3.11/site-packages"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("def greet(name: str) -> str:\n    return name\n")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{info.name}/METADATA,,\n")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.11.7.final.0\n")
    return root


def test_imports_resolve_against_the_repository_environment_not_this_tools(tmp_path: Path):
    # pyarrow is installed where this tool runs, fancylib only in the repository's .venv.
    repo = write_fixture_repo(
        tmp_path / "repo",
        {"main.py": "import fancylib\nimport pyarrow\n\nprint(fancylib.greet('x'), pyarrow)\n"},
        git=False,
    )
    venv = fake_venv(repo / ".venv", "fancylib", "9.9.1")
    assert resolve_python_env(repo, None).source == "detected"
    detected = build("env", repo, tmp_path / "data")
    assert detected["scip"]["python_env"]["python_env"] == "detected"
    symbols = set(detected["scip_occurrences"].column("symbol").to_pylist())
    assert "scip-python python fancylib 9.9.1 fancylib/greet()." in symbols
    assert not any(" pyarrow " in s for s in symbols)

    registry.add_repo(
        registry.RepoConfig(name="env", path=str(repo), python_env=MINIMAL),
        root=tmp_path / "data",
        replace=True,
    )
    ctx = BuildContext.for_repo("env", root=tmp_path / "data")
    result = run_named(ctx, "scip_index")
    assert result.metadata["python_env"]["python_env"] == MINIMAL
    index = decode_scip_file(ctx.layout.build.scip_index)
    names = {occ.symbol for doc in index.documents for occ in doc.occurrences}
    assert not any("fancylib 9.9.1" in s or " pyarrow " in s for s in names)
    shutil.rmtree(venv)


def test_python_env_must_be_a_virtualenv(tmp_path: Path):
    repo = write_fixture_repo(tmp_path / "repo", {"a.py": "x = 1\n"}, git=False)
    with pytest.raises(BadInputError, match="python_env is not a virtualenv"):
        registry.add_repo(
            registry.RepoConfig(name="r", path=str(repo), python_env=str(tmp_path)),
            root=tmp_path / "data",
        )
    assert resolve_python_env(repo, None).source == MINIMAL
    venv = fake_venv(tmp_path / "v", "p", "1")
    stored = registry.add_repo(
        registry.RepoConfig(name="r", path=str(repo), python_env=str(venv)), root=tmp_path / "data"
    )
    assert stored.python_env == str((tmp_path / "v").resolve())
    assert registry.get_repo("r", tmp_path / "data").python_env == stored.python_env


def test_processing_order_puts_a_file_after_the_files_it_imports(tmp_path: Path):
    files = {
        "app.py": "from pkg import api\n",
        "pkg/__init__.py": "from .api import run as run\n",
        "pkg/api.py": "from pkg.core import base\nimport pkg.util\n",
        "pkg/core/__init__.py": "",
        "pkg/core/base.py": "from ..api import run\n",  # a cycle with pkg/api.py
        "pkg/util.py": "x = (\n",  # does not parse: no edges
        "src/lib/tool.py": "import lib.helper\n",
        "src/lib/helper.py": "",
    }
    repo = write_fixture_repo(tmp_path / "repo", files, git=False)
    order = processing_order(repo, sorted(files))
    assert sorted(order) == sorted(files)
    # From the import names, each file read once; a stored file's names are not read again.
    hashes = {uri: xxh64_file(repo / uri) for uri in files}
    names, parsed = imported_names(repo, hashes, {})
    assert parsed == len(files) and processing_order(repo, sorted(files), names) == order
    assert names["pkg/core/base.py"] == ["pkg.api", "pkg.api.run"]
    stored = {uri: [digest, names[uri]] for uri, digest in hashes.items()}
    stored["app.py"] = [hashes["app.py"], ["pkg.util"]]  # kept as stored: the same hash
    stored["pkg/util.py"] = ["another hash", ["app"]]  # read again: its bytes changed
    again, parsed = imported_names(repo, hashes, stored)
    assert parsed == 1 and again == {**names, "app.py": ["pkg.util"]}
    rank = order.index
    assert rank("pkg/api.py") < rank("pkg/__init__.py") < rank("app.py")
    assert rank("pkg/util.py") < rank("pkg/api.py")
    assert rank("pkg/core/__init__.py") < rank("pkg/core/base.py")
    # The cycle api <-> core/base is ordered by path, after what either imports.
    assert rank("pkg/api.py") < rank("pkg/core/base.py")
    assert rank("src/lib/helper.py") < rank("src/lib/tool.py")


def test_incremental_updates_of_a_tree_that_shadows_a_standard_library_module_are_exact(
    tmp_path: Path,
):
    # A top-level codeop.py shadows the standard library's: a full pass in parts names its
    # symbols otherwise (parts.py), an incremental update of its user or of itself must not.
    codeop = (Path(sysconfig.get_paths()["stdlib"]) / "codeop.py").read_text()
    corpus = {
        "codeop.py": codeop,
        "user.py": "from codeop import CommandCompiler\n\nprint(CommandCompiler()('x = 1'))\n",
        "other.py": "def unrelated() -> int:\n    return 1\n",
    }
    repo = write_fixture_repo(tmp_path / "repo", corpus, git=False)
    data = tmp_path / "data"
    assert build("corpus", repo, data)["scip"]["mode"] == "full"
    for name in ("user.py", "codeop.py"):
        (repo / name).write_text((repo / name).read_text() + "\nEDITED = 1\n")
        step = build("corpus", repo, data)
        assert step["scip"]["mode"] == "incremental", step["scip"]["mode_reason"]
        assert step["scip"]["reindexed_examples"] == [name]
        assert_same_as_full(step, repo, tmp_path)
