"""Warm handles on published versions, swapped when ``current`` flips.

A ``VersionHandle`` holds everything one published version needs to answer: its
manifest, a ``CodeIndex`` (FAISS, BM25, catalog reader, embedder) and a read-only
DuckDB connection for structural queries. ``HandleCache`` keeps one handle per
repository and, on every request, compares the version ``current`` points at (one
``readlink``) with the handle's; when they differ it opens the new version and swaps.

Thread safety, explicitly:

* a request reads only the ``current`` pointer; a version is verified (``current_layout``:
  every file against its manifest) once, when it is opened;
* the cache's own state is guarded by one lock; opening a version happens outside it,
  under a per-repository lock, so a slow open never blocks another repository;
* a request holds a reference to the handle it started with (``acquire``), so it
  finishes on that version even if a swap happens meanwhile; a swapped-out handle is
  closed when its last request releases it;
* searches on one handle run at once: ``CodeIndex`` keeps each thread's notes, its
  catalog reader gives each thread its own cursor, and FAISS and BM25 only read;
* structural queries use a fresh DuckDB cursor per call (cursors of one read-only
  connection are safe to use from different threads);
* the embedding model is loaded on first use and shared by every version built with
  the same model; its tokenizer is not safe for concurrent use, so calls go through a lock.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np

from codeintel_assets.core import lifecycle, metrics
from codeintel_assets.core.embedding import Embedder, EmbedderSpec, load_embedder
from codeintel_assets.core.errors import CodeintelError, UnknownRepositoryError
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout, data_root
from codeintel_assets.core.registry import RepoConfig, get_repo, list_repos

T = TypeVar("T")


class LazyEmbedder:
    """An embedder whose model loads on the first ``embed`` or token count.

    ``dim`` is the dimension of the index it serves, so a BM25-only search never loads
    the model. Raises ``CodeintelError`` on load when the model's dimension differs.
    """

    def __init__(self, spec: EmbedderSpec, dim: int) -> None:
        self.spec = spec
        self.dim = dim
        self._model: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _loaded(self) -> Embedder:
        if self._model is None:
            model = load_embedder(self.spec)
            if model.dim != self.dim:
                raise CodeintelError(
                    f"the embedding model {self.spec.model_path or self.spec.kind} has dimension "
                    f"{model.dim} but the index has {self.dim}; rebuild the index with this model"
                )
            self._model = model
        return self._model

    @property
    def max_tokens(self) -> int:
        with self._lock:
            return self._loaded().max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return self._loaded().count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._loaded().embed(texts)


class EmbedderPool:
    """One ``LazyEmbedder`` per (model, dimension), shared by every version that uses it."""

    def __init__(self) -> None:
        self._embedders: dict[tuple[EmbedderSpec, int], LazyEmbedder] = {}
        self._lock = threading.Lock()

    def get(self, spec: EmbedderSpec, dim: int) -> LazyEmbedder:
        """Return the shared embedder of ``spec`` for an index of ``dim`` dimensions."""
        with self._lock:
            return self._embedders.setdefault((spec, dim), LazyEmbedder(spec, dim))


def index_dimension(layout: ArtifactLayout) -> int:
    """Return the vector dimension recorded in a version's FAISS audit sidecar."""
    audit = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
    return int(audit["dim"])


