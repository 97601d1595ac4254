"""Run the pinned scip-python on a repository's manifest and write ``index.scip`` atomically.

scip-python (0.6.6, with its bundled pyright) indexes every ``.py``/``.pyi`` under
``--cwd`` that its own rules select, follows symlinks and honours a
``pyrightconfig.json`` even in a parent folder. Run on the work tree it would index
files the manifest skipped (symlinks leaving the repository, oversized or excluded
files, whatever pyright's config names). So it never sees the work tree: we copy the
manifest's Python files into a private staging tree, with the same relative paths
and nothing else, and index that (``--cwd`` and ``--target-only`` are the staging
tree, whose own ``pyrightconfig.json`` includes all of it). Document paths stay
repository-relative and every document is a manifest file.

scip-python otherwise shells out to ``pip list`` / ``pip show`` to name third-party
packages, which is slow, needs ``pip`` on ``PATH`` and makes the index depend on
whichever interpreter is first on ``PATH``. We pass ``--environment`` with a package
list made from the running interpreter's ``importlib.metadata`` instead, and put that
interpreter first on ``PATH`` so pyright resolves imports against the same
site-packages.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codeintel_assets.core.checksums import atomic_path
from codeintel_assets.core.layout import PROJECT_ROOT

SCIP_PYTHON_ENV = "CODEINTEL_SCIP_PYTHON"
DEFAULT_SCIP_PYTHON = PROJECT_ROOT / "tools/scip-python/node_modules/.bin/scip-python"
_STDERR_TAIL_CHARS = 4000
_TOTAL_FILES = re.compile(r"Total Project Files (\d+)")


@dataclass(frozen=True)
class ScipRunResult:
    """What one scip-python run did.

    ``ok`` is true only when the index was written to ``output``; on failure ``output``
    is left as it was. ``reason`` says why it failed (empty when ok); ``stderr_tail``
    holds the end of the indexer's combined output; ``python_files`` counts the files
    scip-python was given.
    """

    ok: bool
    seconds: float
    output: Path
    python_files: int
    reason: str = ""
    stderr_tail: str = ""


def scip_python_binary() -> Path:
    """Return the scip-python executable: ``$CODEINTEL_SCIP_PYTHON`` or the pinned one."""
    configured = os.environ.get(SCIP_PYTHON_ENV)
    return Path(configured) if configured else DEFAULT_SCIP_PYTHON


def manifest_python_uris(repo_root: Path) -> list[str]:
    """Return the Python files of the default manifest of ``repo_root`` and the empty ones
    it skipped (an empty ``__init__.py`` still makes a package)."""
    from codeintel_assets.core.manifest import build_manifest, language_of

    result = build_manifest(repo_root)
    empty = [s["uri"] for s in result.skips.to_pylist() if s["reason"] == "empty"]
    uris = result.files.column("uri").to_pylist() + empty
    return sorted(uri for uri in uris if language_of(uri) == "python")


def _stage_tree(repo_root: Path, uris: Sequence[str], tree: Path) -> int:
    """Copy the files ``uris`` of ``repo_root`` under ``tree``; return how many were copied.

    A file that vanished or became unreadable since the manifest was made is left out.
    """
    copied = 0
    for uri in uris:
        target = tree / uri
        try:
            data = (repo_root / uri).read_bytes()
        except OSError:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        copied += 1
    return copied


def _environment_packages() -> list[dict[str, object]]:
    """Return installed distributions in scip-python's ``--environment`` format."""
    packages = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name in packages:
            continue
        files = [
            str(f)
            for f in dist.files or ()
            if str(f).endswith((".py", ".pyi"))
            and not str(f).startswith("..")
            and "__pycache__" not in str(f)
        ]
        packages[name] = {"name": name, "version": dist.version, "files": files}
    return sorted(packages.values(), key=lambda p: str(p["name"]).lower())


def _tail(text: str) -> str:
    return text[-_STDERR_TAIL_CHARS:]


def run_scip_python(
    repo_root: Path,
    output: Path,
    project_name: str,
    project_version: str,
    *,
    uris: Sequence[str] | None = None,
    timeout_s: float = 1800,
) -> ScipRunResult:
    """Index the Python files ``uris`` of ``repo_root`` with scip-python into ``output``.

    ``uris`` are repository-relative ``.py``/``.pyi`` paths (the manifest's); None means
    those of the default manifest of ``repo_root``. Only these files are indexed (see
    the module docstring). The index is written to a temp file, then renamed.

    Never raises for an indexer problem: a missing binary, a repository without
    Python files, a non-zero exit, a timeout or an empty output all return
    ``ok=False`` with a ``reason``. Raises only for programming errors (e.g. an
    unwritable ``output`` directory surfaces as ``OSError``).
    """
    started = time.monotonic()
    repo_root = repo_root.resolve()
    output = output.resolve()

    def failed(reason: str, python_files: int = 0, tail: str = "") -> ScipRunResult:
        return ScipRunResult(False, time.monotonic() - started, output, python_files, reason, tail)

    binary = scip_python_binary()
    if not binary.exists():
        return failed(
            f"scip-python not found at {binary} (run `make setup` or set {SCIP_PYTHON_ENV})"
        )
    if not repo_root.is_dir():
        return failed(f"repository root {repo_root} is not a directory")
    if uris is None:
        uris = manifest_python_uris(repo_root)
    if not uris:
        return failed(f"no Python files under {repo_root}; nothing for scip-python to index")

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".scip-run-", dir=output.parent) as scratch:
        tree = Path(scratch) / "tree"
        python_files = _stage_tree(repo_root, uris, tree)
        if python_files == 0:
            return failed(f"none of the {len(uris)} Python files of {repo_root} could be read")
        # Our config in the tree's root wins over any pyrightconfig.json above it; an empty
        # exclude list drops pyright's defaults, so every staged (manifest) file is indexed.
        (tree / "pyrightconfig.json").write_text(
            json.dumps({"include": ["."], "exclude": []}), encoding="utf-8"
        )
        environment = Path(scratch) / "environment.json"
        environment.write_text(json.dumps(_environment_packages()), encoding="utf-8")
        partial = Path(scratch) / "index.scip"
        command = [
            str(binary),
            "index",
            "--cwd",
            str(tree),
            "--target-only",
            str(tree),
            "--project-name",
            project_name,
            "--project-version",
            project_version,
            "--output",
            str(partial),
            "--environment",
            str(environment),
            "--show-progress-rate-limit",
            "60",
        ]
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        process = subprocess.Popen(
            command,
            cwd=tree,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        try:
            log, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # node spawns helpers; kill the whole session we started, not only the shim.
            os.killpg(process.pid, signal.SIGKILL)
            log, _ = process.communicate()
            return failed(
                f"scip-python timed out after {timeout_s:g}s", python_files, _tail(log or "")
            )
        log = log or ""
        if process.returncode != 0:
            return failed(
                f"scip-python exited with code {process.returncode}", python_files, _tail(log)
            )
        total = _TOTAL_FILES.search(log)
        if total is not None and int(total.group(1)) == 0:
            return failed("scip-python selected no files", python_files, _tail(log))
        if not partial.exists() or partial.stat().st_size == 0:
            return failed("scip-python wrote no index", python_files, _tail(log))
        with atomic_path(output) as target:
            os.replace(partial, target)
    return ScipRunResult(True, time.monotonic() - started, output, python_files, "", _tail(log))
