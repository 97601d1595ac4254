"""The BM25 channel: a ``bm25s`` index over chunk texts, keyed by chunk id.

Texts are read with ``core.tokens.tokenize`` (an identifier yields itself and its parts,
English stopwords dropped). The index is persisted as ``bm25s``'s own files plus
``chunk_ids.npy`` (row → chunk id); ``core.channels`` saves it, beside the definition
index, into one folder replaced atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.tokens import tokenize

_IDS_FILE = "chunk_ids.npy"


@dataclass
class Bm25Index:
    """A BM25 index over chunks: ``bm25s`` scores and the chunk id of every row."""

    ids: np.ndarray  # int64, row → chunk id
    model: bm25s.BM25 | None  # None for an empty corpus

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` (chunk id, score) pairs, best first; only chunks sharing a token.

        An empty or punctuation-only query, or one with no known token, gives ``[]``;
        ``k`` larger than the corpus returns every matching chunk.
        """
        if self.model is None or k < 1:
            return []
        token_ids = self.model.get_tokens_ids(tokenize(query))
        if not token_ids:
            return []
        scores = self.model.get_scores_from_ids(token_ids)
        matching = np.flatnonzero(scores > 0)
        if len(matching) > k:
            matching = matching[np.argpartition(-scores[matching], k - 1)[:k]]
        # Best score first; ties broken by row so results are deterministic.
        order = np.lexsort((matching, -scores[matching]))
        rows = matching[order]
        return [(int(self.ids[r]), float(scores[r])) for r in rows]

    def save(self, folder: Path) -> None:
        """Write the index's files into the existing ``folder`` (made atomic by the caller,
        ``core.channels``)."""
        np.save(folder / _IDS_FILE, np.asarray(self.ids, dtype=np.int64))
        if self.model is not None:
            self.model.save(str(folder), show_progress=False)


def build_bm25(ids: np.ndarray, texts: list[str]) -> Bm25Index:
    """Return a BM25 index of ``texts`` (one per chunk) keyed by chunk ``ids``.

    Raises ``CodeintelError`` when ids and texts differ in length.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) != len(texts):
        raise CodeintelError(f"BM25: {len(ids)} ids but {len(texts)} texts")
    if not texts:
        return Bm25Index(ids=ids, model=None)
    model = bm25s.BM25()
    model.index([tokenize(t) for t in texts], show_progress=False)
    return Bm25Index(ids=ids, model=model)


def load_bm25(folder: Path) -> Bm25Index:
    """Return the BM25 index saved in ``folder``.

    Raises ``CodeintelError`` when the folder is missing or incomplete.
    """
    folder = Path(folder)
    ids_path = folder / _IDS_FILE
    if not ids_path.exists():
        raise CodeintelError(f"BM25 index {folder} is missing or incomplete (no {_IDS_FILE})")
    ids = np.load(ids_path)
    if len(ids) == 0:
        return Bm25Index(ids=ids, model=None)
    try:
        model = bm25s.BM25.load(str(folder), show_progress=False)
    except (OSError, ValueError) as exc:
        raise CodeintelError(f"BM25 index {folder} cannot be read: {exc}") from exc
    if model.scores["num_docs"] != len(ids):
        raise CodeintelError(
            f"BM25 index {folder} has {model.scores['num_docs']} documents but {len(ids)} ids"
        )
    return Bm25Index(ids=ids, model=model)
