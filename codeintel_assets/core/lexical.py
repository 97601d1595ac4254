"""The BM25 channel: a ``bm25s`` index over texts keyed by id (in the product: the whole
text of every unit, keyed by unit id; see ``core.units``).

Texts are read with ``core.tokens.tokenize`` (an identifier yields itself and its parts,
English stopwords dropped). The index is persisted as ``bm25s``'s own files plus
``unit_ids.npy`` (row → id), written into one folder replaced atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codeintel_assets.core.checksums import xxh64_text
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import BM25_IDS_FILE as _IDS_FILE
from codeintel_assets.core.schemas import write_by_key
from codeintel_assets.core.tokens import tokenize


@dataclass
class Bm25Index:
    """A BM25 index: ``bm25s`` scores and the id (a unit id) of every row."""

    ids: np.ndarray  # int64, row → id
    model: bm25s.BM25 | None  # None for an empty corpus

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` (id, score) pairs, best first; only texts sharing a token.

        An empty or punctuation-only query, or one with no known token, gives ``[]``;
        ``k`` larger than the corpus returns every matching text.
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
        """Write the index's files into the existing ``folder`` (made atomic by the caller)."""
        np.save(folder / _IDS_FILE, np.asarray(self.ids, dtype=np.int64))
        if self.model is not None:
            self.model.save(str(folder), show_progress=False)


_TOKEN_CACHE = pa.schema([("text_xxh64", pa.string()), ("tokens", pa.list_(pa.string()))])


@dataclass
class TokenCache:
    """The tokens of texts tokenized before, by the texts' content hash, kept between
    builds in one Parquet file (``path``; None: nothing kept).

    Tokens are a function of the text alone, so a cached text gives what ``tokenize``
    gives: an index built through the cache is the one a clean build makes. Reading them
    back is an order of magnitude faster than tokenizing again. ``save`` keeps only the
    texts of this run, so the file never outgrows the repository. A missing or
    unreadable file is an empty cache. With a ``base`` (another stage's cache, read
    only), texts found there are not kept in this one: it holds only its own texts.
    """

    path: Path | None
    base: TokenCache | None = None
    _known: dict[str, list[str]] | None = None
    _used: dict[str, list[str]] = field(default_factory=dict)
    hits: int = 0

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Return each text's tokens (``tokenize``), from the cache (or its base) where it
        has them."""
        known = self._load()
        shared = self.base._load() if self.base is not None else {}
        out = []
        for text in texts:
            key = xxh64_text(text)
            tokens = shared.get(key)
            if tokens is not None:
                self.hits += 1
                out.append(tokens)
                continue
            tokens = known.get(key)
            if tokens is None:
                tokens = tokenize(text)
            else:
                self.hits += 1
            self._used[key] = tokens
            out.append(tokens)
        return out

    def save(self) -> None:
        """Write the tokens of the texts this cache tokenized (atomically, sorted by hash)."""
        if self.path is not None:
            write_by_key(self._used, self.path, _TOKEN_CACHE)

    def _load(self) -> dict[str, list[str]]:
        if self._known is None:
            self._known = {}
            if self.path is not None and self.path.is_file():
                try:
                    table = pq.read_table(self.path)
                except (OSError, pa.ArrowInvalid):
                    table = None
                if table is not None and table.schema.equals(_TOKEN_CACHE):
                    keys = table["text_xxh64"].to_pylist()
                    self._known = dict(zip(keys, table["tokens"].to_pylist(), strict=True))
        return self._known


def build_bm25(ids: np.ndarray, texts: list[str], cache: TokenCache | None = None) -> Bm25Index:
    """Return a BM25 index of ``texts`` keyed by ``ids`` (one id per text), their tokens
    through ``cache`` when given.

    Raises ``CodeintelError`` when ids and texts differ in length.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) != len(texts):
        raise CodeintelError(f"BM25: {len(ids)} ids but {len(texts)} texts")
    if not texts:
        return Bm25Index(ids=ids, model=None)
    model = bm25s.BM25()
    tokens = cache.tokenize(texts) if cache is not None else [tokenize(t) for t in texts]
    model.index(tokens, show_progress=False)
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
