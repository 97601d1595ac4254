"""Incremental SCIP: re-index only the files a change affects and merge their documents into
the previous index, so that the result equals a full pass of the same tree.

Beside ``index.scip`` the build keeps ``scip_state.json``: the content hash of every
Python file the index describes, the order they were indexed in (``order.py``) and what
each file imports (the next order re-reads only changed files), the environment's
fingerprint, the indexer's identity and the index's own checksum.

What a file's document holds depends on other files in three ways, and each is followed:

* **What it uses.** A file is re-indexed when it changed or was added; when a file it
  uses a symbol of was deleted; when it names the module of an added file (an
  unresolved ``import pkg.new`` already names it); and when a re-indexed file's
  **interface** changed — the information of the symbols it defines (names, signatures
  and inferred types as pyright shows them, docstrings, relationships) or the set of
  symbols it uses (a re-export that disappears) — and it uses one of that file's
  symbols. The staging tree always holds the whole current tree, so a re-indexed file
  sees every change at once.
* **Who used a symbol first.** scip-python names a symbol at its first use in a run: a
  file gets no ``SymbolInformation`` for a symbol an earlier file of the run used, and
  an external symbol's hover text comes from its first use. Every run indexes in the
  one processing order, with the earlier files that use a target's symbols as context
  (indexed, not kept); a kept file whose "used earlier" status changes is re-indexed;
  an external symbol's text is taken from the run that indexed its first user, else
  kept when its first user is the same as before, else that user is indexed as context.
* **The environment.** Another ``python_env`` (or its packages or Python version),
  another scip-python, project name or root, no previous index, or an index that does
  not match its state: a **full pass**.

Also a full pass: more than ``FULL_FRACTION`` of the files affected, rounds still
finding work after ``MAX_ROUNDS``, or an incremental run that fails. Not covered: a use
no symbol records — an attribute reached through a module object (``import pkg`` then
``pkg.sub.name``) when ``pkg/sub.py`` is added, or an import of a name a file does not
define yet — which the nightly full pass (``check_scip_matches_full_pass``) would report.

A full pass of a tree bigger than the memory budget's part (``parts.py``) is indexed in
parts, each an update adding the next slice of the processing order to the documents so
far (``_index_in_parts``), so node's memory follows the part. An incremental round bigger
than the budget fails at node's heap limit, and the full pass that follows is in parts.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pyarrow.parquet as pq

from codeintel_assets.core.checksums import write_json_atomic, xxh64_file
from codeintel_assets.core.manifest import language_of
from codeintel_assets.core.scip.environment import PythonEnvironment, resolve_python_env
from codeintel_assets.core.scip.indexer import (
    ScipRunResult,
    run_scip_python,
    scip_python_binary,
    write_index_bytes,
)
from codeintel_assets.core.scip.order import (
    NAMES_FORMAT,
    imported_names,
    module_names,
    processing_order,
)
from codeintel_assets.core.scip.parts import (
    ScipBudget,
    budget_from_env,
    line_counts,
    shadowed_stdlib_modules,
    split_in_parts,
)
from codeintel_assets.core.scip.proto.scip_pb2 import Document, Index, SymbolInformation, SymbolRole
from codeintel_assets.core.scip.protobuf_reader import read_scip_protobuf
from codeintel_assets.core.scip.symbol_names import is_local_symbol

if TYPE_CHECKING:
    from codeintel_assets.core.context import BuildContext

# Symbols carry this version, not the commit: a commit would rename every symbol of every
# document, so no document could be kept (SCIP's placeholder for an empty value).
PROJECT_VERSION = "."
FULL_FRACTION = 0.5
MAX_ROUNDS = 3
STATE_FORMAT = 1
_EXAMPLES = 20
# Looked up once: each ``SymbolRole.Definition`` goes through the generated enum's
# ``__getattr__`` (~0.6 µs, millions of times in an update of a large tree).
_DEFINITION = SymbolRole.Definition
_DOCUMENTS_FIELD = Index.DESCRIPTOR.fields_by_name["documents"].number


@dataclass(frozen=True)
class ScipUpdate:
    """What one update of ``index.scip`` did.

    ``mode`` is ``full`` or ``incremental`` and ``reason`` says why; ``reindexed`` are the
    files whose documents were made afresh (all of them for a full pass); ``changed``,
    ``added`` and ``deleted`` compare the files with the stored state; ``rounds`` counts
    the incremental runs; ``parts`` the parts a full pass was indexed in (``parts.py``)
    and ``runs`` the scip-python runs; ``parts_split`` the parts that ran out of node's
    heap and were indexed as two halves; ``order_files_parsed`` the files read for the
    processing order (those whose bytes changed since the stored state). ``ok`` is false
    when a scip-python run failed (then ``failure`` says why and the index is left as it
    was). ``crashed`` maps the files scip-python crashed on (no document; see
    ``run_scip_python``) to the error, this update's and the earlier ones' that still hold.
    """

    ok: bool
    mode: str
    reason: str
    documents: int = 0
    reindexed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    rounds: int = 0
    seconds: float = 0.0
    failure: str = ""
    stderr_tail: str = ""
    parts: int = 0
    runs: int = 0
    crashed: Mapping[str, str] = field(default_factory=dict)
    parts_split: int = 0
    order_files_parsed: int = 0

    def facts(self) -> dict[str, object]:
        """Return the update as stage metadata (counts, and the first paths of each list)."""
        return {
            "mode": self.mode,
            "mode_reason": self.reason,
            "documents": self.documents,
            "documents_reindexed": len(self.reindexed),
            "reindexed_examples": self.reindexed[:_EXAMPLES],
            "files_changed": len(self.changed),
            "files_added": len(self.added),
            "files_deleted": len(self.deleted),
            "incremental_rounds": self.rounds,
            "full_pass_parts": self.parts,
            "parts_split_at_heap_limit": self.parts_split,
            "scip_python_runs": self.runs,
            "files_scip_python_crashed_on": len(self.crashed),
            "scip_python_crashes": dict(sorted(self.crashed.items())[:_EXAMPLES]),
            "order_files_parsed": self.order_files_parsed,
        }


@dataclass(frozen=True)
class ScipJob:
    """One repository's indexing job: where the index goes and what it is made from.

    ``files`` maps every Python file (repository-relative) to its content hash;
    ``state`` is the ``scip_state.json`` beside ``output``; ``budget`` bounds every
    scip-python run's memory (a full pass runs in parts of ``budget.lines_per_part()``).
    """

    repo_root: Path
    output: Path
    state: Path
    project_name: str
    project_version: str
    files: Mapping[str, str]
    environment: PythonEnvironment
    timeout_s: float = 1800.0
    budget: ScipBudget = ScipBudget()

    def identity(self) -> dict[str, object]:
        """Return what a stored index must share with this job to be updated in place."""
        return {
            "format": STATE_FORMAT,
            "indexer": indexer_version(),
            "environment": self.environment.fingerprint(),
            "project": [self.project_name, self.project_version, str(self.repo_root.resolve())],
        }

    def run(
        self, output: Path, indexed: Sequence[str], keep: Collection[str] | None = None
    ) -> ScipRunResult:
        """Run scip-python on the whole staged tree, indexing ``indexed`` in that order and
        writing the documents of ``keep`` (all indexed when None) to ``output``."""
        return run_scip_python(
            self.repo_root,
            output,
            self.project_name,
            self.project_version,
            uris=sorted(self.files),
            targets=indexed,
            keep=keep,
            environment=self.environment,
            timeout_s=self.timeout_s,
            heap_mib=self.budget.memory_mib,
        )


def scip_job(ctx: BuildContext, output: Path | None = None) -> ScipJob:
    """Return the indexing job of a build: its manifest's Python files (and the empty ones
    it skipped: an empty ``__init__.py`` still makes a package) with their hashes, and the
    repository's environment. ``output`` defaults to the build's ``index.scip``.

    Raises ``BadInputError`` when the registry's ``python_env`` is not a virtualenv or
    the memory budget's settings are wrong (``parts.budget_from_env``).
    """
    build = ctx.layout.build
    manifest = pq.read_table(build.repo_manifest, columns=["uri", "lang", "xxh64"]).to_pylist()
    skips = pq.read_table(build.manifest_skips, columns=["uri", "reason"]).to_pylist()
    files = {row["uri"]: row["xxh64"] for row in manifest if row["lang"] == "python"}
    files.update(
        (row["uri"], "empty")
        for row in skips
        if row["reason"] == "empty" and language_of(row["uri"]) == "python"
    )
    output = output or build.scip_index
    return ScipJob(
        ctx.repo.root,
        output,
        output.parent / build.scip_state.name,
        ctx.repo.name,
        PROJECT_VERSION,
        files,
        resolve_python_env(ctx.repo.root, ctx.repo.python_env),
        ctx.scip_timeout_s,
        budget_from_env(),
    )


def indexer_version() -> str:
    """Return the pinned scip-python's version (its ``package.json``), or its path."""
    package = scip_python_binary().resolve().parent / "package.json"
    try:
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return str(scip_python_binary())


def update_scip_index(job: ScipJob, force_full: bool = False) -> ScipUpdate:
    """Bring ``job.output`` up to date with ``job.files``, incrementally when the stored
    state allows it (see the module docstring), else by a full pass.

    Returns the ``ScipUpdate``; the index and its state are written only on success.
    Never raises for an indexer problem (see ``run_scip_python``).
    """
    started = time.monotonic()
    job.output.parent.mkdir(parents=True, exist_ok=True)
    imports = _Imports(*imported_names(job.repo_root, job.files, _stored_import_names(job)))
    order = processing_order(job.repo_root, sorted(job.files), imports.names)
    previous_bytes: list[bytes] = []
    previous, why_full = _previous_index(job, force_full, previous_bytes)
    if previous is None:
        return _full(job, order, imports, why_full, started)
    state = json.loads(job.state.read_text(encoding="utf-8"))
    old_files = state["files"]
    changed = sorted(u for u in job.files if u in old_files and old_files[u] != job.files[u])
    added = sorted(u for u in job.files if u not in old_files)
    deleted = sorted(u for u in old_files if u not in job.files)
    update = _Update(job, order, previous, state["order"], deleted, previous_bytes)
    update.crashed = {
        uri: why
        for uri, why in state.get("crashed", {}).items()
        if job.files.get(uri) == old_files.get(uri)
    }
    pending = set(changed) | set(added)
    pending |= update.users(_defined(update.old_docs[u] for u in deleted if u in update.old_docs))
    pending |= update.importers(added)
    context: set[str] = set()
    while pending or context:
        affected = len(update.reindexed | pending)
        if affected > FULL_FRACTION * len(job.files):
            why = f"{affected} of {len(job.files)} files affected"
            return _full(job, order, imports, why, started, changed, added, deleted)
        if update.rounds == MAX_ROUNDS:
            why = f"still finding files to re-index after {MAX_ROUNDS} incremental rounds"
            return _full(job, order, imports, why, started, changed, added, deleted)
        if not update.run(pending, context):
            why = "an incremental run failed"
            return _full(job, order, imports, why, started, changed, added, deleted)
        pending, context = update.next_round()
    merged = update.merged()
    _write(job, merged.data, order, imports, update.crashed)
    return ScipUpdate(
        True,
        "incremental",
        f"{len(changed)} changed, {len(added)} added, {len(deleted)} deleted Python files",
        merged.documents,
        sorted(update.reindexed),
        changed,
        added,
        deleted,
        update.rounds,
        time.monotonic() - started,
        runs=update.rounds,
        crashed=dict(update.crashed),
        order_files_parsed=imports.parsed,
    )


