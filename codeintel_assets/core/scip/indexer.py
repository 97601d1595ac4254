"""Run the pinned scip-python on a repository's manifest and write ``index.scip`` atomically.

scip-python (0.6.6, with its bundled pyright) indexes every ``.py``/``.pyi`` under
``--cwd`` that its own rules select, follows symlinks and honours a
``pyrightconfig.json`` even in a parent folder. Run on the work tree it would index
files the manifest skipped (symlinks leaving the repository, oversized or excluded
files, whatever pyright's config names). So it never sees the work tree: we copy the
manifest's Python files into a private staging tree, with the same relative paths
and nothing else, and index that (``--cwd`` is the staging tree, whose own
``pyrightconfig.json`` names what to index). Document paths stay repository-relative
and every document is a manifest file.

Only some files may be indexed (``targets``, for an incremental update): the whole tree
is still staged, so their imports resolve to the project's other files as in a full
pass, but the config's ``include`` names only the targets, and only their documents are
kept (scip-python also emits documents for the project files they import directly).

Imports of third-party packages resolve against the repository's ``PythonEnvironment``
(``environment.py``): the config names its virtualenv and Python version, and
``--environment`` lists its packages, so neither pyright nor scip-python runs an
interpreter or ``pip`` of their own, and nothing depends on this tool's site-packages.

The index is written in a canonical form (``canonical_index``): documents sorted by
path, external symbols sorted and limited to those some document uses. So a full pass
and an incremental update of the same tree can be compared, and the same tree gives
the same bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from codeintel_assets.core.checksums import atomic_path, xxh64_text
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import PROJECT_ROOT
from codeintel_assets.core.scip.environment import PythonEnvironment, minimal_environment
from codeintel_assets.core.scip.parts import MEMORY_ENV, PART_LINES_ENV
from codeintel_assets.core.scip.proto.scip_pb2 import Index
from codeintel_assets.core.scip.symbol_names import is_local_symbol

SCIP_PYTHON_ENV = "CODEINTEL_SCIP_PYTHON"
DEFAULT_SCIP_PYTHON = PROJECT_ROOT / "tools/scip-python/node_modules/.bin/scip-python"
_STDERR_TAIL_CHARS = 4000
_OUT_OF_HEAP = "JavaScript heap out of memory"
_TOTAL_FILES = re.compile(r"Total Project Files (\d+)")
# scip-python 0.6.6 stops the whole run at an internal error in one file's emit phase
# (e.g. pyright's "Debug Failure. False expression." in getTypeFromWildcardImport on the
# standard library's signal.py when asyncio/unix_events.py is indexed before it).
_FATAL = re.compile(
    r"Experienced Fatal Error While Indexing:.*?currentFilepath: '([^']+)',\s*error: ([^\n]+)",
    re.DOTALL,
)
# Runs of one call at most: each crash drops the file it names and indexes the rest again.
MAX_CRASH_RETRIES = 5


@dataclass(frozen=True)
class ScipRunResult:
    """What one scip-python run did.

    ``ok`` is true only when the index was written to ``output``; on failure ``output``
    is left as it was. ``reason`` says why it failed (empty when ok); ``stderr_tail``
    holds the end of the indexer's combined output; ``python_files`` counts the files
    staged for scip-python, ``documents`` the documents written.
    """

    ok: bool
    seconds: float
    output: Path
    python_files: int
    reason: str = ""
    stderr_tail: str = ""
    documents: int = 0
    # Files left out because scip-python crashed on them: (uri, its error), in crash order.
    crashed: tuple[tuple[str, str], ...] = ()
    # The run failed at node's heap limit (a smaller run of the same files may fit).
    out_of_heap: bool = False


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


@contextlib.contextmanager
def _staging_tree(repo_root: Path) -> Iterator[Path]:
    """Yield an empty folder for the staging tree of ``repo_root``; remove it afterwards.

    scip-python writes the folder into the index (``metadata.project_root``), so its
    path depends only on the user and the repository's path: the same tree gives the
    same index bytes, whatever the data root. It lives in a folder private to the user
    (checked: a predictable name in a shared temp dir), and a lock keeps two builds of
    one repository from sharing it. Raises ``CodeintelError`` when that folder exists
    but is not a private folder of this user.
    """
    base = Path(tempfile.gettempdir()) / f"codeintel-scip-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise CodeintelError(f"{base}: not a private folder of this user; remove it")
    tree = base / xxh64_text(str(repo_root))
    with open(tree.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir()
        try:
            yield tree
        finally:
            shutil.rmtree(tree, ignore_errors=True)


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


def _tail(text: str) -> str:
    return text[-_STDERR_TAIL_CHARS:]


def run_scip_python(
    repo_root: Path,
    output: Path,
    project_name: str,
    project_version: str,
    *,
    uris: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    keep: Collection[str] | None = None,
    environment: PythonEnvironment | None = None,
    timeout_s: float = 1800,
    heap_mib: int | None = None,
) -> ScipRunResult:
    """Index the Python files ``targets`` of ``repo_root`` with scip-python into ``output``.

    ``uris`` are the repository-relative ``.py``/``.pyi`` paths staged (the manifest's);
    None means those of the default manifest of ``repo_root``. ``targets`` (a subset of
    ``uris``) are indexed in the order given (see ``order.py``); None means all of them,
    in scip-python's own order. ``keep`` are the documents written (None: all indexed).
    ``environment`` is what third-party imports resolve against (None: the minimal
    one). ``heap_mib`` is node's heap limit (``--max-old-space-size``; None: node's
    default), so a run that needs more fails saying so. The index is written in
    canonical form to a temp file, then renamed; its external symbols are those any
    indexed file used.

    Never raises for an indexer problem: a missing binary, a repository without
    Python files, a non-zero exit, a timeout or an empty output all return
    ``ok=False`` with a ``reason``. A crash of scip-python on one file (its "Fatal Error
    While Indexing" naming that file) drops that file from ``targets`` and runs again, up
    to ``MAX_CRASH_RETRIES`` times: the result lists it in ``crashed`` with the error, it
    gets no document, and the others are indexed. Raises only for programming errors
    (e.g. an unwritable ``output`` directory surfaces as ``OSError``).
    """
    started = time.monotonic()
    repo_root = repo_root.resolve()
    output = output.resolve()
    environment = environment or minimal_environment()

    crashed: list[tuple[str, str]] = []

    def failed(
        reason: str, python_files: int = 0, tail: str = "", out_of_heap: bool = False
    ) -> ScipRunResult:
        return ScipRunResult(
            False,
            time.monotonic() - started,
            output,
            python_files,
            reason,
            tail,
            0,
            tuple(crashed),
            out_of_heap,
        )

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
    with (
        _staging_tree(repo_root) as tree,
        tempfile.TemporaryDirectory(prefix=".scip-run-", dir=output.parent) as scratch,
    ):
        python_files = _stage_tree(repo_root, uris, tree)
        if python_files == 0:
            return failed(f"none of the {len(uris)} Python files of {repo_root} could be read")
        wanted = None
        if targets is not None:
            wanted = [uri for uri in targets if (tree / uri).is_file()]
            if not wanted:
                return failed("none of the files to index could be read", python_files)
        packages = Path(scratch) / "environment.json"
        packages.write_text(json.dumps(environment.packages()), encoding="utf-8")
        partial = Path(scratch) / "index.scip"
        settings = _pyright_environment(environment, Path(scratch))
        while True:
            code, log = _run_once(
                binary,
                tree,
                wanted,
                partial,
                project_name,
                project_version,
                packages,
                settings,
                heap_mib,
                timeout_s,
            )
            if code is None:
                return failed(f"scip-python timed out after {timeout_s:g}s", python_files, log)
            crash = _crashed_file(log, tree) if code != 0 else None
            indexed = wanted if wanted is not None else [u for u in uris if (tree / u).is_file()]
            if crash is None or crash[0] not in indexed or len(crashed) == MAX_CRASH_RETRIES:
                break
            crashed.append(crash)
            wanted = [uri for uri in indexed if uri != crash[0]]
            if not wanted:
                return failed("scip-python crashed on every file to index", python_files, log)
        if code != 0 and _OUT_OF_HEAP in log:
            return failed(
                f"scip-python ran out of its {heap_mib} MiB heap indexing {len(wanted or uris)}"
                f" files: raise {MEMORY_ENV} or lower {PART_LINES_ENV}",
                python_files,
                _tail(log),
                out_of_heap=True,
            )
        if code != 0:
            return failed(f"scip-python exited with code {code}", python_files, _tail(log))
        total = _TOTAL_FILES.search(log)
        if total is not None and int(total.group(1)) == 0:
            return failed("scip-python selected no files", python_files, _tail(log))
        if not partial.exists() or partial.stat().st_size == 0:
            return failed("scip-python wrote no index", python_files, _tail(log))
        # External symbols are those every indexed file used, also the ones not kept.
        index = canonical_index(Index.FromString(partial.read_bytes()))
        # scip-python also writes the project files the targets import directly.
        written = set(keep if keep is not None else wanted or ())
        if keep is not None or wanted is not None:
            kept = [doc for doc in index.documents if doc.relative_path in written]
            del index.documents[:]
            index.documents.extend(kept)
        # The index describes the repository, not the staging tree (whose path varies).
        index.metadata.project_root = repo_root.as_uri()
        write_index(index, output)
    return ScipRunResult(
        True,
        time.monotonic() - started,
        output,
        python_files,
        "",
        _tail(log),
        len(index.documents),
        tuple(crashed),
    )


def _run_once(
    binary: Path,
    tree: Path,
    wanted: Sequence[str] | None,
    partial: Path,
    project_name: str,
    project_version: str,
    packages: Path,
    pyright_environment: dict[str, str],
    heap_mib: int | None,
    timeout_s: float,
) -> tuple[int | None, str]:
    """Run scip-python once on the staged ``tree``, indexing ``wanted`` (None: all of it)
    into ``partial``; return its exit code (None on a timeout) and its combined output."""
    # Our config in the tree's root wins over any pyrightconfig.json above it; an empty
    # exclude list drops pyright's defaults, so every staged (manifest) file is indexed.
    (tree / "pyrightconfig.json").write_text(
        json.dumps({"include": wanted or ["."], "exclude": [], **pyright_environment}),
        encoding="utf-8",
    )
    partial.unlink(missing_ok=True)
    command = [
        str(binary),
        "index",
        "--cwd",
        str(tree),
        "--project-name",
        project_name,
        "--project-version",
        project_version,
        "--output",
        str(partial),
        "--environment",
        str(packages),
        "--show-progress-rate-limit",
        "60",
    ]
    env = dict(os.environ)
    if heap_mib is not None:
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --max-old-space-size={heap_mib}"
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
        return None, _tail(log or "")
    return process.returncode, log or ""


def _crashed_file(log: str, tree: Path) -> tuple[str, str] | None:
    """Return the repository path of the file scip-python's fatal error names, with the
    error, or None when the output holds no such error about a file of ``tree``."""
    found = _FATAL.search(log)
    if found is None:
        return None
    try:
        uri = Path(found.group(1)).relative_to(tree).as_posix()
    except ValueError:
        return None
    return uri, f"scip-python crashed indexing it: {found.group(2).strip()}"


def _pyright_environment(environment: PythonEnvironment, scratch: Path) -> dict[str, str]:
    """Return the pyright settings naming ``environment``'s virtualenv and Python version.

    The minimal environment is an empty virtualenv made in ``scratch``: with no
    ``venv`` setting pyright would ask the ``python`` on ``PATH`` for its site-packages.
    """
    venv = environment.venv
    if venv is None:
        venv = scratch / "minimal-venv"
        (venv / "lib" / f"python{environment.python_version}" / "site-packages").mkdir(parents=True)
    return {
        "venvPath": str(venv.parent),
        "venv": venv.name,
        "pythonVersion": environment.python_version,
    }


def canonical_index(index: Index) -> Index:
    """Return ``index`` in canonical form: documents sorted by path, external symbols
    sorted by symbol and limited to those a document's occurrences or relationships use.

    scip-python writes documents in its traversal order and external symbols in the
    order it met them, and lists a few it never uses (even ``local N`` ones, whose names
    mean something only inside one document); none of that is information.
    """
    used: set[str] = set()
    for doc in index.documents:
        used.update(occ.symbol for occ in doc.occurrences)
        for info in doc.symbols:
            used.update(rel.symbol for rel in info.relationships)
    canonical = Index()
    canonical.metadata.CopyFrom(index.metadata)
    canonical.documents.extend(sorted(index.documents, key=lambda doc: doc.relative_path))
    canonical.external_symbols.extend(
        sorted(
            (
                info
                for info in index.external_symbols
                if info.symbol in used and not is_local_symbol(info.symbol)
            ),
            key=lambda info: info.symbol,
        )
    )
    return canonical


def write_index(index: Index, output: Path) -> None:
    """Write ``index`` to ``output`` atomically, serialized deterministically."""
    write_index_bytes(index.SerializeToString(deterministic=True), output)


def write_index_bytes(data: bytes, output: Path) -> None:
    """Write a serialized index to ``output`` atomically."""
    with atomic_path(output) as target:
        target.write_bytes(data)
