"""Run the pinned scip-python on a repository and write ``index.scip`` atomically.

How scip-python chooses files (0.6.6, read from its bundled pyright): it runs in
``--cwd`` (we pass the repository root) and, unless a ``pyrightconfig.json`` or a
``[tool.pyright]`` section says otherwise, includes every ``.py``/``.pyi`` under it and
excludes ``**/node_modules``, ``**/__pycache__``, ``**/.*`` (so ``.venv``, ``.git``) and
any directory that looks like a virtualenv (``pyvenv.cfg``, ``bin/activate``). A
``pyrightconfig.json`` in a *parent* directory is also honoured by pyright and can
redirect it elsewhere, so we always pass ``--target-only <repo>``: files outside the
repository are never indexed and document paths stay relative to the repository root.

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
from dataclasses import dataclass
from pathlib import Path

from codeintel_assets.core.checksums import atomic_path
from codeintel_assets.core.layout import PROJECT_ROOT

SCIP_PYTHON_ENV = "CODEINTEL_SCIP_PYTHON"
DEFAULT_SCIP_PYTHON = PROJECT_ROOT / "tools/scip-python/node_modules/.bin/scip-python"
_STDERR_TAIL_CHARS = 4000
_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})
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


def count_python_files(repo_root: Path) -> int:
    """Count the ``.py``/``.pyi`` files scip-python would consider under ``repo_root``.

    Mirrors pyright's default exclusions: hidden directories, ``node_modules``,
    ``__pycache__`` and virtualenvs.
    """
    count = 0
    for dirpath, dirnames, filenames in os.walk(repo_root):
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and not _is_virtualenv(Path(dirpath) / d)
        ]
        count += sum(1 for name in filenames if name.endswith((".py", ".pyi")))
    return count


def _is_virtualenv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").exists() or (directory / "bin" / "activate").exists()


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
    timeout_s: float = 1800,
) -> ScipRunResult:
    """Index ``repo_root`` with scip-python into ``output`` (temp file, then rename).

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
    python_files = count_python_files(repo_root)
    if python_files == 0:
        return failed(f"no Python files under {repo_root}; nothing for scip-python to index")

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".scip-run-", dir=output.parent) as scratch:
        environment = Path(scratch) / "environment.json"
        environment.write_text(json.dumps(_environment_packages()), encoding="utf-8")
        partial = Path(scratch) / "index.scip"
        command = [
            str(binary),
            "index",
            "--cwd",
            str(repo_root),
            "--target-only",
            str(repo_root),
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
            cwd=repo_root,
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
            return failed(
                "scip-python selected no files (a pyrightconfig.json or [tool.pyright] "
                "include/exclude setting leaves nothing under the repository)",
                python_files,
                _tail(log),
            )
        if not partial.exists() or partial.stat().st_size == 0:
            return failed("scip-python wrote no index", python_files, _tail(log))
        with atomic_path(output) as target:
            os.replace(partial, target)
    return ScipRunResult(True, time.monotonic() - started, output, python_files, "", _tail(log))
