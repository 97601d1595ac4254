"""The lexical channel: code-aware tokens and a BM25 index over chunks (``bm25s``).

Tokens are lower-cased words of the text; an identifier yields itself and its parts
(``parse_URL2json`` → ``parse_url2json parse url 2 json``; ``HTTPServer`` →
``httpserver http server``), so a query can name a whole identifier or the words in
it. Common English words are dropped: they carry no signal in code search and would
otherwise match every docstring.

The index is persisted as ``bm25s``'s own files plus ``chunk_ids.npy`` (row → chunk
id) and, when built with one, the definition index (``definitions.parquet``, see
``core.definitions``), all written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bm25s
import numpy as np
import pyarrow.parquet as pq
from bm25s.stopwords import STOPWORDS_EN

from codeintel_assets.core.checksums import make_readable
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import DEFINITIONS_FILE

if TYPE_CHECKING:
    from codeintel_assets.core.definitions import DefinitionIndex

# Unicode word runs: letters, digits and underscores (identifiers and prose words alike).
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(STOPWORDS_EN)
_IDS_FILE = "chunk_ids.npy"


def identifier_parts(word: str) -> list[str]:
    """Return the lower-cased sub-words of one identifier (snake_case, camelCase, digits).

    ``HTTPServer`` → ``[http, server]``; ``parse_URL2json`` → ``[parse, url, 2, json]``;
    ``__init__`` → ``[init]``. Works on any script: case changes are read with
    ``str.isupper``/``str.islower``, not ASCII ranges.
    """
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(_case_parts(piece))
    return [p.lower() for p in parts if p]


def _case_parts(piece: str) -> list[str]:
    """Split one underscore-free piece on digit runs and case changes."""
    out: list[str] = []
    current = ""
    for i, ch in enumerate(piece):
        if not current:
            current = ch
            continue
        prev = current[-1]
        nxt = piece[i + 1] if i + 1 < len(piece) else ""
        boundary = (
            ch.isdigit() != prev.isdigit()
            or (prev.islower() and ch.isupper())
            # The last capital of an acronym starts the next word: HTTPServer → HTTP|Server.
            or (prev.isupper() and ch.isupper() and nxt.islower())
        )
        if boundary:
            out.append(current)
            current = ch
        else:
            current += ch
    if current:
        out.append(current)
    return out


def tokenize(text: str) -> list[str]:
    """Return the lexical tokens of ``text``: each word lower-cased plus its identifier parts.

    English stopwords are dropped; an empty or punctuation-only text gives ``[]``.
    """
    tokens: list[str] = []
    for word in _WORD.findall(text):
        whole = word.lower()
        parts = identifier_parts(word)
        if whole not in _STOPWORDS and (len(parts) != 1 or parts[0] != whole):
            tokens.append(whole)
        tokens.extend(p for p in parts if p not in _STOPWORDS)
    return tokens


@dataclass
class Bm25Index:
    """A BM25 index over chunks: ``bm25s`` scores and the chunk id of every row."""

    ids: np.ndarray  # int64, row → chunk id
    model: bm25s.BM25 | None  # None for an empty corpus
    definitions: DefinitionIndex | None = None  # the definition channel, kept alongside

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

    def channels(self, query: str, k: int) -> dict[str, list[tuple[int, float]]]:
        """Return the lexical channels hybrid search fuses: ``bm25`` and, when this index
        carries one, ``definition`` (chunks defining what the query names), each top ``k``."""
        out = {"bm25": self.search(query, k)}
        if self.definitions is not None:
            out["definition"] = self.definitions.search(query, k)
        return out

    def save(self, folder: Path) -> None:
        """Write the index to ``folder`` atomically (a sibling temp folder, then rename)."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        make_readable(tmp)
        try:
            np.save(tmp / _IDS_FILE, np.asarray(self.ids, dtype=np.int64))
            if self.model is not None:
                self.model.save(str(tmp), show_progress=False)
            if self.definitions is not None:
                pq.write_table(self.definitions.table, tmp / DEFINITIONS_FILE)
            old = None
            if folder.exists():
                # A folder cannot be replaced by rename in one step: move the old one aside first.
                old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
                os.replace(folder, old)
            os.replace(tmp, folder)
            if old is not None:
                shutil.rmtree(old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def build_bm25(
    ids: np.ndarray, texts: list[str], definitions: DefinitionIndex | None = None
) -> Bm25Index:
    """Return a BM25 index of ``texts`` (one per chunk) keyed by chunk ``ids``, carrying
    ``definitions`` when given.

    Raises ``CodeintelError`` when ids and texts differ in length.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) != len(texts):
        raise CodeintelError(f"BM25: {len(ids)} ids but {len(texts)} texts")
    if not texts:
        return Bm25Index(ids=ids, model=None, definitions=definitions)
    model = bm25s.BM25()
    model.index([tokenize(t) for t in texts], show_progress=False)
    return Bm25Index(ids=ids, model=model, definitions=definitions)


def load_bm25(folder: Path) -> Bm25Index:
    """Return the BM25 index saved in ``folder``.

    Raises ``CodeintelError`` when the folder is missing or incomplete.
    """
    folder = Path(folder)
    ids_path = folder / _IDS_FILE
    if not ids_path.exists():
        raise CodeintelError(f"BM25 index {folder} is missing or incomplete (no {_IDS_FILE})")
    ids = np.load(ids_path)
    # Imported here: the definition channel is built on this module's identifier parts.
    from codeintel_assets.core.definitions import load_definitions

    definitions_path = folder / DEFINITIONS_FILE
    definitions = load_definitions(definitions_path) if definitions_path.exists() else None
    if len(ids) == 0:
        return Bm25Index(ids=ids, model=None, definitions=definitions)
    try:
        model = bm25s.BM25.load(str(folder), show_progress=False)
    except (OSError, ValueError) as exc:
        raise CodeintelError(f"BM25 index {folder} cannot be read: {exc}") from exc
    if model.scores["num_docs"] != len(ids):
        raise CodeintelError(
            f"BM25 index {folder} has {model.scores['num_docs']} documents but {len(ids)} ids"
        )
    return Bm25Index(ids=ids, model=model, definitions=definitions)
