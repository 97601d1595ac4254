"""Searching a published index: whole definitions (units), ranked dense, lexical or hybrid.

Search ranks *units* (``core.units``: functions, methods, classes... and module blocks),
not the chunks they are embedded in: every channel scores units (``core.channels``:
dense from the unit's chunk vectors, BM25 over the unit's whole text, the definition
names), hybrid fuses them by reciprocal rank fusion, and a unit appears once. A nested
unit keeps its own rank: a method hit returns the method, not its whole class.

``CodeIndex.open(repo)`` reads the version ``current`` points at — FAISS index, BM25
index, units, catalog and the embedding model recorded in its manifest — so a search
never sees a half-published build. Filters (globs, languages, the kind of file) apply
to every channel's candidates before the final cut (over-fetch, filter, widen if
needed). Each result carries the unit's span, kind and name, the lines that matched
(its best chunk), an excerpt bounded by the response's ``max_tokens``
(``core.excerpts``), the best chunk's symbols and module and, for ``explain``, each
channel's rank and score.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss

from codeintel_assets.core import faiss_store, lifecycle
from codeintel_assets.core.catalog import HYDRATION_COLUMNS, CatalogReader, ChunkFilter
from codeintel_assets.core.channels import (
    Ranked,
    UnitChannels,
    load_unit_channels,
    rank_units,
    unit_channels,
)
from codeintel_assets.core.embedding import (
    TORCH,
    Embedder,
    EmbedderSpec,
    load_embedder,
    set_inference_threads,
    text_token_limit,
)
from codeintel_assets.core.errors import CodeintelError, EmptyQueryError
from codeintel_assets.core.excerpts import excerpt, share_budget
from codeintel_assets.core.fusion import SEARCH_MODES, channel_ranks
from codeintel_assets.core.layout import ArtifactLayout, RepoLayout, data_root
from codeintel_assets.core.registry import get_repo
from codeintel_assets.core.units import SYNTAX_UNIT_KINDS, load_units

MODES = SEARCH_MODES
# What kind of file a result may come from; documentation and data files are left out
# of the default (they crowd code out of code questions: measured on the external
# benchmark, README "What is searched").
KINDS = ("code", "docs", "all")
DOC_LANGS = frozenset({"markdown", "rst", "text"})
DATA_LANGS = frozenset({"json", "yaml", "toml", "ini"})
DEFAULT_MAX_TOKENS = 4000
# Candidates fetched per channel: at least this many, or k times OVERFETCH.
MIN_CANDIDATES = 100
OVERFETCH = 4
UNBOUNDED = 1 << 62  # the excerpt budget when max_tokens is None
QUERY_THREADS_ENV = "CODEINTEL_QUERY_THREADS"
# Set by use_query_threads: FAISS's OpenMP thread count is per calling thread, so every
# thread that searches sets it (torch's is process-wide).
_query_threads: int | None = None


@dataclass(frozen=True)
class SearchResult:
    """One ranked unit. ``start_line``/``end_line`` are the unit's lines; the match is
    ``match_start_line``/``match_end_line`` (its best chunk, ``chunk_id``)."""

    chunk_id: int
    uri: str
    start_line: int
    end_line: int
    lang: str
    score: float
    rank: int
    unit_id: int
    kind: str
    name: str | None
    qualified_name: str | None
    match_start_line: int
    match_end_line: int
    excerpt: str
    truncated: bool  # the excerpt leaves lines of the unit out
    preview: str
    symbols: list[str] = field(default_factory=list)
    module_id: str | None = None
    channels: dict[str, dict[str, float]] = field(default_factory=dict)  # {channel: rank, score}

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "uri": self.uri,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "lang": self.lang,
            "score": self.score,
            "rank": self.rank,
            "unit_id": self.unit_id,
            "kind": self.kind,
            "name": self.name,
            "qualified_name": self.qualified_name,
            "match_start_line": self.match_start_line,
            "match_end_line": self.match_end_line,
            "excerpt": self.excerpt,
            "truncated": self.truncated,
            "module_id": self.module_id,
            "preview": self.preview,
            "symbols": self.symbols,
            "channels": self.channels,
        }


def recorded_embedder(manifest: dict[str, Any]) -> EmbedderSpec:
    """Return the embedder a published version was built with (queries must use the same)."""
    recorded = manifest.get("embedder", {})
    return EmbedderSpec(
        kind=recorded.get("kind", "sentence-transformers"),
        model_path=recorded.get("model_path"),
        dim=recorded.get("dim", 64),
        # Builds that predate the record of a backend were all run by torch.
        backend=recorded.get("backend", TORCH),
    )


def kind_of_lang(lang: str | None) -> str:
    """Return ``docs`` for documentation, ``data`` for data files, else ``code``."""
    if lang in DOC_LANGS:
        return "docs"
    return "data" if lang in DATA_LANGS else "code"


@dataclass(frozen=True)
class _Scope:
    """Which files a search's results may come from."""

    filters: ChunkFilter | None
    kind: str
    module: str | None


