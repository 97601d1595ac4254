"""The lexical channels of hybrid search, composed: BM25 over chunk text and the
definition index, kept together in one folder (``bm25/``).

``core.lexical`` and ``core.definitions`` know nothing of each other; this module owns
what joins them — which channels hybrid search fuses beside dense, and how they are
saved and loaded as one artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from codeintel_assets.core.checksums import atomic_folder
from codeintel_assets.core.definitions import DefinitionIndex, load_definitions
from codeintel_assets.core.layout import DEFINITIONS_FILE
from codeintel_assets.core.lexical import Bm25Index, load_bm25


@dataclass
class LexicalChannels:
    """BM25 and, when built with one, the definition channel."""

    bm25: Bm25Index
    definitions: DefinitionIndex | None = None

    def __len__(self) -> int:
        return len(self.bm25)

    def channels(self, query: str, k: int) -> dict[str, list[tuple[int, float]]]:
        """Return the lexical channels hybrid search fuses, each top ``k`` (chunk id, score)
        best first: ``bm25`` and, when present, ``definition`` (chunks defining what the
        query names)."""
        out = {"bm25": self.bm25.search(query, k)}
        if self.definitions is not None:
            out["definition"] = self.definitions.search(query, k)
        return out

    def save(self, folder: Path) -> None:
        """Write both indexes to ``folder``, replacing it atomically."""
        with atomic_folder(Path(folder)) as tmp:
            self.bm25.save(tmp)
            if self.definitions is not None:
                pq.write_table(self.definitions.table, tmp / DEFINITIONS_FILE)


def load_lexical_channels(folder: Path) -> LexicalChannels:
    """Return the channels saved in ``folder`` (no definition channel when none was saved).

    Raises ``CodeintelError`` when either index is missing, incomplete or unreadable.
    """
    folder = Path(folder)
    definitions_path = folder / DEFINITIONS_FILE
    definitions = load_definitions(definitions_path) if definitions_path.exists() else None
    return LexicalChannels(load_bm25(folder), definitions)