class _Update:
    """The documents of an incremental update, round by round (see the module docstring)."""

    def __init__(
        self,
        job: ScipJob,
        order: list[str],
        previous: Index,
        old_order: list[str],
        deleted: list[str],
        previous_bytes: Sequence[bytes] = (),
    ) -> None:
        self.job = job
        self.rank = {uri: i for i, uri in enumerate(order)}
        self.old_rank = {uri: i for i, uri in enumerate(old_order)}
        self.old_docs = {doc.relative_path: doc for doc in previous.documents}
        # uri -> the serialized bytes of its stored document (as read: see ``merged``).
        self.old_bytes = {
            doc.relative_path: data
            for doc, data in zip(previous.documents, previous_bytes, strict=False)
        }
        self.docs = {u: d for u, d in self.old_docs.items() if u in job.files and u not in deleted}
        self.old_externals = {info.symbol: info for info in previous.external_symbols}
        self.metadata = previous.metadata
        # id -> (document, the global symbols it uses / defines); holding the document
        # keeps its id.
        self._uses: dict[int, tuple[Document, set[str]]] = {}
        self._defines: dict[int, tuple[Document, set[str]]] = {}
        self.old_first = _first_users(self.old_docs, self.old_rank, self.used)
        self.reindexed: set[str] = set()
        self.rounds = 0
        # uri -> the externals of the last run that indexed it (as target or context).
        self.externals_by_run: dict[str, dict[str, SymbolInformation]] = {}
        # The last run: its targets' documents before it, and every file it indexed.
        self.last_targets: dict[str, Document | None] = {}
        self.last_indexed: set[str] = set()
        self.failure: ScipRunResult | None = None
        # uri -> why: files scip-python crashed on (they have no document).
        self.crashed: dict[str, str] = {}

    def used(self, doc: Document) -> set[str]:
        """Return the global symbols ``doc`` uses (computed once per document)."""
        if id(doc) not in self._uses:
            self._symbols_of(doc)
        return self._uses[id(doc)][1]

    def defines(self, doc: Document) -> set[str]:
        """Return the global symbols ``doc`` defines (computed once per document)."""
        if id(doc) not in self._defines:
            self._symbols_of(doc)
        return self._defines[id(doc)][1]

    def _symbols_of(self, doc: Document) -> None:
        """Note the global symbols ``doc`` uses and defines (``_used``, ``_defined``) in
        one pass over its occurrences (reading an occurrence builds a Python object)."""
        used: set[str] = set()
        defined = {info.symbol for info in doc.symbols}
        for occ in doc.occurrences:
            symbol = occ.symbol
            used.add(symbol)
            if occ.symbol_roles & _DEFINITION:
                defined.add(symbol)
        self._uses[id(doc)] = (doc, {s for s in used if not is_local_symbol(s)})
        self._defines[id(doc)] = (doc, {s for s in defined if not is_local_symbol(s)})

    def users(self, symbols: set[str], exclude: set[str] = frozenset()) -> set[str]:
        """Return the current documents (other than ``exclude``) using one of ``symbols``."""
        if not symbols:
            return set()
        return {
            uri
            for uri, doc in self.docs.items()
            if uri not in exclude and not symbols.isdisjoint(self.used(doc))
        }

    def importers(self, uris: Iterable[str]) -> set[str]:
        """Return the current documents naming the module of one of ``uris`` (a suffix of
        the symbol: an unresolved import names the module under a guessed package)."""
        ends = tuple(
            f" `{name}`/__init__:" if "." in name else f" {name}/__init__:"
            for uri in uris
            for name in module_names(uri)
        )
        if not ends:
            return set()
        return {
            uri
            for uri, doc in self.docs.items()
            if any(symbol.endswith(ends) for symbol in self.used(doc))
        }

    def run(self, targets: set[str], extra_context: set[str]) -> bool:
        """Index ``targets`` with their context; merge their documents. Return False when
        scip-python failed."""
        self.rounds += 1
        context = set(extra_context) | self._earlier_users(targets)
        indexed = sorted((targets | context) & set(self.rank), key=self.rank.__getitem__)
        with tempfile.TemporaryDirectory(prefix=".scip-part-", dir=self.job.output.parent) as tmp:
            partial = Path(tmp) / "index.scip"
            result = self.job.run(partial, indexed, keep=targets)
            if not result.ok:
                self.failure = result
                return False
            fresh = read_scip_protobuf(partial)
        if not self.metadata.ByteSize():
            # Indexing in parts starts from no index: take the tool's and the tree's metadata.
            self.metadata.CopyFrom(fresh.metadata)
        new_docs = {doc.relative_path: doc for doc in fresh.documents}
        for uri in targets:
            self.crashed.pop(uri, None)
        # A context file it crashed on keeps its stored document (only targets' are written).
        self.crashed.update((uri, why) for uri, why in result.crashed if uri in targets)
        externals = {info.symbol: info for info in fresh.external_symbols}
        self.last_targets = {}
        for uri in targets:
            self.last_targets[uri] = self.docs.pop(uri, None)
            if uri in new_docs:
                self.docs[uri] = new_docs[uri]
        for uri in indexed:
            self.externals_by_run[uri] = externals
        self.last_indexed = set(indexed)
        self.reindexed |= targets
        return True

    def _earlier_users(self, targets: set[str]) -> set[str]:
        """Return the kept documents before a target (in order) that use one of its symbols:
        in a full pass they come first, so they must in the run too."""
        context = set()
        for target in targets:
            doc = self.docs.get(target)
            defined = self.defines(doc) if doc is not None else set()
            for uri in self.users(defined, exclude=targets):
                if self.rank[uri] < self.rank.get(target, -1):
                    context.add(uri)
        return context

    def next_round(self) -> tuple[set[str], set[str]]:
        """Return the files to re-index next, and the files to index as context only."""
        moved: set[str] = set()
        for uri, old in self.last_targets.items():
            moved |= _moved(old, self.docs.get(uri))
        pending = self.users(moved, exclude=self.reindexed)
        first = _first_users(self.docs, self.rank, self.used)
        for uri, doc in self.docs.items():
            if uri in self.reindexed or uri in pending:
                continue
            # Kept as it was indexed; re-index it if "another file used it first" flipped.
            if any(
                _used_before(self.old_first, symbol, self.old_rank[uri])
                != _used_before(first, symbol, self.rank[uri])
                for symbol in self.defines(doc)
            ):
                pending.add(uri)
        # A target defining a symbol that an earlier file outside its run uses.
        for uri in self.last_targets:
            if uri in self.docs and self._earlier_users({uri}) - self.last_indexed:
                pending.add(uri)
        defined = set().union(*map(self.defines, self.docs.values()))
        context = set()
        for symbol, (user, _) in first.items():
            external = symbol not in defined or symbol in self.old_externals
            if not external or user in self.externals_by_run or user in pending:
                continue
            if self.old_first.get(symbol, ("", 0))[0] != user:
                context.add(user)
        return pending, context

    def merged(self) -> _Merged:
        """Return the merged index, serialized in canonical form (``canonical_index``):
        the current documents by path, and each used external symbol's information from
        the run that indexed its first user, else the stored one, by symbol.

        The bytes are those of the ``Index`` holding them (``SerializeToString``): its
        fields in number order, each document a length-delimited field 2. A kept stored
        document is written as the bytes it was read from (this code wrote them, and
        serializing a parsed message again gives them back), so it is not copied or
        serialized again. Every symbol of ``first`` is global and used by an occurrence,
        so ``canonical_index`` would keep all of these external symbols.
        """
        first = _first_users(self.docs, self.rank, self.used)
        head = Index()
        head.metadata.CopyFrom(self.metadata)
        tail = Index()
        externals = []
        # scip-python lists some of the project's own symbols as external too.
        for symbol, (user, _) in first.items():
            run = self.externals_by_run.get(user, {})
            info = run.get(symbol) or self.old_externals.get(symbol)
            if info is not None:
                externals.append(info)
        tail.external_symbols.extend(sorted(externals, key=lambda info: info.symbol))
        parts = [head.SerializeToString(deterministic=True)]
        for uri in sorted(self.docs):
            doc = self.docs[uri]
            stored = self.old_bytes.get(uri)
            if stored is None or doc is not self.old_docs.get(uri):
                stored = doc.SerializeToString(deterministic=True)
            parts.append(_length_delimited(_DOCUMENTS_FIELD, stored))
        parts.append(tail.SerializeToString(deterministic=True))
        return _Merged(b"".join(parts), len(self.docs))


class _Merged(NamedTuple):
    """A serialized index and how many documents it holds."""

    data: bytes
    documents: int


def _length_delimited(number: int, payload: bytes) -> bytes:
    """Return ``payload`` as field ``number`` of a message (tag, length, bytes)."""
    prefix = bytearray([number << 3 | 2])
    length = len(payload)
    while length >= 0x80:
        prefix.append(length & 0x7F | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + payload


def read_written_index(output: Path, state: Path) -> Index:
    """Read ``output`` (an ``index.scip``) as ``read_scip_protobuf`` does. When ``state``
    (its ``scip_state.json``) records the file's checksum, ``_write`` wrote both from
    records that were checked, so they are not checked again; any other file is checked
    record by record (``BadInputError`` for bad input)."""
    try:
        stored = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = None
    recorded = stored.get("index_xxh64") if isinstance(stored, dict) else None
    trusted = isinstance(recorded, str) and recorded == xxh64_file(output)
    return read_scip_protobuf(output, check=not trusted)


def _previous_index(
    job: ScipJob, force_full: bool, document_bytes: list[bytes]
) -> tuple[Index | None, str]:
    """Return the stored index when it may be updated in place, else None and why not.
    Its documents' serialized bytes go into ``document_bytes``.

    The stored index's records are not checked again: its checksum is the one ``_write``
    recorded, so it holds the bytes this code wrote from records it had checked."""
    if force_full:
        return None, "full pass requested"
    if not job.state.is_file() or not job.output.is_file():
        return None, "no previous index"
    try:
        state = json.loads(job.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "the stored state is not readable"
    if state.get("index_xxh64") != xxh64_file(job.output):
        return None, "the stored index does not match its state"
    identity = job.identity()
    for key, what in (
        ("format", "the state format"),
        ("indexer", "scip-python"),
        ("environment", "the Python environment"),
        ("project", "the project (name, version or root)"),
    ):
        if state.get("identity", {}).get(key) != identity[key]:
            return None, f"{what} changed"
    return read_scip_protobuf(job.output, check=False, document_bytes=document_bytes), ""


def _full(
    job: ScipJob,
    order: list[str],
    imports: _Imports,
    reason: str,
    started: float,
    changed: list[str] | None = None,
    added: list[str] | None = None,
    deleted: list[str] | None = None,
) -> ScipUpdate:
    """Index every file, in parts of the budget's size (``parts.py``) when the tree is
    bigger, else in one run; write the index and its state when every run succeeds."""
    lines = line_counts(job.repo_root, order)
    parts = split_in_parts(order, lines, job.budget.lines_per_part())
    shadowed = shadowed_stdlib_modules(order)
    if shadowed and len(parts) > 1:
        reason = f"{reason}; in one run, not parts: the tree shadows {', '.join(shadowed[:5])}"
        parts = [order]
    crashed: dict[str, str] = {}
    index, runs, failed, indexed_parts, splits = (
        _index_in_parts(job, order, parts, lines, crashed)
        if len(parts) > 1
        else _Parts(None, 0, None, 1, 0)
    )
    if index is None and failed is None:
        # One part, or parts that did not settle (see _index_in_parts): one run of the tree.
        with tempfile.TemporaryDirectory(prefix=".scip-full-", dir=job.output.parent) as scratch:
            partial = Path(scratch) / "index.scip"
            run = job.run(partial, order)
            runs += 1
            one = read_scip_protobuf(partial) if run.ok else None
            if one is not None:
                index = _Merged(one.SerializeToString(deterministic=True), len(one.documents))
            failed = None if run.ok else run
            crashed = dict(run.crashed)
    if index is not None:
        _write(job, index.data, order, imports, crashed)
    return ScipUpdate(
        index is not None,
        "full",
        reason,
        index.documents if index is not None else 0,
        sorted(job.files) if index is not None else [],
        changed or [],
        added or [],
        deleted or [],
        0,
        time.monotonic() - started,
        failed.reason if failed is not None else "",
        failed.stderr_tail if failed is not None else "",
        max(indexed_parts, len(parts)),
        runs,
        crashed,
        splits,
        imports.parsed,
    )


class _Parts(NamedTuple):
    """A full pass in parts: its index (None: not made), the scip-python runs, the run
    that failed (None: none did), the parts started, and those split at the heap limit."""

    index: _Merged | None
    runs: int
    failed: ScipRunResult | None
    parts: int
    splits: int


def _index_in_parts(
    job: ScipJob,
    order: list[str],
    parts: list[list[str]],
    lines: Mapping[str, int],
    crashed: dict[str, str],
) -> _Parts:
    """Return the index of the whole tree made part by part (see ``_Parts``). The index is
    None when a run failed, or when a part still had files to re-index after
    ``MAX_ROUNDS`` runs (then no run failed).

    Each part is an update of the documents so far that adds the part's files, so what
    makes an incremental update equal a full pass makes the parts equal one run: the tree
    is staged whole (imports, re-exports and base classes in other parts resolve), the
    runs follow the one processing order, an external symbol's information comes from the
    run of its first user, and a part's file defining a symbol that a file of an earlier
    part already used is indexed again with that file as context (then scip-python gives
    it no ``SymbolInformation`` for it, as in one run). The files scip-python crashed on
    go into ``crashed``.

    A part whose first run fails at node's heap limit (late parts import more of the tree
    than the memory model counts) is indexed as its two halves, and every later part is
    cut to the size of the bigger half: consecutive parts of the order, as a smaller part
    size would have made, so the result is the same.
    """
    update = _Update(job, order, Index(), [], [])
    queue = deque(parts)
    splits = started = 0
    while queue:
        part = queue.popleft()
        started += 1
        pending, context = set(part), set()
        for round_ in range(MAX_ROUNDS):
            if not update.run(pending, context):
                failure, update.failure = update.failure, None
                if round_ > 0 or failure is None or not failure.out_of_heap or len(part) == 1:
                    return _Parts(None, update.rounds, failure, started, splits)
                halves = [part[: len(part) // 2], part[len(part) // 2 :]]
                limit = max(sum(lines[uri] for uri in half) for half in halves)
                rest = [uri for later in queue for uri in later]
                queue = deque(halves + split_in_parts(rest, lines, limit))
                splits += 1
                break
            pending, context = update.next_round()
            if not pending and not context:
                break
        else:
            return _Parts(None, update.rounds, None, started, splits)
    crashed.update(update.crashed)
    return _Parts(update.merged(), update.rounds, None, started, splits)


def _write(
    job: ScipJob,
    data: bytes,
    order: list[str],
    imports: _Imports,
    crashed: Mapping[str, str],
) -> None:
    """Write the serialized index ``data`` and then its state (the state names the
    index's checksum, the files scip-python crashed on, which stay without a document
    until they change, and what each file imports, for the next update's order)."""
    write_index_bytes(data, job.output)
    write_json_atomic(
        job.state,
        {
            "identity": job.identity(),
            "index_xxh64": xxh64_file(job.output),
            "files": dict(sorted(job.files.items())),
            "order": order,
            "crashed": dict(sorted(crashed.items())),
            "imports_format": NAMES_FORMAT,
            "imports": {uri: [job.files[uri], imports.names[uri]] for uri in sorted(imports.names)},
        },
    )


class _Imports(NamedTuple):
    """What each file imports (``order.imported_names``) and how many files were parsed."""

    names: dict[str, list[str]]
    parsed: int


def _stored_import_names(job: ScipJob) -> Mapping[str, Sequence[object]]:
    """Return the import names the stored state holds (uri -> [hash, names]); none when
    there is no readable state or its names are of another format. They depend on the
    files' bytes alone, so they serve whatever else changed."""
    try:
        state = json.loads(job.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("imports_format") != NAMES_FORMAT:
        return {}
    stored = state.get("imports")
    return stored if isinstance(stored, dict) else {}


def _first_users(
    docs: Mapping[str, Document],
    rank: Mapping[str, int],
    used: Callable[[Document], set[str]],
) -> dict[str, tuple[str, int]]:
    """Return, for every global symbol the documents use, its first user and that user's rank."""
    first: dict[str, tuple[str, int]] = {}
    # Latest first, so that the earliest user of a symbol is the last to set it.
    for uri in sorted(docs, key=rank.__getitem__, reverse=True):
        first.update(dict.fromkeys(used(docs[uri]), (uri, rank[uri])))
    return first


def _used_before(first: Mapping[str, tuple[str, int]], symbol: str, position: int) -> bool:
    """Return whether a file ranked before ``position`` uses ``symbol``."""
    return symbol in first and first[symbol][1] < position


def _defined(docs: Iterable[Document]) -> set[str]:
    """Return the global symbols the documents define."""
    symbols: set[str] = set()
    for doc in docs:
        symbols.update(info.symbol for info in doc.symbols)
        symbols.update(occ.symbol for occ in doc.occurrences if occ.symbol_roles & _DEFINITION)
    return {symbol for symbol in symbols if not is_local_symbol(symbol)}


def _used(doc: Document) -> set[str]:
    return {
        symbol for symbol in {occ.symbol for occ in doc.occurrences} if not is_local_symbol(symbol)
    }


def _moved(old: Document | None, new: Document | None) -> set[str]:
    """Return the symbols of a re-indexed file whose users must be re-indexed: those whose
    information changed, appeared or disappeared; and when the set of symbols the file
    uses changed (a re-export may be gone), its module symbol, which importers name."""
    before, after = _information(old), _information(new)
    moved = {s for s in before.keys() | after.keys() if before.get(s) != after.get(s)}
    if _used_elsewhere(old, before) != _used_elsewhere(new, after):
        moved |= {s for s in before.keys() | after.keys() if s.endswith("/__init__:")}
    return moved


def _used_elsewhere(doc: Document | None, defined: Mapping[str, bytes]) -> set[str]:
    """Return the global symbols ``doc`` uses that it does not define."""
    return _used(doc) - defined.keys() if doc is not None else set()


def _information(doc: Document | None) -> dict[str, bytes]:
    """Return each global symbol ``doc`` defines with its serialized information (empty
    bytes for a definition without any)."""
    if doc is None:
        return {}
    information = dict.fromkeys(_defined([doc]), b"")
    for info in doc.symbols:
        if not is_local_symbol(info.symbol):
            information[info.symbol] = info.SerializeToString(deterministic=True)
    return information
