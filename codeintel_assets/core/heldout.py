"""The held-out evaluation style: a docstring's sentence, searched without that docstring.

A ``doc`` query is the first sentence of the target's docstring, and that docstring is
part of what is indexed: BM25 reads its own answer. For the ``heldout`` style the query
is the same sentence, but the targets are searched as if they had no docstrings and no
comments: their chunks are embedded again and their units' BM25 documents tokenized
again from the stripped text (a few hundred chunks an evaluation), and each channel's
list is made over that corpus:

* dense: the FAISS hits of the stripped chunks are dropped and the chunks come back
  with their stripped vectors' scores (exact inner products), in score order; the
  oracle list the same way;
* bm25: a BM25 index over every unit's document, the targets' stripped;
* definition: names only, unchanged.

Only Python is stripped (``ast`` finds docstrings, ``tokenize`` comments); the lines
keep their numbers, so chunk and unit spans still apply.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from codeintel_assets.core.channels import Ranked, UnitChannels, unit_documents
from codeintel_assets.core.checksums import xxh64_text
from codeintel_assets.core.embedding import Embedder, embedding_text
from codeintel_assets.core.lexical import TokenCache, build_bm25
from codeintel_assets.core.queries import SyntheticQuery
from codeintel_assets.core.schemas import write_by_key
from codeintel_assets.core.units import file_lines

HELD_OUT = "heldout"
_DOCUMENTED = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def strip_python_docs(text: str) -> str:
    """Return ``text`` with its docstrings blanked and comments removed, lines kept.

    A file that does not parse comes back unchanged.
    """
    try:
        tree = ast.parse(text)
        comments = [
            token.start
            for token in tokenize.generate_tokens(io.StringIO(text).readline)
            if token.type == tokenize.COMMENT
        ]
    except (SyntaxError, ValueError, tokenize.TokenError):
        return text
    lines = text.split("\n")
    for row, column in comments:
        lines[row - 1] = lines[row - 1][:column].rstrip()
    for node in ast.walk(tree):
        if not isinstance(node, _DOCUMENTED) or not node.body:
            continue
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
            continue
        if not isinstance(first.value.value, str):
            continue
        # A docstring on its definition's own line (``def f(): "doc"``) stays: blanking
        # the line would take the code with it.
        if not isinstance(node, ast.Module) and first.lineno == node.lineno:
            continue
        for number in range(first.lineno, first.end_lineno + 1):
            lines[number - 1] = ""
    return "\n".join(lines)


_STRIPPED = pa.schema([("text_xxh64", pa.string()), ("stripped", pa.string())])


@dataclass
class StrippedFiles:
    """``strip_python_docs`` of files stripped before, by the text's content hash, kept
    between builds in one Parquet file (``path``; None: nothing kept).

    The stripped text is a function of the text alone, so a cached one is what stripping
    gives. ``save`` keeps only the texts of this run; a missing or unreadable file is an
    empty cache.
    """

    path: Path | None
    _known: dict[str, str] | None = None
    _used: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def strip(self, text: str) -> str:
        """Return ``strip_python_docs(text)``, from the cache when it has it."""
        if self._known is None:
            self._known = self._load()
        key = xxh64_text(text)
        stripped = self._known.get(key)
        if stripped is None:
            stripped = strip_python_docs(text)
        else:
            self.hits += 1
        self._used[key] = stripped
        return stripped

    def save(self) -> None:
        """Write the stripped texts of this run (atomically, sorted by hash)."""
        if self.path is not None:
            write_by_key(self._used, self.path, _STRIPPED)

    def _load(self) -> dict[str, str]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            table = pq.read_table(self.path)
        except (OSError, pa.ArrowInvalid):
            return {}
        if not table.schema.equals(_STRIPPED):
            return {}
        return dict(
            zip(table["text_xxh64"].to_pylist(), table["stripped"].to_pylist(), strict=True)
        )


@dataclass
class HeldOutCorpus:
    """What the held-out queries search: the stripped targets' vectors and BM25."""

    chunk_ids: np.ndarray  # the stripped chunks
    vectors: np.ndarray  # their vectors, embedded from the stripped text
    channels: UnitChannels  # BM25 over every unit, the targets' documents stripped
    documents: dict[int, str]  # the stripped targets' BM25 documents, by unit id

    def replace(self, hits: Ranked, vector: np.ndarray, depth: int) -> Ranked:
        """Return ``hits`` with the stripped chunks scored by their stripped vectors."""
        stripped = set(self.chunk_ids.tolist())
        kept = [(c, s) for c, s in hits if c not in stripped]
        scores = self.vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        merged = kept + [(int(c), float(s)) for c, s in zip(self.chunk_ids, scores, strict=True)]
        merged.sort(key=lambda item: -item[1])
        return merged[:depth]


def held_out_corpus(
    queries: Sequence[SyntheticQuery],
    chunks: pa.Table,
    channels: UnitChannels,
    embedder: Embedder,
    tokens: TokenCache | None = None,
    stripped: StrippedFiles | None = None,
) -> HeldOutCorpus | None:
    """Return the corpus the ``heldout`` queries search, or None when there are none; its
    BM25 texts are tokenized through ``tokens`` when given (most are the build's own) and
    its files stripped through ``stripped`` (files stripped before).

    ``chunks`` needs ``id, uri, lang, start_line, end_line, name, content``.
    """
    units = channels.units
    targets = {units.unit_of[p] for q in queries if q.style == HELD_OUT for p in q.positives} & set(
        units.unit_of.values()
    )
    if not targets:
        return None
    stripper = stripped or StrippedFiles(None)
    uris = sorted({units.uri(u) for u in targets})
    # Only the targets' files are stripped: the rest of the corpus is the build's.
    theirs = chunks.filter(pc.is_in(chunks["uri"], pa.array(uris, pa.string())))
    stripped_files = {
        uri: stripper.strip("\n".join(lines)).split("\n")
        for uri, lines in file_lines(theirs).items()
    }
    rows = {
        r["id"]: r
        for r in theirs.select(["id", "uri", "start_line", "end_line", "name"]).to_pylist()
    }
    chunk_ids = sorted({c for u in targets for c in units.chunks_of.get(u, [])})
    texts = []
    for chunk in chunk_ids:
        row = rows[chunk]
        lines = stripped_files[row["uri"]][row["start_line"] - 1 : row["end_line"]]
        texts.append(embedding_text(row["uri"], row["name"], "\n".join(lines)))
    vectors = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), np.float32)
    documents = unit_documents(units.table, chunks, replaced=stripped_files)
    by_unit = dict(zip(units.table["unit_id"].to_pylist(), documents, strict=True))
    bm25 = build_bm25(units.table["unit_id"].to_numpy(), documents, tokens)
    return HeldOutCorpus(
        chunk_ids=np.asarray(chunk_ids, dtype=np.int64),
        vectors=np.asarray(vectors, dtype=np.float32),
        # The definition channel reads names only, which stripping leaves as they are.
        channels=dataclasses.replace(channels, bm25=bm25),
        documents={u: by_unit[u] for u in targets},
    )
