"""Benchmark chunking time against the length of one line (issue 11, F5).

A file whose one line is longer than the chunk budget is cut into character windows.
The former cut re-tokenized the rest of the line for every window (quadratic in the
line's length); the current one tokenizes each window's own text (linear). This script
chunks a Python file holding one long line (a data literal, as generated or minified
code has) with the real MiniLM tokenizer at the default 128-token budget, for lines
of 25 KB up to 1 MB, and prints seconds, windows and microseconds per KB. The former
cut is measured in the same run on the short lines as the baseline.

Run: ``python benchmarks/bench_line_length.py``.
"""

from __future__ import annotations

import random
import time

from codeintel_assets.core import chunking
from codeintel_assets.core.chunking import chunk_file
from codeintel_assets.core.embedding import EmbedderSpec, load_embedder

LENGTHS_KB = (25, 50, 100, 250, 500, 1000)
BASELINE_KB = (25, 50)


def long_line_file(kilobytes: int) -> str:
    """Return a one-line Python file of about ``kilobytes`` KB (a list of mixed literals)."""
    rng = random.Random(kilobytes)
    parts: list[str] = []
    size = 0
    while size < kilobytes * 1000:
        item = rng.choice(
            [str(rng.randint(0, 10**9)), f"'k{rng.randint(0, 999)}_v'", "None", "3.25e-4"]
        )
        parts.append(item)
        size += len(item) + 2
    return "DATA = [" + ", ".join(parts) + "]\n"


def quadratic_char_windows(self, line, kind, name):  # the former cut, for the baseline
    text = self.lines[line]
    pieces = []
    start = 0
    while start < len(text):
        size = len(text) - start
        while True:
            tokens = self.count_tokens([text[start : start + size]])[0]
            if tokens <= self.budget or size == 1:
                break
            size = max(1, size * self.budget // (tokens + 1))
        pieces.append(chunking._Piece(line, line, kind, name, tokens, (start, start + size)))
        start += size
    return pieces


def timed_chunking(text: str, embedder, budget: int) -> tuple[float, int]:
    started = time.perf_counter()
    chunks = chunk_file("bench", "data.py", text, "python", budget, embedder.count_tokens)
    seconds = time.perf_counter() - started
    assert "".join(c.content for c in chunks) == text
    assert max(embedder.count_tokens([c.content for c in chunks])) <= budget
    return seconds, len(chunks)


def main() -> None:
    embedder = load_embedder(EmbedderSpec())
    budget = embedder.chunk_tokens
    print(f"tokenizer: {embedder.model_id}, budget {budget} tokens")
    print(f"{'line':>8} {'cut':>10} {'seconds':>9} {'windows':>8} {'us/KB':>8}")
    linear = chunking._FileChunker.char_windows
    for kilobytes in LENGTHS_KB:
        text = long_line_file(kilobytes)
        seconds, windows = timed_chunking(text, embedder, budget)
        print(
            f"{kilobytes:>6}KB {'linear':>10} {seconds:>9.2f} {windows:>8} "
            f"{seconds / kilobytes * 1e6:>8.0f}"
        )
        if kilobytes in BASELINE_KB:
            chunking._FileChunker.char_windows = quadratic_char_windows
            try:
                seconds, windows = timed_chunking(text, embedder, budget)
            finally:
                chunking._FileChunker.char_windows = linear
            print(
                f"{kilobytes:>6}KB {'former':>10} {seconds:>9.2f} {windows:>8} "
                f"{seconds / kilobytes * 1e6:>8.0f}"
            )


if __name__ == "__main__":
    main()