class CodeIndex:
    """A published version of one repository, ready to search."""

    def __init__(self, layout: ArtifactLayout, manifest: dict[str, Any], embedder: Embedder):
        self.layout = layout
        self.manifest = manifest
        self.embedder = embedder
        audit = json.loads(layout.faiss_audit().read_text(encoding="utf-8"))
        self.index = faiss_store.read_index(layout.faiss_index(), audit.get("knobs", ""))
        if self.index.d != embedder.dim:
            raise CodeintelError(
                f"index {layout.faiss_index()} has dimension {self.index.d} but the embedding "
                f"model has {embedder.dim}; rebuild the index with this model"
            )
        self.units = load_units(layout)
        self.channels: UnitChannels | None = (
            load_unit_channels(layout.bm25_dir, self.units) if layout.bm25_ids.exists() else None
        )
        self.catalog = CatalogReader(layout.catalog)
        self._last = threading.local()  # each thread's last search, see ``notes``

    @classmethod
    def open(
        cls, repo: str | None = None, root: Path | None = None, embedder: Embedder | None = None
    ) -> CodeIndex:
        """Open the published version of ``repo`` (the default repository when None).

        Raises ``UnknownRepositoryError`` or ``NothingPublishedError``.
        """
        config = get_repo(repo, root)
        layout = lifecycle.current_layout(RepoLayout(root or data_root(), config.name))
        manifest = json.loads(layout.version_manifest.read_text(encoding="utf-8"))
        return cls(layout, manifest, embedder or load_embedder(recorded_embedder(manifest)))

    @property
    def build_version(self) -> str:
        return self.manifest["build_version"]

    @property
    def notes(self) -> list[str]:
        """What the last search of the calling thread had to adjust (e.g. truncation):
        per thread, so that a server's threads can search one index at once."""
        return getattr(self._last, "notes", [])

    def search(
        self,
        query: str,
        k: int = 10,
        filters: ChunkFilter | None = None,
        mode: str = "hybrid",
        kind: str = "code",
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        module: str | None = None,
    ) -> list[SearchResult]:
        """Return the ``k`` best units for ``query``, best first, their excerpts together
        within ``max_tokens`` (None: whole units). ``filters``, ``kind`` and ``module`` (a
        ``module_id``: the files whose longest-prefix module it is) select the files
        results may come from.

        Raises ``EmptyQueryError`` for an empty query and ``CodeintelError`` for a bad
        ``k``, ``mode``, ``kind`` or ``max_tokens``.
        """
        query = query.strip() if query else ""
        if not query:
            raise EmptyQueryError("the query is empty; give some words or code to search for")
        if k < 1:
            raise CodeintelError(f"k must be at least 1 (got {k})")
        if mode not in SEARCH_MODES:
            choices = ", ".join(SEARCH_MODES)
            raise CodeintelError(f"unknown search mode {mode!r}; use one of {choices}")
        if kind not in KINDS:
            raise CodeintelError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        if max_tokens is not None and max_tokens < 1:
            raise CodeintelError(f"max_tokens must be at least 1 (got {max_tokens})")
        self._last.notes = []
        if mode != "dense" and self.channels is None:
            self._last.notes.append("this version has no BM25 index: searching dense only")
            mode = "dense"
        total = self.index.ntotal
        fetch = max(MIN_CANDIDATES, k * OVERFETCH)
        vector = self._embed(query) if mode != "bm25" else None
        while True:
            scope = _Scope(filters, kind, module)
            channels, best = self._candidates(query, vector, mode, fetch, scope)
            fused = rank_units(channels, mode, self.units)
            if len(fused) >= k or fetch >= max(total, len(self.units)):
                break
            fetch = min(max(total, len(self.units)), fetch * 4)
        return self._results(fused[:k], channels, best, max_tokens)

    def _embed(self, query: str):
        limit = text_token_limit(self.embedder)
        tokens = self.embedder.count_tokens([query])[0]
        if tokens > limit:
            self._last.notes.append(
                f"the query has {tokens} tokens; the model reads the first {limit}, the rest is "
                "ignored by dense search (BM25 still sees all of it)"
            )
        return self.embedder.embed([query])

    def _candidates(
        self,
        query: str,
        vector,
        mode: str,
        fetch: int,
        scope: _Scope,
    ) -> tuple[dict[str, Ranked], dict[int, int]]:
        """Return each channel's (unit id, score) candidates, filtered, best first, and
        the best dense chunk of each unit."""
        hits = None
        if mode in ("dense", "hybrid"):
            if _query_threads is not None:
                faiss.omp_set_num_threads(_query_threads)
            found = faiss_store.search(self.index, vector, fetch)
            hits = [
                (int(i), float(s))
                for i, s in zip(found.ids[0], found.scores[0], strict=True)
                if i != -1
            ]
        channels = self.channels or UnitChannels(self.units, None, None)  # dense only
        ranked, best = unit_channels(channels, query, mode, hits, fetch)
        allowed = self._allowed({u for found in ranked.values() for u, _ in found}, scope)
        return {
            name: [(u, s) for u, s in hits if u in allowed] for name, hits in ranked.items()
        }, best

    def _allowed(self, units: set[int], scope: _Scope) -> set[int]:
        """Return the ``units`` inside ``scope`` (decided per file, on one chunk of each)."""
        if scope.kind != "all":
            units = {u for u in units if kind_of_lang(self.units.lang(u)) == scope.kind}
        if not units or (scope.filters is None and scope.module is None):
            return units
        by_chunk = {self.units.file_chunk[self.units.uri(u)]: self.units.uri(u) for u in units}
        chunks = list(by_chunk)
        if scope.filters is not None:
            chunks = self.catalog.filter_ids(chunks, scope.filters)
        if scope.module is not None:
            modules = self.catalog.uri_modules()
            chunks = [
                c for c in chunks if modules.get(by_chunk[c], (None, None))[0] == scope.module
            ]
        kept_uris = {by_chunk[c] for c in chunks}
        return {u for u in units if self.units.uri(u) in kept_uris}

    def _results(
        self,
        ranked: Ranked,
        channels: dict[str, Ranked],
        best: dict[int, int],
        max_tokens: int | None,
    ) -> list[SearchResult]:
        positions = {
            name: {
                unit: (rank, score)
                for (unit, rank), (_, score) in zip(channel_ranks(hits), hits, strict=True)
            }
            for name, hits in channels.items()
        }
        units = [self.units.row(u) for u, _ in ranked]
        chunk_ids = [best.get(u) or self.units.best_chunk(u) for u, _ in ranked]
        spans = [(row["uri"], row["start_line"], row["end_line"]) for row in units]
        covering = self.catalog.span_chunk_ids(spans)
        # One catalog query for the results' chunks and the chunks that hold their lines.
        chunks = {
            int(c["id"]): c
            for c in self.catalog.hydrate(
                list(dict.fromkeys([*chunk_ids, *covering])),
                columns=(*HYDRATION_COLUMNS, "symbols", "content"),
            )
        }
        modules = self.catalog.uri_modules()
        texts = self.catalog.span_lines(spans, [chunks[c] for c in covering if c in chunks])
        remaining = max_tokens
        cut = 0
        results = []
        for index, ((unit_id, score), row, chunk_id) in enumerate(
            zip(ranked, units, chunk_ids, strict=True)
        ):
            chunk = chunks[chunk_id]
            # A unit of a file without a syntax tree is its chunk (not the chunk's whole lines).
            own = row["kind"] not in SYNTAX_UNIT_KINDS
            lines = chunk["content"].split("\n") if own else texts[index]
            match = (int(chunk["start_line"]), int(chunk["end_line"]))
            if remaining is None:
                text = excerpt(lines, row["start_line"], match, UNBOUNDED)
            else:
                text = excerpt(
                    lines, row["start_line"], match, share_budget(len(ranked), remaining, index)
                )
                remaining -= text.tokens
            cut += text.truncated
            results.append(
                SearchResult(
                    chunk_id=chunk_id,
                    uri=row["uri"],
                    start_line=row["start_line"],
                    end_line=row["end_line"],
                    lang=row["lang"],
                    score=score,
                    rank=index + 1,
                    unit_id=unit_id,
                    kind=row["kind"],
                    name=row["name"],
                    qualified_name=row["qualified_name"],
                    match_start_line=match[0],
                    match_end_line=match[1],
                    excerpt=text.text,
                    truncated=text.truncated,
                    preview=chunk["preview"],
                    symbols=list(chunk.get("symbols") or []),
                    module_id=modules.get(row["uri"], (None, None))[0],
                    channels={
                        name: {"rank": hit[0], "score": hit[1]}
                        for name, found in positions.items()
                        if (hit := found.get(unit_id)) is not None
                    },
                )
            )
        if cut:
            self._last.notes.append(
                f"{cut} of {len(results)} excerpts were cut to fit max_tokens={max_tokens} "
                "(signature and matched lines kept); read a result's uri and lines for the rest"
            )
        return results

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> CodeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def use_query_threads(threads: int | None = None) -> int:
    """Give FAISS, torch and the exported embedding backends (ONNX Runtime, OpenVINO)
    ``threads`` threads per operation (default: ``$CODEINTEL_QUERY_THREADS``
    or 1) in a process that answers queries; return the number set.

    One query is a tiny matrix product: splitting it over cores costs more in hand-offs
    than it saves, and on a busy 2-core machine a two-thread product waits for both cores
    (a query embedding took 118 ms with 2 threads and 14 ms with 1 under load). Concurrent
    requests are the parallelism of a server. Builds keep every core.
    """
    global _query_threads
    if threads is None:
        text = os.environ.get(QUERY_THREADS_ENV) or "1"
        threads = int(text) if text.strip().isdigit() else 0
        if threads < 1:
            raise CodeintelError(f"{QUERY_THREADS_ENV} must be a whole number ≥ 1 (got {text!r})")
    _query_threads = threads
    faiss.omp_set_num_threads(threads)
    set_inference_threads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:  # read by torch when the model loads
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads
