"""scip-python's memory budget: the heap limit its node gets, and the parts a full pass is
indexed in so that node's peak follows the part, not the repository.

scip-python (pyright on node) holds the parse trees, bindings and types of every file it
indexes and of the files their imports lead to. One run over a whole tree peaks at about
``NODE_BASE_MIB + NODE_MIB_PER_KLINE`` per thousand lines (measured on the standard
library: 1,014 MiB resident for 101,223 lines in one run, 373–502 MiB for runs of ~20k
of those lines with the whole tree staged), past node's default heap (~4 GiB) near 500k
lines. So a full pass indexes consecutive slices of the processing order (``order.py``)
of at most ``lines_per_part()`` lines, each a separate scip-python run with the whole
tree staged (imports resolve as in one run), and merges their documents as an
incremental update does (``incremental.py``).

The budget is ``$CODEINTEL_SCIP_MEMORY_MIB`` (default ``DEFAULT_MEMORY_MIB``): node's
``--max-old-space-size`` (so a part bigger than its budget fails with a clear reason,
not at node's default) and, through the measured model, the part size. An operator may
set the part size directly (``$CODEINTEL_SCIP_PART_LINES``), e.g. after measuring their
own code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codeintel_assets.core.errors import BadInputError

MEMORY_ENV = "CODEINTEL_SCIP_MEMORY_MIB"
PART_LINES_ENV = "CODEINTEL_SCIP_PART_LINES"
DEFAULT_MEMORY_MIB = 2048
MIN_MEMORY_MIB = 512
# The measured model of node's peak (rounded up): a base, then per thousand lines indexed.
NODE_BASE_MIB = 400
NODE_MIB_PER_KLINE = 8


@dataclass(frozen=True)
class ScipBudget:
    """scip-python's memory budget in MiB, and an explicit part size in lines (None: the
    one the budget allows)."""

    memory_mib: int = DEFAULT_MEMORY_MIB
    part_lines: int | None = None

    def lines_per_part(self) -> int:
        """Return the most lines one scip-python run may index."""
        if self.part_lines is not None:
            return self.part_lines
        return (self.memory_mib - NODE_BASE_MIB) * 1000 // NODE_MIB_PER_KLINE

    def facts(self) -> dict[str, int]:
        """Return the budget as stage metadata."""
        return {"scip_memory_mib": self.memory_mib, "scip_part_lines": self.lines_per_part()}


def budget_from_env(environ: Mapping[str, str] = os.environ) -> ScipBudget:
    """Return the budget ``$CODEINTEL_SCIP_MEMORY_MIB`` and ``$CODEINTEL_SCIP_PART_LINES`` set.

    Raises ``BadInputError`` for a value that is not a whole number, a budget under
    ``MIN_MEMORY_MIB`` (node's start and the standard library's stubs need most of it),
    or a part size under one line.
    """
    memory = _whole_number(environ, MEMORY_ENV, DEFAULT_MEMORY_MIB)
    if memory < MIN_MEMORY_MIB:
        raise BadInputError(
            f"{MEMORY_ENV}={memory}: scip-python needs at least {MIN_MEMORY_MIB} MiB"
        )
    part_lines = _whole_number(environ, PART_LINES_ENV, None)
    if part_lines is not None and part_lines < 1:
        raise BadInputError(f"{PART_LINES_ENV}={part_lines}: a part has at least one line")
    return ScipBudget(memory, part_lines)


def _whole_number(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInputError(f"{name}={value!r}: not a whole number") from None


def line_counts(repo_root: Path, uris: Sequence[str]) -> dict[str, int]:
    """Return each file's line count (0 for a file that cannot be read: it is not staged)."""
    counts = {}
    for uri in uris:
        try:
            counts[uri] = (repo_root / uri).read_bytes().count(b"\n") + 1
        except OSError:
            counts[uri] = 0
    return counts


def split_in_parts(order: Sequence[str], lines: Mapping[str, int], limit: int) -> list[list[str]]:
    """Return ``order`` cut into consecutive parts of at most ``limit`` lines (a bigger file
    is a part of its own)."""
    parts: list[list[str]] = []
    current: list[str] = []
    size = 0
    for uri in order:
        if current and size + lines[uri] > limit:
            parts.append(current)
            current, size = [], 0
        current.append(uri)
        size += lines[uri]
    if current:
        parts.append(current)
    return parts


def shadowed_stdlib_modules(uris: Sequence[str]) -> list[str]:
    """Return the standard-library module names the tree's top-level modules shadow.

    pyright resolves such a name to the tree's file or to typeshed's stub depending on
    whether that file is among a run's files, so parts would name
    other symbols than one run: a tree that shadows one is indexed in one run.
    """
    tops = {uri.split("/", 1)[0].removesuffix(".pyi").removesuffix(".py") for uri in uris}
    return sorted(tops & sys.stdlib_module_names)