@dataclass
class VersionHandle:
    """One published version of one repository, open and ready to answer."""

    repo: RepoConfig
    layout: ArtifactLayout
    manifest: dict[str, Any]
    index: Any  # core.search.CodeIndex, imported lazily (it pulls FAISS and bm25s)
    opened_at: float = field(default_factory=time.time)
    refs: int = 0
    retired: bool = False
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls, repo: RepoConfig, layout: ArtifactLayout, embedders: EmbedderPool
    ) -> VersionHandle:
        """Open the version at ``layout``. Raises ``CodeintelError`` when it cannot be read."""
        from codeintel_assets.core.search import CodeIndex, recorded_embedder

        manifest = json.loads(layout.version_manifest.read_text(encoding="utf-8"))
        embedder = embedders.get(recorded_embedder(manifest), index_dimension(layout))
        index = CodeIndex(layout, manifest, embedder)
        handle = cls(repo=repo, layout=layout, manifest=manifest, index=index)
        handle._con = duckdb.connect(str(layout.catalog), read_only=True)
        return handle

    @property
    def build_version(self) -> str:
        return self.manifest["build_version"]

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a cursor of the version's read-only catalog connection, for this thread."""
        if self._con is None:
            raise CodeintelError(f"version {self.build_version} of {self.repo.name!r} is closed")
        cursor = self._con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """Return ``compute()`` computed once per handle (e.g. the symbol-name index)."""
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = compute()
            return self._cache[key]

    def close(self) -> None:
        """Release the version's files: catalog connections, indexes."""
        self.index.close()
        if self._con is not None:
            self._con.close()
            self._con = None


class HandleCache:
    """The served repositories and their current handles (see the module docstring)."""

    def __init__(self, repos: Sequence[str] | None = None, root: Path | None = None) -> None:
        self.root = root or data_root()
        names = list(repos) if repos else [r.name for r in list_repos(self.root)]
        self.repos: dict[str, RepoConfig] = {name: get_repo(name, self.root) for name in names}
        self.embedders = EmbedderPool()
        self._handles: dict[str, VersionHandle] = {}
        self._lock = threading.Lock()
        self._open_locks = {name: threading.Lock() for name in self.repos}
        self.swaps = 0

    def repo_layout(self, name: str) -> RepoLayout:
        return RepoLayout(self.root, name)

    def resolve_repo(self, name: str | None) -> str:
        """Return the served repository ``name`` (the only one when None).

        Raises ``UnknownRepositoryError`` for a repository this service does not serve,
        and ``CodeintelError`` when None is ambiguous.
        """
        if name is None:
            if len(self.repos) == 1:
                return next(iter(self.repos))
            raise CodeintelError(
                f"several repositories are served ({', '.join(sorted(self.repos))}); name one "
                "with `repo`"
            )
        if name not in self.repos:
            raise UnknownRepositoryError(
                f"repository {name!r} is not served here (served: {', '.join(sorted(self.repos))})"
            )
        return name

    @contextlib.contextmanager
    def acquire(self, name: str | None) -> Iterator[VersionHandle]:
        """Yield the handle of the version ``current`` points at now, held for the request.

        Raises ``UnknownRepositoryError`` and ``NothingPublishedError``.
        """
        handle = self._take(self.resolve_repo(name))
        try:
            yield handle
        finally:
            self._release(handle)

    def _take(self, name: str) -> VersionHandle:
        repo = self.repo_layout(name)
        # Per request only the pointer is read (one readlink); a version is verified against
        # its manifest (every file hashed) once, when it is opened.
        version = lifecycle.current_version_or_none(repo)
        with self._lock:
            handle = self._handles.get(name)
            if handle is not None and handle.layout.root.name == version:
                handle.refs += 1
                return handle
        with self._open_locks[name]:
            layout = lifecycle.current_layout(repo)
            with self._lock:
                handle = self._handles.get(name)
                if handle is not None and handle.layout.root.name == layout.root.name:
                    handle.refs += 1
                    return handle
            fresh = VersionHandle.open(self.repos[name], layout, self.embedders)
            with self._lock:
                old = self._handles.get(name)
                self._handles[name] = fresh
                fresh.refs += 1
                if old is not None:
                    self.swaps += 1
                    metrics.record_handle_swap(name)
                    old.retired = True
                    if old.refs == 0:
                        old.close()
            return fresh

    def _release(self, handle: VersionHandle) -> None:
        with self._lock:
            handle.refs -= 1
            if handle.retired and handle.refs == 0:
                handle.close()

    def loaded(self) -> dict[str, VersionHandle]:
        """Return the handles open now, by repository (for status and metrics)."""
        with self._lock:
            return dict(self._handles)

    def close(self) -> None:
        """Close every handle (at shutdown)."""
        with self._lock:
            for handle in self._handles.values():
                handle.close()
            self._handles.clear()
