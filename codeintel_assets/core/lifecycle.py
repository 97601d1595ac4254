"""Publishing: versioned copies of the artifacts, an atomic ``current`` pointer, rollback.

``publish_build`` publishes a repository's working build with its catalog, validations
and tool versions; ``publish_version`` is the mechanism underneath: it hard-links (or
copies) the build artifacts into ``versions/<build_version>/``, builds that version's
own catalog, validates it, writes ``manifest.json`` last (a version without it is
incomplete and is redone), and flips the ``current`` symlink with one ``rename``. A
crash at any point leaves the previous ``current`` intact. One publisher per repository
at a time (a lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeintel_assets.core.checksums import write_json_atomic, xxh64_file, xxh64_parts
from codeintel_assets.core.errors import (
    BadInputError,
    CodeintelError,
    NothingPublishedError,
    PublishError,
)
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout
from codeintel_assets.core.stamps import read_stamp

if TYPE_CHECKING:
    from codeintel_assets.core.context import BuildContext

DEFAULT_RETENTION = 5
_BUILD_VERSION = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class PublishOutcome:
    build_version: str
    reused: bool  # the version already existed complete; only the pointer moved
    previous: str | None
    manifest: dict[str, Any]


def artifact_files(layout: ArtifactLayout) -> list[Path]:
    """Return the artifact files of a layout that exist (the catalog excluded)."""
    candidates = [
        layout.repo_manifest,
        layout.manifest_skips,
        layout.scip_index,
        layout.scip_index_json,
        layout.scip_occurrences,
        layout.scip_symbols,
        layout.ast_nodes,
        layout.cst_nodes,
        layout.modules_parquet,
        layout.modules_jsonl,
        layout.symbol_edges,
        layout.symbol_graph_json,
        layout.node_to_chunk,
        layout.units,
        layout.chunk_units,
        layout.faiss_idmap,
        layout.eval_queries,
        layout.eval_pool,
        layout.eval_report,
        layout.eval_plot,
    ]
    candidates += sorted(layout.chunks_dir.glob("*.parquet"))
    candidates += sorted((layout.root / "faiss").glob("*.faiss"))
    candidates += sorted((layout.root / "faiss").glob("*.audit.json"))
    if layout.bm25_dir.exists():
        candidates += sorted(p for p in layout.bm25_dir.rglob("*") if p.is_file())
    # Dot-files are temporary files of unfinished writes (``atomic_path``), never artifacts.
    return [p for p in candidates if p.is_file() and not _hidden(p, layout.root)]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def build_version_of(files: Mapping[str, Path]) -> str:
    """Return the build version of artifact files keyed by layout-relative path (in
    ``artifact_files`` order): a checksum of every path and content."""
    return xxh64_parts(f"{rel}={xxh64_file(path)}" for rel, path in files.items())


@contextlib.contextmanager
def _repo_lock(repo: RepoLayout, what: str, error: type[CodeintelError]) -> Iterator[None]:
    """Hold the repository's ``what`` lock (``flock``: released by the kernel if we die)."""
    repo.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(repo.locks_dir / f"{what}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise error(
                f"another {what} of repository {repo.name!r} is running; try again when it ends"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_lock(repo: RepoLayout) -> contextlib.AbstractContextManager[None]:
    """Hold the repository's publish lock; raise ``PublishError`` if another holds it."""
    return _repo_lock(repo, "publish", PublishError)


def build_lock(repo: RepoLayout) -> contextlib.AbstractContextManager[None]:
    """Hold the repository's build lock (one `indexctl build` at a time); raise
    ``CodeintelError`` if another build holds it."""
    return _repo_lock(repo, "build", CodeintelError)


def stage_version(
    repo: RepoLayout, replace: Mapping[str, Path | None] | None = None
) -> tuple[str, ArtifactLayout, bool]:
    """Link the build artifacts into ``versions/<build_version>/``.

    ``replace`` maps layout-relative paths to files that take the built file's place
    (None: leave the built file out); the build version covers what is staged.
    Returns (build version, its layout, whether a complete, intact copy already existed).
    An incomplete copy (no manifest) left by a crash, or a copy whose files no longer
    match its manifest, is removed and redone.
    """
    build = repo.build
    files = {p.relative_to(build.root).as_posix(): p for p in artifact_files(build)}
    for relative, source in (replace or {}).items():
        if source is None:
            files.pop(relative, None)
        else:
            files[relative] = source
    if not any(p.parent == build.chunks_dir for p in files.values()):
        raise PublishError(f"repository {repo.name!r} has no chunks to publish; build it first")
    version = build_version_of(files)
    target = repo.version(version)
    if target.version_manifest.exists() and not verify_version(target):
        return version, target, True
    if target.root.exists():
        # Incomplete (a crash) or damaged since (its files were changed in place): redo it.
        shutil.rmtree(target.root)
    for relative, source in files.items():
        dest = target.root / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, dest)
        except OSError:
            shutil.copy2(source, dest)
    return version, target, False


