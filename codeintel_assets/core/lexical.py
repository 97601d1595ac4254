"""The BM25 channel: a ``bm25s`` index over texts keyed by id (in the product: the whole
text of every unit, keyed by unit id; see ``core.units``).

Texts are read with ``core.tokens.tokenize`` (an identifier yields itself and its parts,
English stopwords dropped). The index is persisted as ``bm25s``'s own files plus
``unit_ids.npy`` (row → id), written into one folder replaced atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from codeintel_assets.core.checksums import atomic_path, xxh64_text
from codeintel_assets.core.errors import CodeintelError
from codeintel_assets.core.layout import BM25_IDS_FILE as _IDS_FILE
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


_TOKEN_LISTS = pa.list_(pa.string())
# Tokens as codes into one vocabulary per array: what the cache holds and returns.
_TOKEN_CODES = pa.list_(pa.dictionary(pa.int32(), pa.string()))
_TOKEN_CACHE = pa.schema([("text_xxh64", pa.string()), ("tokens", _TOKEN_CODES)])


@dataclass
class TokenCache:
    """The tokens of texts tokenized before, by the texts' content hash, kept between
    builds in one Parquet file (``path``; None: nothing kept).

    Tokens are a function of the text alone, so a cached text gives what ``tokenize``
    gives: an index built through the cache is the one a clean build makes. Reading them
    back is an order of magnitude faster than tokenizing again, and they stay Arrow lists
    of codes into one vocabulary (``list<dictionary<int32, string>>``: no string per
    token, and BM25 counts the codes without encoding ~20M strings at the standard
    library's size). The file is Arrow IPC, read by memory map (Parquet decoded every
    token's string: ~2 s to read and ~2 s to write at that size). ``save`` keeps only the
    texts of this run, so the file never outgrows the repository. A missing or unreadable
    file is an empty cache. With a ``base`` (another stage's cache, read only), texts
    found there are not kept in this one: it holds only its own texts.
    """

    path: Path | None
    base: TokenCache | None = None
    _known: tuple[dict[str, int], pa.Array] | None = None
    _used: tuple[list[str], pa.Array] | None = None
    hits: int = 0

    def tokenize(self, texts: list[str]) -> list[list[str]]:
        """Return each text's tokens (``tokenize``), from the cache (or its base) where it
        has them."""
        return self.token_lists(texts).cast(_TOKEN_LISTS).to_pylist()

    def token_lists(self, texts: list[str]) -> pa.Array:
        """Return each text's tokens as one Arrow list array (``_TOKEN_CODES``: a list of
        dictionary-coded strings per text), from the cache (or its base) where it has them."""
        rows, tokens = self._load()
        shared_rows, shared = self.base._load() if self.base is not None else ({}, None)
        fresh: list[list[str]] = []
        # Where each text's tokens are in [shared..., known..., fresh...].
        offset = len(shared) if shared is not None else 0
        places = []
        own_keys, own_places = [], []
        for text in texts:
            key = xxh64_text(text)
            place = shared_rows.get(key)
            if place is None:
                place = rows.get(key)
                if place is None:
                    place = offset + len(tokens) + len(fresh)
                    fresh.append(tokenize(text))
                else:
                    place += offset
                    self.hits += 1
                own_keys.append(key)
                own_places.append(place)
            else:
                self.hits += 1
            places.append(place)
        parts = [
            p for p in (shared, tokens, _coded(pa.array(fresh, _TOKEN_LISTS))) if p is not None
        ]
        pool = _concat_coded(parts)
        taken = pool.take(pa.array(places, pa.int64()))
        # Without a base every text is this cache's own: one copy of the tokens serves both.
        own = taken if len(own_places) == len(places) else pool.take(pa.array(own_places))
        self._used = (own_keys, own)
        return taken

    def save(self) -> None:
        """Write the tokens of the texts this cache tokenized (atomically, sorted by hash)."""
        if self.path is None:
            return
        keys, tokens = self._used or ([], _coded(pa.array([], _TOKEN_LISTS)))
        # One row per text: a text given twice is one entry.
        first = dict(zip(keys, range(len(keys)), strict=True))
        order = sorted(first)
        kept = _used_codes_only(tokens.take(pa.array([first[k] for k in order], pa.int64())))
        table = pa.table([pa.array(order, pa.string()), kept], schema=_TOKEN_CACHE)
        with atomic_path(self.path) as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
        # The older form of the cache (Parquet, strings), read by no one now.
        if self.path.suffix != ".parquet":
            self.path.with_suffix(".parquet").unlink(missing_ok=True)

    def _load(self) -> tuple[dict[str, int], pa.Array]:
        if self._known is None:
            self._known = ({}, _coded(pa.array([], _TOKEN_LISTS)))
            if self.path is not None and self.path.is_file():
                try:
                    with pa.memory_map(str(self.path)) as source:
                        table = pa.ipc.open_file(source).read_all()
                    table.validate(full=True)
                except (OSError, pa.ArrowInvalid):
                    table = None  # unreadable, or of the older (Parquet) form: empty
                if table is not None and table.schema.equals(_TOKEN_CACHE):
                    keys = table["text_xxh64"].to_pylist()
                    rows = dict(zip(keys, range(len(keys)), strict=True))
                    self._known = (rows, table["tokens"].combine_chunks())
        return self._known


def _coded(lists: pa.Array) -> pa.Array:
    """Return ``list<string>`` token lists as ``_TOKEN_CODES``."""
    return lists.cast(_TOKEN_CODES)


def _concat_coded(parts: list[pa.Array]) -> pa.Array:
    """Return the ``_TOKEN_CODES`` arrays ``parts`` one after the other, their codes mapped
    into one vocabulary (the parts' vocabularies, each value once)."""
    offsets, codes, vocabularies, base = [np.zeros(1, np.int64)], [], [], 0
    for part in parts:
        start = part.offsets.to_numpy().astype(np.int64)
        flat = part.flatten()  # the dictionary-coded tokens of these lists only
        offsets.append(start[1:] - start[0] + base)
        base += len(flat)
        codes.append(flat.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        vocabularies.append(flat.dictionary)
    unified = pa.concat_arrays(vocabularies).dictionary_encode()
    mapping = unified.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    shifts = np.cumsum([0] + [len(v) for v in vocabularies[:-1]])
    mapped = np.concatenate(
        [mapping[shift + code] for shift, code in zip(shifts, codes, strict=True)]
    )
    values = pa.DictionaryArray.from_arrays(pa.array(mapped, pa.int32()), unified.dictionary)
    return pa.ListArray.from_arrays(pa.array(np.concatenate(offsets), pa.int32()), values)


def _used_codes_only(lists: pa.Array) -> pa.Array:
    """Return ``_TOKEN_CODES`` lists with a vocabulary of the tokens they hold only (the
    pool of a run holds every earlier text's too)."""
    start = lists.offsets.to_numpy().astype(np.int64)
    values = _present_only(lists.flatten())
    return pa.ListArray.from_arrays(pa.array(start - start[0], pa.int32()), values)


def _present_only(tokens: pa.DictionaryArray) -> pa.DictionaryArray:
    """Return dictionary-coded ``tokens`` with a dictionary of the values present only, in
    their order there."""
    codes = tokens.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    used = np.bincount(codes, minlength=len(tokens.dictionary)) > 0
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    return pa.DictionaryArray.from_arrays(
        pa.array(renumber[codes], pa.int32()), tokens.dictionary.filter(pa.array(used))
    )


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
    if cache is not None:
        tokens = cache.token_lists(texts)
    else:
        tokens = pa.array([tokenize(t) for t in texts], _TOKEN_LISTS)
    return Bm25Index(ids=ids, model=bm25_model(tokens))


def bm25_model(tokens: pa.Array) -> bm25s.BM25:
    """Return the ``bm25s`` model that ``bm25s.BM25().index(tokens.to_pylist())`` builds —
    the same score of every (document, token), Lucene's BM25 with ``bm25s``'s defaults —
    computed over Arrow and NumPy arrays instead of a Python loop over every token.

    Token ids are in sorted token order (``bm25s`` numbers them in a ``set``'s order,
    which changes with the process's string hashing); scores do not depend on them.
    """
    model = bm25s.BM25()
    k1, b = model.k1, model.b
    lengths = pc.list_value_length(tokens).fill_null(0).to_numpy().astype(np.int64)
    docs = len(lengths)
    flat = pc.list_flatten(tokens)
    # The vocabulary is the tokens present (a cache's codes may name others too).
    flat = _present_only(flat) if pa.types.is_dictionary(flat.type) else flat.dictionary_encode()
    vocab = flat.dictionary.to_pylist()
    rank = np.empty(len(vocab), dtype=np.int64)
    rank[pc.array_sort_indices(flat.dictionary).to_numpy()] = np.arange(len(vocab))
    terms = rank[flat.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    doc_of = np.repeat(np.arange(docs, dtype=np.int64), lengths)
    # One entry per (term, document): its term frequency. Sorted by term, then document:
    # the order of a CSC matrix's columns and rows.
    pairs, tf = np.unique(terms * docs + doc_of, return_counts=True)
    term, doc = pairs // docs, pairs % docs
    df = np.bincount(term, minlength=len(vocab))
    # As bm25s: the idf of each document frequency in Python's double precision (math.log),
    # stored as float32; the term frequency component in float64 (the average length is a
    # NumPy double), the product rounded to float32.
    idf_of = {d: math.log(1 + (docs - d + 0.5) / (d + 0.5)) for d in np.unique(df).tolist()}
    idf = np.array([idf_of[d] for d in df.tolist()], dtype=np.float32)
    average = lengths.mean()
    denominator = k1 * ((1 - b) + b * lengths[doc] / average)
    tf32 = tf.astype(np.float32)
    scores = (idf[term] * (tf32 / (denominator + tf32))).astype(np.float32)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    model.scores = {
        "data": scores,
        "indices": doc.astype(np.int32),
        "indptr": indptr,
        "num_docs": docs,
    }
    # In token id order: the same file whichever order the tokens were coded in.
    model.vocab_dict = {vocab[i]: int(rank[i]) for i in np.argsort(rank).tolist()}
    # bm25s gives queries with no known token an empty token of its own.
    model.vocab_dict.setdefault("", len(vocab))
    model.nonoccurrence_array = None
    model.unique_token_ids_set = set(model.vocab_dict.values())
    return model


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