def stage_for_publish(
    repo: RepoLayout, replace: Mapping[str, Path | None] | None = None
) -> tuple[str, ArtifactLayout, bool]:
    """Stage the build (see ``stage_version``) as the version ``indexctl publish`` publishes next.

    Records the version in ``staged.json`` once every file is in place, so publishing
    and crash clean-up keep it. Call it holding the publish lock.
    """
    version, layout, reused = stage_version(repo, replace)
    write_json_atomic(
        repo.staged_pointer,
        {"build_version": version, "replaced": sorted(replace or {}), "at": _now()},
    )
    return version, layout, reused


def staged_version_or_none(repo: RepoLayout) -> str | None:
    """Return the version ``stage_for_publish`` left for publishing, or None.

    None too when that version is published already or its folder is gone.
    """
    if not repo.staged_pointer.exists():
        return None
    version = json.loads(repo.staged_pointer.read_text(encoding="utf-8"))["build_version"]
    layout = repo.version(version)
    if not layout.root.is_dir() or layout.version_manifest.exists():
        return None
    return version


def publish_version(
    repo: RepoLayout,
    build_catalog: Callable[[ArtifactLayout], dict[str, Any]],
    validate: Callable[[ArtifactLayout], list[str]],
    extra_manifest: dict[str, Any] | None = None,
    retention: int = DEFAULT_RETENTION,
    fail_after: str | None = None,
    staged: str | None = None,
) -> PublishOutcome:
    """Stage, catalog, validate and publish the build; flip ``current`` atomically.

    ``build_catalog`` returns catalog facts for the manifest (views, DDL, row counts);
    ``validate`` returns failure messages (empty when valid). ``staged`` publishes that
    version left by ``stage_for_publish`` instead of staging the build. ``fail_after``
    names a step after which to raise, for crash tests. Raises ``PublishError`` when
    validation fails, the staged version is gone, or another publish holds the lock;
    ``current`` is then unchanged.
    """
    with publish_lock(repo):
        remove_crash_leftovers(repo)
        previous = current_version_or_none(repo)
        if staged is None:
            version, layout, reused = stage_version(repo)
        elif repo.version(staged).root.is_dir():
            version, layout = staged, repo.version(staged)
            reused = layout.version_manifest.exists()
        else:
            raise PublishError(f"staged version {staged} of {repo.name!r} no longer exists")
        _crash_point(fail_after, "stage")
        if not reused:
            catalog = build_catalog(layout)
            _crash_point(fail_after, "catalog")
            failures = validate(layout)
            if failures:
                shutil.rmtree(layout.root, ignore_errors=True)
                raise PublishError(
                    f"version {version} of {repo.name!r} failed validation: " + "; ".join(failures)
                )
            manifest = _version_manifest(repo, version, layout, catalog, extra_manifest or {})
            write_json_atomic(layout.version_manifest, manifest)
        _crash_point(fail_after, "manifest")
        manifest = read_version_manifest(layout)
        flip_current(repo, version)
        _crash_point(fail_after, "flip")
        if staged is not None:
            repo.staged_pointer.unlink(missing_ok=True)
        prune_versions(repo, retention)
        return PublishOutcome(version, reused, previous, manifest)


def publish_build(ctx: BuildContext, staged: str | None = None) -> PublishOutcome:
    """Stage, catalog, validate and publish the working build of ``ctx``'s repository, or
    its ``staged`` version (the ``published_index`` asset and ``indexctl publish``); return
    the outcome.

    Raises ``PublishError`` as ``publish_version`` does.
    """
    # Imported here: DuckDB, FAISS and Arrow load only when publishing (indexctl's cold start).
    from codeintel_assets.core.catalog import build_catalog
    from codeintel_assets.core.validation import validate_version

    return publish_version(
        ctx.layout,
        # Published catalogs are read by many searches: materialize the hot tables once.
        # The build's catalog counted the rows of the same files already.
        build_catalog=lambda version: build_catalog(
            version, materialize=True, counts_from=ctx.layout.build
        ).to_dict(),
        # The build's checks proved some facts of the same files already (their proofs).
        validate=lambda version: validate_version(version, ctx.layout.proofs_dir),
        extra_manifest=tool_versions(ctx),
        retention=ctx.retention,
        staged=staged,
    )


def tool_versions(ctx: BuildContext) -> dict[str, Any]:
    """Return the versions of the tools and model that made the build (for the manifest)."""
    import duckdb
    import faiss
    import numpy as np
    import pyarrow

    chunk_stamp = read_stamp(ctx.layout, "chunks") or {}
    scip_stamp = read_stamp(ctx.layout, "scip_index") or {}
    audit_path = ctx.layout.build.faiss_audit()
    audit = json.loads(audit_path.read_text(encoding="utf-8")) if audit_path.exists() else {}
    return {
        # What the chunks were really embedded with: search must embed queries the same way.
        "embedder": {
            **chunk_stamp.get("metadata", {}).get("embedder", ctx.embedder.describe()),
            "model_id": chunk_stamp.get("metadata", {}).get("model_id"),
        },
        "faiss": {k: audit.get(k) for k in ("factory", "knobs", "metric", "dim", "ntotal")},
        "scip": {k: scip_stamp.get("metadata", {}).get(k) for k in ("ok", "source", "reason")},
        "tools": {
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__,
            "numpy": np.__version__,
            "scip-python": "0.6.6",
        },
    }


def remove_crash_leftovers(repo: RepoLayout) -> list[Path]:
    """Delete what a killed publish left behind; return the deleted paths.

    That is version folders without a manifest (staging never finished) other than the
    one ``current`` points at and the one staged for publishing (``stage_for_publish``),
    and temporary ``.current.*`` links of an unfinished flip. Call it holding the publish
    lock: a running publish's staging area looks the same.
    """
    current = current_version_or_none(repo)
    staged = staged_version_or_none(repo)
    leftovers = []
    if repo.versions_dir.is_dir():
        leftovers += [
            folder
            for folder in repo.versions_dir.iterdir()
            if folder.is_dir()
            and folder.name not in (current, staged)
            and not (folder / "manifest.json").exists()
        ]
    if repo.repo_dir.is_dir():
        leftovers += [p for p in repo.repo_dir.glob(".current.*") if p.is_symlink()]
    for path in leftovers:
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    return leftovers


def verify_version(layout: ArtifactLayout) -> list[str]:
    """Return the problems of a published version (empty when complete and intact).

    Checks that the manifest exists, every artifact it lists has the recorded size and
    xxh64, and the version's catalog exists (and matches its recorded checksum, when
    the manifest has one).
    """
    if not layout.version_manifest.exists():
        return [f"{layout.root}: no manifest.json (incomplete version)"]
    try:
        manifest = read_version_manifest(layout)
    except BadInputError as exc:
        return [str(exc)]
    problems = []
    catalog_file = manifest.get("catalog_file")
    for entry in [*manifest["artifacts"], *([catalog_file] if catalog_file else [])]:
        path = layout.root / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["bytes"] or xxh64_file(path) != entry["xxh64"]:
            problems.append(f"{entry['path']}: size or checksum differs from the manifest")
    if not layout.catalog.is_file():
        problems.append(f"{layout.catalog.relative_to(layout.root)}: missing")
    return problems


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _crash_point(fail_after: str | None, step: str) -> None:
    if fail_after == step:
        raise RuntimeError(f"injected failure after {step}")


def _version_manifest(
    repo: RepoLayout,
    version: str,
    layout: ArtifactLayout,
    catalog: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    artifacts = []
    for path in artifact_files(layout):
        entry: dict[str, Any] = {
            "path": path.relative_to(layout.root).as_posix(),
            "bytes": path.stat().st_size,
            "xxh64": xxh64_file(path),
        }
        if path.suffix == ".parquet":
            # Imported here: readers of `current` (the CLI, `search --server`) never need it.
            import pyarrow.parquet as pq

            entry["rows"] = pq.ParquetFile(path).metadata.num_rows
        artifacts.append(entry)
    catalog_file = None
    if layout.catalog.is_file():
        # Not an artifact of the build (it is made from them, by this publish), but checked
        # like them: a truncated catalog still opens, and fails only on the first query.
        catalog_file = {
            "path": layout.catalog.relative_to(layout.root).as_posix(),
            "bytes": layout.catalog.stat().st_size,
            "xxh64": xxh64_file(layout.catalog),
        }
    return {
        "repo": repo.name,
        "build_version": version,
        "published_at": datetime.now(UTC).isoformat(),
        "artifacts": artifacts,
        "catalog_file": catalog_file,
        "catalog": catalog,
        **extra,
    }


def flip_current(repo: RepoLayout, version: str) -> None:
    """Point ``current`` at ``versions/<version>`` with one atomic rename; log it.

    Raises ``PublishError`` when ``version`` is not a build-version id or not complete.
    """
    if not is_build_version(version) or not repo.version(version).version_manifest.exists():
        raise PublishError(
            f"version {version} of {repo.name!r} is not complete; cannot point to it"
        )
    pointer = repo.current_pointer
    tmp = pointer.with_name(f".current.{os.getpid()}.{time.monotonic_ns()}")
    os.symlink(Path("versions") / version, tmp)
    os.replace(tmp, pointer)
    history = read_history(repo)
    history.append({"build_version": version, "at": datetime.now(UTC).isoformat()})
    write_json_atomic(repo.publish_history, history[-1000:])


def read_history(repo: RepoLayout) -> list[dict[str, str]]:
    """Return the pointer flips of a repository, oldest first.

    Entries that do not name a build version (a damaged or hand-edited file) are left
    out, so they can never be rolled back to.
    """
    if not repo.publish_history.exists():
        return []
    try:
        history = json.loads(repo.publish_history.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(history, list):
        return []
    return [h for h in history if isinstance(h, dict) and is_build_version(h.get("build_version"))]


def is_build_version(name: object) -> bool:
    """Return whether ``name`` is a build-version id (16 lowercase hex digits, an xxh64)."""
    return isinstance(name, str) and _BUILD_VERSION.fullmatch(name) is not None


def current_version_or_none(repo: RepoLayout) -> str | None:
    """Return the version ``current`` points at, or None before the first publish (or when
    ``current`` does not point at one of this repository's versions)."""
    pointer = repo.current_pointer
    if not pointer.is_symlink():
        return None
    target = Path(os.readlink(pointer))
    # Only `versions/<build_version>` is ours; anything else points outside this repository.
    if target.parent != Path("versions") or not is_build_version(target.name):
        return None
    return target.name


def current_is_intact(repo: RepoLayout) -> bool:
    """Return whether ``current`` points at a complete version whose files match its manifest."""
    version = current_version_or_none(repo)
    return version is not None and not verify_version(repo.version(version))


def current_layout(repo: RepoLayout) -> ArtifactLayout:
    """Return the layout of the published version; raise ``NothingPublishedError`` if none.

    Raises ``BadInputError`` when the version is damaged: its ``manifest.json`` is not
    readable JSON, or a file differs from the manifest's size and checksum (files are
    hashed on every call: xxh64 reads several GB/s).
    """
    version = current_version_or_none(repo)
    if version is None or not repo.version(version).version_manifest.exists():
        raise NothingPublishedError(
            f"nothing is published for repository {repo.name!r}; run `indexctl build {repo.name}`"
        )
    layout = repo.version(version)
    problems = verify_version(layout)
    if problems:
        raise BadInputError(
            f"the published version {version} of {repo.name!r} is damaged ({problems[0]}); "
            f"run `indexctl rollback --repo {repo.name}` or `indexctl build {repo.name}`"
        )
    return layout


def read_version_manifest(layout: ArtifactLayout) -> dict[str, Any]:
    """Return a version's ``manifest.json``.

    Raises ``BadInputError`` naming the file when it is unreadable, not JSON or not an
    object with an ``artifacts`` list.
    """
    path = layout.version_manifest
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(
            f"{path}: not a readable version manifest ({exc}); roll back or publish again"
        ) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        raise BadInputError(
            f"{path}: not a version manifest (no 'artifacts' list); roll back or publish again"
        )
    return manifest


def list_versions(repo: RepoLayout) -> list[dict[str, Any]]:
    """Return complete versions, newest first, with publish time and whether current."""
    current = current_version_or_none(repo)
    rows = []
    if repo.versions_dir.exists():
        for folder in repo.versions_dir.iterdir():
            manifest_path = folder / "manifest.json"
            if folder.is_dir() and manifest_path.exists():
                try:
                    manifest = read_version_manifest(ArtifactLayout(folder))
                except BadInputError:
                    manifest = {}  # listed without details; `publish` redoes it when needed
                rows.append(
                    {
                        "build_version": folder.name,
                        "published_at": manifest.get("published_at"),
                        "current": folder.name == current,
                        "chunks": _view_rows(manifest, "v_chunks"),
                    }
                )
    return sorted(rows, key=lambda r: r["published_at"] or "", reverse=True)


def _view_rows(manifest: dict[str, Any], view: str) -> int | None:
    for status in manifest.get("catalog", {}).get("views", []):
        if status.get("name") == view:
            return status.get("row_count")
    return None


def rollback(repo: RepoLayout, to: str | None = None) -> tuple[str | None, str]:
    """Point ``current`` at version ``to`` or at the one published before it.

    Returns (previous current, new current). Raises ``PublishError`` when there is
    nothing to roll back to, or ``to`` is not a build-version id (a path such as
    ``../other/versions/v`` is refused) or names an unknown or incomplete version.
    """
    if to is not None and not is_build_version(to):
        raise PublishError(
            f"{to!r} is not a build version of {repo.name!r}: give the 16-hex-digit id "
            "shown by `indexctl versions`"
        )
    with publish_lock(repo):
        current = current_version_or_none(repo)
        if to is None:
            earlier = [
                h["build_version"]
                for h in read_history(repo)
                if h["build_version"] != current
                and repo.version(h["build_version"]).version_manifest.exists()
            ]
            if not earlier:
                raise PublishError(
                    f"repository {repo.name!r} has no earlier version to roll back to"
                )
            to = earlier[-1]
        if not repo.version(to).version_manifest.exists():
            raise PublishError(f"version {to!r} of {repo.name!r} does not exist or is incomplete")
        flip_current(repo, to)
        return current, to


def prune_versions(repo: RepoLayout, retention: int = DEFAULT_RETENTION) -> list[str]:
    """Delete versions beyond the newest ``retention``; never current or the one before.

    Returns the deleted versions.
    """
    keep = {current_version_or_none(repo)}
    flips = [h["build_version"] for h in read_history(repo)]
    keep.update(v for v in flips[-2:])
    ordered = [v["build_version"] for v in list_versions(repo)]
    keep.update(ordered[: max(retention, 0)])
    deleted = []
    for version in ordered:
        if version not in keep:
            shutil.rmtree(repo.version(version).root, ignore_errors=True)
            deleted.append(version)
    return deleted
